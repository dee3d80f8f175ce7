"""Small distribution objects with ``sample / log_prob / kl``: what the losses are made of.

Every ``log_prob`` sums over the event dimensions and returns one value per example (N,), in nats,
so a loss built from them is a per-example negative log-likelihood, never a per-pixel mean.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

LOG_2PI = math.log(2 * math.pi)


def sum_events(t: Tensor) -> Tensor:
    """(N, ...) -> (N,): sum over everything but the batch dimension."""
    return t.flatten(1).sum(1)


class DiagonalGaussian:
    """N(mu, diag(exp(logvar))): the VAE posterior q(z|x), and the unit prior when mu=0, logvar=0."""

    def __init__(self, mu: Tensor, logvar: Tensor):
        self.mu, self.logvar = mu, logvar

    @classmethod
    def standard(cls, shape: tuple[int, ...], like: Tensor) -> DiagonalGaussian:
        zero = like.new_zeros(shape)
        return cls(zero, zero)

    @property
    def std(self) -> Tensor:
        return torch.exp(0.5 * self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """Reparameterised sample mu + sigma * eps (gradients flow to mu and logvar)."""
        eps = torch.randn(self.mu.shape, generator=generator, device=self.mu.device, dtype=self.mu.dtype)
        return self.mu + self.std * eps

    def log_prob(self, z: Tensor) -> Tensor:
        return -0.5 * sum_events(LOG_2PI + self.logvar + (z - self.mu) ** 2 / self.logvar.exp())

    def kl_standard(self) -> Tensor:
        """KL(q || N(0, I)) in closed form, (N,)."""
        return 0.5 * sum_events(self.mu**2 + self.logvar.exp() - 1.0 - self.logvar)


class Bernoulli:
    """Pixels as independent Bernoulli variables, parameterised by logits (numerically stable)."""

    def __init__(self, logits: Tensor):
        self.logits = logits

    @property
    def mean(self) -> Tensor:
        return torch.sigmoid(self.logits)

    def log_prob(self, x: Tensor) -> Tensor:
        # For x in (0, 1) this is the "continuous BCE" people train grey-level MNIST with; it is a
        # true log-likelihood only for binary x (hence dynamic binarisation).
        return -sum_events(F.binary_cross_entropy_with_logits(self.logits, x, reduction="none"))


class Gaussian:
    """Independent Gaussians per pixel/coordinate with mean ``mean`` and std exp(log_sigma)."""

    def __init__(self, mean: Tensor, log_sigma: Tensor):
        self.mean, self.log_sigma = mean, log_sigma.expand_as(mean)

    def log_prob(self, x: Tensor) -> Tensor:
        return -sum_events(0.5 * LOG_2PI + self.log_sigma + 0.5 * ((x - self.mean) / self.log_sigma.exp()) ** 2)

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        eps = torch.randn(self.mean.shape, generator=generator, device=self.mean.device)
        return self.mean + self.log_sigma.exp() * eps


def log_normal(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log N(z | mu, diag(exp(logvar))) summed over the last dimension (broadcasting), (...,)."""
    return -0.5 * (LOG_2PI + logvar + (z - mu) ** 2 / logvar.exp()).sum(-1)


def kl_diag_normals(mu_q: Tensor, logvar_q: Tensor, mu_p: Tensor, logvar_p: Tensor) -> Tensor:
    """KL(N(mu_q, e^logvar_q) || N(mu_p, e^logvar_p)) for diagonal Gaussians, summed over the last dim."""
    return 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p) ** 2) / logvar_p.exp() - 1.0).sum(-1)
