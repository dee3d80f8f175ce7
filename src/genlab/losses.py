"""Losses as pure functions of tensors: one place, used by every model family.

Reconstruction and likelihood terms return one value per example (N,), in nats where they are
log-likelihoods; the caller decides how to reduce. That keeps β and the KL on the same scale as
the data term (a per-pixel mean beside a per-example KL silently changes the objective).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .distributions import Bernoulli, DiagonalGaussian, Gaussian, sum_events


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
    return sum_events((x_hat - x) ** 2)


def binary_cross_entropy(logits: Tensor, x: Tensor) -> Tensor:
    """Binary cross-entropy summed per example, (N,): the autoencoder's BCE loss."""
    return sum_events(F.binary_cross_entropy_with_logits(logits, x, reduction="none"))


def iwae_log_weights_to_bound(log_w: Tensor) -> Tensor:
    """(K, N) log importance weights -> (N,) bound log (1/K) sum_k w_k (Burda et al. 2015).

    Every sample is weighted by its own normalised weight through logsumexp: the best samples count
    most (weighting samples by their *loss* up-weights the worst ones, a bug seen in the wild).
    """
    k = log_w.shape[0]
    return torch.logsumexp(log_w, dim=0) - torch.log(torch.tensor(float(k), dtype=log_w.dtype))


# --- adversarial losses (logits / critic values in, per-batch scalars out) ---------------------------
GAN_LOSSES = ("minimax", "nonsaturating", "hinge", "wasserstein")


def _check_gan_loss(kind: str) -> None:
    if kind not in GAN_LOSSES:
        raise ValueError(f"unknown GAN loss {kind!r}; choose from {', '.join(GAN_LOSSES)}")


def gan_d_loss(kind: str, d_real: Tensor, d_fake: Tensor, *, smoothing: float = 0.0) -> Tensor:
    """The discriminator's (critic's) loss from its outputs on real and fake data, (N,) each -> ().

    minimax / nonsaturating (Goodfellow et al. 2014): binary cross-entropy with target 1 - s for
    real (one-sided label smoothing, Salimans et al. 2016) and 0 for fake:
    (1 - s)·softplus(-d_real) + s·softplus(d_real) + softplus(d_fake).
    hinge (Lim & Ye 2017; Miyato et al. 2018): relu(1 - d_real) + relu(1 + d_fake).
    wasserstein (Arjovsky et al. 2017): d_fake - d_real (the critic maximises the gap).
    """
    _check_gan_loss(kind)
    if kind in ("minimax", "nonsaturating"):
        real = (1.0 - smoothing) * F.softplus(-d_real) + smoothing * F.softplus(d_real)
        return real.mean() + F.softplus(d_fake).mean()
    if kind == "hinge":
        return F.relu(1.0 - d_real).mean() + F.relu(1.0 + d_fake).mean()
    return d_fake.mean() - d_real.mean()


def gan_g_loss(kind: str, d_fake: Tensor) -> Tensor:
    """The generator's loss from the discriminator's outputs on its samples, (N,) -> ().

    minimax: minimise log(1 - D(G(z))) = -softplus(d_fake) (saturates when D wins);
    nonsaturating: minimise -log D(G(z)) = softplus(-d_fake); hinge and wasserstein: -d_fake.
    """
    _check_gan_loss(kind)
    if kind == "minimax":
        return -F.softplus(d_fake).mean()
    if kind == "nonsaturating":
        return F.softplus(-d_fake).mean()
    return -d_fake.mean()


def gradient_penalty(critic, real: Tensor, fake: Tensor, *, generator: torch.Generator | None = None,
                     eps: Tensor | None = None) -> Tensor:
    """WGAN-GP's penalty (Gulrajani et al. 2017): E[(||grad_x critic(x_hat)||_2 - 1)^2], a scalar.

    x_hat = eps·real + (1 - eps)·fake with one eps ~ U(0, 1) per example (given as ``eps`` (N,), or
    drawn on the CPU from ``generator``, or the global RNG); the norm is over the flattened example.
    The graph is kept (create_graph) so the penalty trains the critic.
    """
    n, ones = real.shape[0], [1] * (real.dim() - 1)
    if eps is None:
        eps = torch.rand(n, generator=generator)
    eps = eps.reshape(n, *ones).to(real)  # (N, 1, ...)
    x_hat = (eps * real.detach() + (1 - eps) * fake.detach()).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    norm = (grad.flatten(1).pow(2).sum(1) + 1e-12).sqrt()  # (N,); the epsilon keeps d norm finite at 0
    return (norm - 1.0).pow(2).mean()


def r1_penalty(d_real: Tensor, inputs: Tensor) -> Tensor:
    """R1 (Mescheder et al. 2018): E_real[||grad_x D(x)||_2^2], a scalar; the critic loss adds gamma/2 times it.

    ``d_real`` (N,) are D's outputs on the real examples, computed from ``inputs`` (M, ...), M >= N, whose first
    N rows are those examples (a pass over real and fake together: D without batch statistics treats each row
    alone, so the fakes' rows get no gradient from d_real). The graph is kept so the penalty trains D.
    """
    (grad,) = torch.autograd.grad(d_real.sum(), inputs, create_graph=True)
    return grad[: d_real.shape[0]].flatten(1).pow(2).sum(1).mean()


# --- InfoGAN's mutual-information term --------------------------------------------------------------
def info_categorical(logits: Tensor, codes: Tensor) -> Tensor:
    """Cross-entropy of Q's categorical predictions: logits (N, C, K), codes (N, C) ints -> ().

    L_I = H(c) - CE for a uniform c, so minimising this (mean over codes) maximises InfoGAN's lower
    bound on I(c; G(z, c)) (Chen et al. 2016, eq. 4)."""
    return F.cross_entropy(logits.flatten(0, 1), codes.flatten())


