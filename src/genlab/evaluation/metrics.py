"""Sample-quality metrics as pure functions of two feature sets (real, fake), torch or numpy.

* ``frechet_distance``: Heusel et al. 2017 (FID), the Fréchet distance of two Gaussian fits.
* ``kernel_inception_distance``: Bińkowski et al. 2018 (KID), unbiased MMD² with a cubic kernel.
* ``precision_recall``: Kynkäänniemi et al. 2019, k-NN manifold precision and recall.
* ``density_coverage``: Naeem et al. 2020, density and coverage (robust to outliers).
* ``inception_score``: Salimans et al. 2016, exp E_x KL(p(y|x) || p(y)).
* ``psnr``: peak signal-to-noise ratio of images in [0, 1].

Gaussian statistics and kernels are computed in float64. Pairwise distances run through
``torch.cdist`` in row chunks (float32 unless float64 is given), so 10k x 10k sets fit in memory.
"""

from __future__ import annotations

import contextlib
import logging
import math
import warnings

import numpy as np
import torch
from scipy import linalg
from torch import Tensor

log = logging.getLogger(__name__)

ArrayLike = Tensor | np.ndarray
_CHUNK_ELEMENTS = 1 << 24  # distances held at once: 64 MB of float32


def _np64(a: ArrayLike) -> np.ndarray:
    a = a.detach().cpu().numpy() if isinstance(a, Tensor) else np.asarray(a)
    return a.reshape(len(a), -1).astype(np.float64)


def _torch(a: ArrayLike, dtype: torch.dtype | None = None) -> Tensor:
    t = a.detach().cpu() if isinstance(a, Tensor) else torch.from_numpy(np.asarray(a))
    t = t.reshape(len(t), -1)
    if dtype is None:
        dtype = torch.float64 if t.dtype == torch.float64 else torch.float32
    return t.to(dtype)


