"""Losses as pure functions of tensors: one place, used by every model family.

Reconstruction and likelihood terms return one value per example (N,), in nats where they are
log-likelihoods; the caller decides how to reduce. That keeps β and the KL on the same scale as
the data term (a per-pixel mean beside a per-example KL silently changes the objective).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .distributions import Bernoulli, DiagonalGaussian, Gaussian, _sum_events


def kl_normal(posterior: DiagonalGaussian) -> Tensor:
    """KL(q(z|x) || N(0, I)) per example, (N,)."""
    return posterior.kl_standard()


def bernoulli_nll(logits: Tensor, x: Tensor) -> Tensor:
    """-log Bernoulli(x | sigmoid(logits)) summed over pixels, (N,)."""
    return -Bernoulli(logits).log_prob(x)


def gaussian_nll(mean: Tensor, x: Tensor, log_sigma: Tensor) -> Tensor:
    """-log N(x | mean, exp(log_sigma)^2) summed over pixels, (N,). With a fixed sigma this is L2."""
    return -Gaussian(mean, log_sigma).log_prob(x)


def squared_error(x_hat: Tensor, x: Tensor) -> Tensor:
    """Sum of squared errors per example, (N,): the autoencoder's L2 loss."""
    return _sum_events((x_hat - x) ** 2)


def binary_cross_entropy(logits: Tensor, x: Tensor) -> Tensor:
    """Binary cross-entropy summed per example, (N,): the autoencoder's BCE loss."""
    return _sum_events(F.binary_cross_entropy_with_logits(logits, x, reduction="none"))


def iwae_log_weights_to_bound(log_w: Tensor) -> Tensor:
    """(K, N) log importance weights -> (N,) bound log (1/K) sum_k w_k (Burda et al. 2015).

    Every sample is weighted by its own normalised weight through logsumexp: the best samples count
    most (weighting samples by their *loss* up-weights the worst ones, a bug seen in the wild).
    """
    k = log_w.shape[0]
    return torch.logsumexp(log_w, dim=0) - torch.log(torch.tensor(float(k), dtype=log_w.dtype))