def caption_classification(logits: Tensor, ids: Tensor, sizes: Sequence[int]) -> Tensor:
    """The auxiliary classifier's term for captions (AC-GAN, Odena et al. 2017; on text, TAC-GAN, Dash et
    al. 2017): logits (N, V) over a vocabulary split into slots of ``sizes`` mutually exclusive words,
    ids (N, S) token ids (offset + word + 1; 0 = the caption leaves the slot open) -> ().

    The negative log-likelihood of the caption under a head that names each slot's word independently
    (a softmax over that slot's words only): each given slot's cross-entropy, summed over the slots,
    mean over the batch; open slots cost nothing. (A mean over the slots would give the shape, one of
    five slots on shapes, a fifth of the weight of AC-GAN's single class term.)"""
    total, start = logits.new_zeros(()), 0
    for s, size in enumerate(sizes):
        given = ids[:, s] > 0  # (N,)
        target = (ids[:, s] - 1 - start).clamp_min(0)  # (N,) word index within the slot (any, if open)
        ce = F.cross_entropy(logits[:, start:start + size], target, reduction="none")  # (N,)
        total = total + (ce * given).sum()
        start += size
    return total / ids.shape[0]


def info_continuous(mean: Tensor, log_std: Tensor, codes: Tensor) -> Tensor:
    """Gaussian negative log-likelihood of continuous codes (N, C) under Q's factorised N(mean, std²),
    summed over codes, mean over the batch -> () (Chen et al. 2016, the continuous part of L_I)."""
    return gaussian_nll(mean, codes, log_std).mean() if codes.shape[1] else mean.new_zeros(())


# --- forcing the latent to mean something ----------------------------------------------------------
class _ClampToMean(torch.autograd.Function):
    """Forward: the clamped columns of z become their batch mean. Backward: their gradient is replaced
    by weight * (z - mean) / B (DC-IGN, Kulkarni et al. 2015, Sec. 3.1), the others pass unchanged."""

    @staticmethod
    def forward(ctx, z: Tensor, clamped: Tensor, weight: float) -> Tensor:
        mean = z.mean(0, keepdim=True)  # (1, D)
        ctx.save_for_backward(z - mean, clamped)
        ctx.weight = weight
        return torch.where(clamped, mean.expand_as(z), z)

    @staticmethod
    def backward(ctx, grad: Tensor):
        deviation, clamped = ctx.saved_tensors
        return torch.where(clamped, ctx.weight * deviation / len(deviation), grad), None, None


def dcign_clamp(z: Tensor, clamped: Tensor, weight: float = 1.0) -> Tensor:
    """z (B, D), clamped (D,) bool -> (B, D): clamped units replaced by their batch mean.

    Their gradient is replaced by ``weight`` * (z - mean) / B: the gradient of the invariance penalty
    weight/2 * mean_b ||z_b - mean||^2, so the encoder learns to keep them constant when their factor
    does not change, while the decoder learns from the one unit left free.
    """
    return _ClampToMean.apply(z, clamped.to(z.device), float(weight))


def feature_reconstruction(feats_hat: list[Tensor], feats: list[Tensor], *, norm: str = "channel",
                           pixels: int = 1) -> Tensor:
    """Deep feature consistency (Hou et al. 2017): a sum over layers l of squared feature errors, (N,).

    Hidden activations (N, C_l, H_l, W_l) of a fixed network for reconstructions and inputs -> (N,).
    ``norm="channel"``: each layer's squared error summed over positions, averaged over its channels,
    1/(2 C_l) ||phi_l(x_hat) - phi_l(x)||^2, so a layer's weight does not grow with its width (but
    does with its resolution: a 14x14 layer counts 4x a 7x7 one). ``norm="layer"``: Hou et al.'s
    1/(2 C_l H_l W_l) ||.||^2, every layer counts alike whatever its size, times ``pixels`` (the
    image's value count, e.g. 784) so the term sits on the per-example scale of a summed pixel loss.
    """
    if norm not in ("channel", "layer"):
        raise ValueError(f"unknown feature norm {norm!r}; choose channel or layer")
    total = feats[0].new_zeros(len(feats[0]))
    for a, b in zip(feats_hat, feats, strict=True):
        sq = sum_events((a - b) ** 2)  # (N,) summed over C_l, H_l, W_l
        total = total + (sq / (2 * a.shape[1]) if norm == "channel" else sq * pixels / (2 * a[0].numel()))
    return total


def class_consistency(logits: Tensor, logits_view: Tensor, temperature: float = 1.0) -> Tensor:
    """KL(q(y|x) || q(y|x')) per example, (N,), with q(y|x) held fixed (no gradient): the class
    posterior of an augmented view x' is pulled to that of x (the Pi-model / UDA term of Laine &
    Aila 2017 and Xie et al. 2020). logits, logits_view: (N, K). A ``temperature`` below 1 sharpens
    the target (UDA's 0.4), so the views are also pulled towards confident answers."""
    target = F.log_softmax(logits.detach() / temperature, dim=1)
    return (target.exp() * (target - F.log_softmax(logits_view, dim=1))).sum(1)


def marginal_balance(probs: Tensor) -> Tensor:
    """KL(mean_n q(y|x_n) || U(K)) of a batch's class posteriors (N, K): 0 when every class gets an
    equal share of the batch (the "marginal KL" of Hoffman & Johnson 2016)."""
    q_bar = probs.mean(0)  # (K,)
    return (q_bar * (q_bar.clamp_min(1e-12).log() + math.log(probs.shape[1]))).sum()
