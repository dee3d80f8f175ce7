"""Do a model's codes mean the classes? Scores for InfoGAN-style categorical codes.

* ``code_acc``: draw samples with categorical code k (cycling over k), let the data set's own
  classifier label them, map codes to labels one-to-one with the Hungarian algorithm (as
  ``cluster_acc``), and report the share whose label is their code's. ``code_nmi``: the NMI of the
  same pairs. These say whether G draws class k from code k.
* ``code_acc_real``: the other direction: Q's predicted code for real held-out images, matched to
  their true labels the same way. It says whether Q reads the class from a real digit.

Chen et al. 2016 report 95% (5% error) for the categorical code on full MNIST. Models declare the
capability: ``code_layout`` and ``decode`` (to draw by code) and ``predict_codes`` (Q on images).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..models.capabilities import PredictsCodes, ReadableCodes
from .cluster_metrics import cluster_acc, cluster_scores
from .evaluate import Metric, register_metric


def code_samples(model, n: int, *, seed: int = 0, batch_size: int = 500) -> tuple[Tensor, Tensor]:
    """n samples (n, *shape) with the first categorical code cycling 0..K-1, and those codes (n,)."""
    layout = model.code_layout
    g = torch.Generator().manual_seed(seed)
    codes = torch.arange(n) % layout.categories  # (n,)
    xs = []
    for part in codes.split(batch_size):
        z = model.prior_sample(len(part), generator=g)  # (B, size): noise and random codes
        noise, cat, cont = layout.split(z)
        cat[:, 0] = part.to(cat)
        with torch.no_grad():
            xs.append(model.decode(layout.compose(noise, cat, cont)).cpu())
    return torch.cat(xs), codes


def _generated(run) -> dict[str, float]:
    if "generated" not in run.memo:
        x, codes = code_samples(run.model, run.n_samples, seed=run.seed + 7)
        predicted = run.features.probs(x).argmax(1)  # (n,) the evaluator's class of each sample
        scores = cluster_scores(predicted, codes)
        run.memo["generated"] = {"code_acc": scores["cluster_acc"], "code_nmi": scores["nmi"]}
    return run.memo["generated"]


def _real_acc(run) -> float:
    parts = [run.model.predict_codes(xb.to(run.device))[0][:, 0].cpu() for xb in run.x.split(run.batch_size)]
    return cluster_acc(run.y, torch.cat(parts))


def _has_codes(model) -> bool:
    return isinstance(model, ReadableCodes) and model.code_layout.cat_codes > 0


for _m in (
    Metric("code_acc", "samples drawn with categorical code k classified as the class matched to k "
                       "(Hungarian; InfoGAN)", True, "codes", _has_codes,
           lambda run: _generated(run)["code_acc"], needs_classifier=True, images_only=True),
    Metric("code_nmi", "normalised mutual information of the categorical code and the class of its samples",
           True, "codes", _has_codes, lambda run: _generated(run)["code_nmi"], needs_classifier=True,
           images_only=True),
    Metric("code_acc_real", "held-out images whose code predicted by Q is the one matched to their label "
                            "(Hungarian)", True, "codes", lambda m: _has_codes(m) and isinstance(m, PredictsCodes),
           _real_acc, needs_data=lambda d: d.labelled),
):
    register_metric(_m)
