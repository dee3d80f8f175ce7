"""Clustering scores and the two classic latent-structure baselines: k-means and a linear probe.

* ``cluster_acc``: the unsupervised clustering accuracy of DEC (Xie et al. 2016) and VaDE (Jiang
  et al. 2017): the best one-to-one map from clusters to classes, found with the Hungarian algorithm
  (Kuhn 1955; ``scipy.optimize.linear_sum_assignment``). Stricter than mapping each cluster to its
  majority class, which lets two clusters claim the same class; it works when the number of
  clusters differs from the number of classes (unmatched clusters count as errors).
* ``cluster_scores``: cluster_acc with NMI and ARI (Hubert & Arabie 1985), both in sklearn.
* ``kmeans``: Lloyd's k-means with k-means++ starts (Arthur & Vassilvitskii 2007), best of 10.
* ``balanced_subset`` and ``linear_probe``: the M1 protocol of Kingma et al. 2014 (a classifier
  on latent codes trained on few labels, N/C per class).

Everything here is a pure function of arrays: no model, no data set, no printing.
"""

from __future__ import annotations

import numpy as np

from ..data.labels import balanced_subset  # noqa: F401  (re-exported: the probe draws its subset)


def _labels(a) -> np.ndarray:
    arr = np.asarray(a.cpu() if hasattr(a, "cpu") else a).reshape(-1)
    return arr.astype(np.int64)


def contingency(y_true, y_pred) -> np.ndarray:
    """(clusters, classes) counts: entry [c, k] is how many of cluster c have class k."""
    t, p = _labels(y_true), _labels(y_pred)
    if t.shape != p.shape:
        raise ValueError(f"{t.shape[0]} labels but {p.shape[0]} cluster assignments")
    _, t = np.unique(t, return_inverse=True)
    _, p = np.unique(p, return_inverse=True)
    table = np.zeros((p.max(initial=-1) + 1, t.max(initial=-1) + 1), dtype=np.int64)
    np.add.at(table, (p, t), 1)
    return table


def cluster_acc(y_true, y_pred) -> float:
    """Accuracy under the best one-to-one cluster -> class map (Hungarian matching), in [0, 1]."""
    from scipy.optimize import linear_sum_assignment

    table = contingency(y_true, y_pred)
    if table.size == 0:
        return float("nan")
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / table.sum())


def majority_acc(y_true, y_pred) -> float:
    """Accuracy when every cluster takes its majority class (several may take the same one)."""
    table = contingency(y_true, y_pred)
    return float(table.max(axis=1).sum() / max(table.sum(), 1))


def cluster_scores(y_true, y_pred) -> dict[str, float]:
    """{"cluster_acc", "nmi", "ari"} of a clustering against the true classes."""
    from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

    t, p = _labels(y_true), _labels(y_pred)
    return {"cluster_acc": cluster_acc(t, p), "nmi": float(normalized_mutual_info_score(t, p)),
            "ari": float(adjusted_rand_score(t, p))}


def kmeans(z, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """k-means of the rows of z (N, D) -> (labels (N,), centres (k, D)); best of 10 starts."""
    from sklearn.cluster import KMeans

    z = _features(z)
    if not 1 <= k <= len(z):
        raise ValueError(f"k={k} clusters for {len(z)} points")
    km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(z)
    return km.labels_.astype(np.int64), km.cluster_centers_


def nearest_to_centres(z, centres, per_cluster: int) -> list[np.ndarray]:
    """For each centre, the indices of the ``per_cluster`` rows of z (N, D) nearest to it."""
    z, centres = _features(z), np.asarray(centres, dtype=np.float64)
    # one centre at a time: (N,) squared distances, never a (k, N, D) block
    return [np.argsort(((z - c) ** 2).sum(1), kind="stable")[:per_cluster] for c in centres]


def _features(z) -> np.ndarray:
    arr = np.asarray(z.detach().cpu() if hasattr(z, "detach") else z, dtype=np.float64)
    return arr.reshape(len(arr), -1)


def linear_probe(train_x, train_y, test_x, test_y, *, seed: int = 0) -> float:
    """Test accuracy of a standardised multinomial logistic regression fitted on (train_x, train_y)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    clf.fit(_features(train_x), _labels(train_y))
    return float((clf.predict(_features(test_x)) == _labels(test_y)).mean())