# --- Fréchet distance ------------------------------------------------------------------------------
def gaussian_stats(a: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Mean (F,) and covariance (F, F) of features (N, F), float64."""
    a = _np64(a)
    if len(a) < 2:
        raise ValueError(f"need at least 2 feature vectors for a covariance, got {len(a)}")
    return a.mean(0), np.atleast_2d(np.cov(a, rowvar=False))


def frechet_distance_from_stats(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray,
                                *, eps: float = 1e-6) -> float:
    """||mu1 - mu2||² + Tr(S1 + S2 - 2 (S1 S2)^½), the Fréchet (2-Wasserstein²) distance of two Gaussians."""
    diff = mu1 - mu2
    covmean = _sqrtm(s1 @ s2)
    if not _root_ok(covmean, s1 @ s2):
        # a singular product has no accurate root: nudge both covariances, as pytorch-fid does
        log.info("Fréchet distance: singular covariance product, adding %g to the diagonals", eps)
        offset = np.eye(len(s1)) * eps
        covmean = _sqrtm((s1 + offset) @ (s2 + offset))
    if np.iscomplexobj(covmean):
        imag = np.abs(np.diagonal(covmean).imag).max()
        if imag > 1e-3 * max(1.0, np.abs(np.diagonal(covmean).real).max()):
            log.warning("Fréchet distance: matrix square root has imaginary part %.3g (dropped)", imag)
        covmean = covmean.real
    fd = diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean)
    return max(0.0, float(fd))  # a squared distance: clip round-off below zero


def _one_blas_thread():
    """Small matrices: one BLAS thread is faster, and OpenBLAS's spinning threads slow ~100x when
    another process holds a core (measured: sqrtm of 128x128 0.01 s -> 1.1 s)."""
    try:
        from threadpoolctl import threadpool_limits  # installed with scikit-learn
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(1)


def _sqrtm(m: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings(), _one_blas_thread():  # singular input: judged by _root_ok instead
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        root = linalg.sqrtm(m)
    return root[0] if isinstance(root, tuple) else root  # older SciPy may return (root, error)


def _root_ok(root: np.ndarray, m: np.ndarray, tol: float = 1e-3) -> bool:
    """Finite, and root @ root reproduces m to a relative Frobenius error below ``tol``."""
    if not np.isfinite(root).all():
        return False
    scale = np.linalg.norm(m)
    return scale == 0 or np.linalg.norm(root @ root - m) <= tol * scale


def frechet_distance(a: ArrayLike, b: ArrayLike, *, eps: float = 1e-6) -> float:
    """Fréchet distance between Gaussians fitted to features a (N, F) and b (M, F) (FID, key "fd")."""
    return frechet_distance_from_stats(*gaussian_stats(a), *gaussian_stats(b), eps=eps)


# --- kernel inception distance ---------------------------------------------------------------------
def kernel_inception_distance(a: ArrayLike, b: ArrayLike, *, subsets: int = 100, subset_size: int = 1000,
                              seed: int = 0) -> float:
    """Unbiased MMD² with k(x, y) = (x·y / d + 1)³, averaged over random subsets (KID, key "kid").

    Each subset draws m = min(subset_size, N, M) rows of each set without replacement (as
    Bińkowski et al. 2018 and StyleGAN2-ADA do). Near 0 (possibly slightly negative) when a and b
    come from one distribution.
    """
    x, y = _torch(a, torch.float64), _torch(b, torch.float64)  # (N, d), (M, d)
    d, m = x.shape[1], min(subset_size, len(x), len(y))
    if m < 2:
        raise ValueError("KID needs at least 2 feature vectors per set")

    def kernel(u: Tensor, v: Tensor) -> Tensor:
        return (u @ v.T / d + 1) ** 3

    small = max(len(x), len(y)) <= 4096  # precompute the full kernel matrices and index them
    if small:
        kxx_all, kyy_all, kxy_all = kernel(x, x), kernel(y, y), kernel(x, y)
    g = torch.Generator().manual_seed(seed)
    total = 0.0
    for _ in range(subsets):
        i = torch.randperm(len(x), generator=g)[:m]
        j = torch.randperm(len(y), generator=g)[:m]
        if small:
            kxx, kyy, kxy = kxx_all[i][:, i], kyy_all[j][:, j], kxy_all[i][:, j]  # (m, m) each
        else:
            kxx, kyy, kxy = kernel(x[i], x[i]), kernel(y[j], y[j]), kernel(x[i], y[j])
        within = (kxx.sum() - kxx.diagonal().sum() + kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
        total += float(within - 2 * kxy.mean())
    return total / subsets


# --- k-NN manifolds: precision/recall, density/coverage -----------------------------------------
def _rows_per_chunk(cols: int) -> int:
    return max(1, _CHUNK_ELEMENTS // max(cols, 1))


def knn_radii(x: Tensor, k: int) -> Tensor:
    """Distance from each row of x (N, F) to its k-th nearest other row, (N,)."""
    if not 1 <= k < len(x):
        raise ValueError(f"k-NN radius needs 1 <= k < N, got k={k}, N={len(x)}")
    step = _rows_per_chunk(len(x))
    out = [torch.cdist(x[s:s + step], x).kthvalue(k + 1, dim=1).values  # +1: the point itself
           for s in range(0, len(x), step)]
    return torch.cat(out)


def _pair(real: ArrayLike, fake: ArrayLike) -> tuple[Tensor, Tensor]:
    r, f = _torch(real), _torch(fake)
    dtype = torch.promote_types(r.dtype, f.dtype)
    if r.shape[1] != f.shape[1]:
        raise ValueError(f"feature sizes differ: real {tuple(r.shape)}, fake {tuple(f.shape)}")
    return r.to(dtype), f.to(dtype)


def precision_recall(real: ArrayLike, fake: ArrayLike, *, k: int = 3) -> dict[str, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019), keys "precision" and "recall".

    Each set's manifold is the union of balls around its points with radius the distance to the
    k-th nearest neighbour. Precision: share of fake points inside the real manifold (are the
    samples realistic?). Recall: share of real points inside the fake manifold (is the data's
    variety covered? a mode-collapsed generator has low recall).
    """
    r, f = _pair(real, fake)  # (N, F), (M, F)
    r_real, r_fake = knn_radii(r, k), knn_radii(f, k)  # (N,), (M,)
    fake_in = torch.zeros(len(f), dtype=torch.bool)
    real_in = torch.zeros(len(r), dtype=torch.bool)
    step = _rows_per_chunk(len(f))
    for s in range(0, len(r), step):
        dist = torch.cdist(r[s:s + step], f)  # (c, M)
        fake_in |= (dist <= r_real[s:s + len(dist), None]).any(0)
        real_in[s:s + len(dist)] = (dist <= r_fake[None, :]).any(1)
    return {"precision": float(fake_in.double().mean()), "recall": float(real_in.double().mean())}


def density_coverage(real: ArrayLike, fake: ArrayLike, *, k: int = 5) -> dict[str, float]:
    """Density and coverage (Naeem et al. 2020), keys "density" and "coverage".

    Density: the number of real k-NN balls holding each fake point, divided by k and averaged
    (about 1 for matching distributions, above 1 when samples crowd dense regions). Coverage:
    the share of real points whose k-NN ball holds at least one fake point. Only the real set
    defines balls, so a few outlying samples cannot inflate either value.
    """
    r, f = _pair(real, fake)  # (N, F), (M, F)
    radius = knn_radii(r, k)  # (N,)
    inside, covered = 0, torch.zeros(len(r), dtype=torch.bool)
    step = _rows_per_chunk(len(f))
    for s in range(0, len(r), step):
        dist = torch.cdist(r[s:s + step], f)  # (c, M)
        rad = radius[s:s + len(dist), None]  # (c, 1)
        inside += int((dist <= rad).sum())
        covered[s:s + len(dist)] = dist.min(1).values <= rad[:, 0]
    return {"density": inside / (k * len(f)), "coverage": float(covered.double().mean())}


# --- Inception score and PSNR ----------------------------------------------------------------------
def inception_score(probs: ArrayLike, *, splits: int = 10, shuffle: bool = True, seed: int = 0) -> float:
    """exp(E_x KL(p(y|x) || p(y))) (Salimans et al. 2016), averaged over ``splits`` parts (key "is").

    1 when every prediction is the same; K when predictions are confident and spread evenly over
    K classes. ``probs`` are (N, K) class probabilities of the feature network's classifier. The
    rows are shuffled (seeded) before splitting, since real data is often stored sorted by class.
    """
    p = _torch(probs, torch.float64)  # (N, K)
    if shuffle:
        p = p[torch.randperm(len(p), generator=torch.Generator().manual_seed(seed))]
    scores = []
    for part in torch.tensor_split(p, min(splits, len(p))):
        marginal = part.mean(0, keepdim=True)  # (1, K) p(y)
        kl = (torch.special.xlogy(part, part) - torch.special.xlogy(part, marginal)).sum(1)  # (n,)
        scores.append(math.exp(float(kl.mean())))
    return float(np.mean(scores))


def psnr(mse: float) -> float:
    """Peak signal-to-noise ratio in dB of images in [0, 1]: 10 log10(1 / mse)."""
    return math.inf if mse <= 0 else 10 * math.log10(1.0 / mse)
