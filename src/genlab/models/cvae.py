"""Conditional VAE (Sohn et al. 2015; the fully supervised half of Kingma et al. 2014's M2).

    generative:  y ~ Uniform(K),  z ~ N(0, I),  x ~ p(x | z, y)
    inference:   q(z | x, y) = N(mu(h, y), sigma(h, y)^2),  h = g_enc(x)

    x --g_enc--> h (N, F) ++ onehot(y) (N, K) --linear--> (mu, log sigma^2) (N, D) each
    z (N, D) ++ onehot(y) (N, K) --g_dec--> p(x | z, y)

Every training example needs its label. Loss: the per-example negative ELBO in nats,
L(x, y) = -E_q log p(x|z,y) + beta * KL(q(z|x,y) || N(0, I)) - log p(y), likelihoods as the VAE's.
The model has no classifier of its own; ``classify`` is Bayes' rule through the ELBO:
logits_y = ELBO(x, y) + log p(y), with z at the posterior mean (a deterministic ELBO), so that
argmax_y is the class whose decoder explains x best. ``elbo(x)`` without a label is the bound
sum_y q(y|x) [ELBO(x, y) + log p(y) - log q(y|x)] with q(y|x) = softmax of those logits;
``iwae_bound`` is logsumexp_y [log p(y) + IWAE_k(x | y)], with k importance samples per class.
``encode(x, y=None)`` infers y by ``classify`` when it is not given;
``decode(z, y)`` takes labels (N,) or class probabilities (N, K) (y=None: the marginal mean over
a uniform y). Keeping z and changing y is the "analogies" picture (``genlab analogies``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import DataInfo, option
from ..distributions import DiagonalGaussian
from ..errors import GenlabError
from ..losses import iwae_log_weights_to_bound, kl_normal
from ..nn import make_decoder
from ..nn.blocks import ConvEncoder, Flat, mlp
from ..registry import MODELS
from .base import class_labels
from .capabilities import ClassConditional, Classifies
from .vae import VAE, VAEConfig


@dataclass(frozen=True)
class CVAEConfig(VAEConfig):
    latent_dim: int = 16
    hidden: tuple[int, ...] = option((500,), "MLP widths; the last is also the width F of the conv trunk's output",
                                     nonempty=True)


def make_trunk(arch: str, shape: tuple[int, ...], hidden: tuple[int, ...], channels: tuple[int, ...]) -> nn.Module:
    """x (N, *shape) -> features h (N, hidden[-1]) after a nonlinearity: an MLP or a conv stack."""
    if arch == "conv" and len(shape) == 3:
        return nn.Sequential(ConvEncoder(shape, hidden[-1], channels), nn.LeakyReLU(0.2))
    return Flat(mlp([math.prod(shape), *hidden], final_act=True))


@MODELS.register("cvae", help="conditional VAE: label into encoder and decoder; fully supervised")
class CVAE(VAE, ClassConditional, Classifies):
    Config = CVAEConfig
    # validation during training: the ELBO picks best.pt (no validation labels needed), accuracy is logged
    default_eval_metrics = ("elbo", "accuracy", "fd", "recon_mse")

    def __init__(self, config: CVAEConfig, data_info: DataInfo):
        if not data_info.num_classes:
            raise GenlabError(f"{type(self).__name__.lower()} needs labelled data (classes), "
                              "and this data set has no labels")
        super().__init__(config, data_info)
        self.num_classes: int = data_info.num_classes  # the capability `sample --label` reads
        k, d = self.num_classes, config.latent_dim
        # the VAE built a plain encoder and decoder: replace them by the conditional ones
        self.encoder = make_trunk(config.arch, data_info.shape, config.hidden, config.channels)
        self.z_head = nn.Linear(config.hidden[-1] + k, 2 * d)
        self.decoder = make_decoder(config.arch, d + k, data_info.shape, hidden=config.hidden,
                                    channels=config.channels)

    def encoder_outputs(self) -> int:
        return 1  # the VAE's encoder is replaced in __init__

    @property
    def log_prior_y(self) -> float:
        return -math.log(self.num_classes)

    def onehot(self, y: Tensor) -> Tensor:
        """Labels (N,) -> one-hot (N, K) floats; class probabilities (N, K) pass through."""
        return y.float() if y.dim() == 2 else F.one_hot(y, self.num_classes).float()

    # --- distributions -------------------------------------------------------------------------
    def posterior_from(self, h: Tensor, y: Tensor) -> DiagonalGaussian:
        """q(z | x, y) from trunk features h (N, F) and labels y (N,) or (N, K)."""
        mu, logvar = self.z_head(torch.cat([h, self.onehot(y)], 1)).chunk(2, dim=1)  # (N, D) each
        return DiagonalGaussian(mu, logvar.clamp(-12.0, 8.0))

    def posterior(self, x: Tensor, y: Tensor) -> DiagonalGaussian:
        return self.posterior_from(self.encoder(x), y)

    def decoder_dist(self, z: Tensor, y: Tensor):
        return super().decoder_dist(torch.cat([z, self.onehot(y)], 1))

    def class_elbos(self, x: Tensor, h: Tensor | None = None, *, sample: bool = True) -> Tensor:
        """ELBO(x, y) + log p(y) for every class y, (N, K) nats; one z per class (or z = mu).

        The N*K codes go through the decoder in one pass.
        """
        n, k = len(x), self.num_classes
        h = self.encoder(x) if h is None else h  # (N, F)
        ys = torch.arange(k, device=x.device).repeat(n)  # (N*K,): 0..K-1 for each example
        post = self.posterior_from(h.repeat_interleave(k, 0), ys)  # (N*K, D)
        z = post.sample() if sample else post.mu
        xs = x.repeat_interleave(k, 0)  # (N*K, *shape)
        elbo = self.decoder_dist(z, ys).log_prob(xs) - kl_normal(post)
        return (elbo + self.log_prior_y).view(n, k)

    # --- the conditional encoder-model surface -------------------------------------------------
    def classify(self, x: Tensor) -> Tensor:
        """Class logits (N, K): Bayes' rule through the deterministic ELBO (z = posterior mean)."""
        return self.class_elbos(x, sample=False)

    def infer_labels(self, x: Tensor) -> Tensor:
        return self.classify(x).argmax(1)

    def encode(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """Posterior mean of q(z | x, y) (N, D); y inferred by ``classify`` when not given."""
        h = self.encoder(x)
        return self.posterior_from(h, self.infer_labels(x) if y is None else y).mu

    def decode(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """z (N, D) and labels (N,) or probabilities (N, K) -> data (N, *shape), the decoder's mean.

        y=None: the mean of the marginal decoder sum_y p(y) p(x|z, y) (K decoder passes).
        """
        if y is not None:
            return self.decoder_dist(z, y).mean
        k = self.num_classes
        ys = torch.arange(k, device=z.device).repeat(len(z))  # (N*K,)
        out = self.decoder_dist(z.repeat_interleave(k, 0), ys).mean  # (N*K, *shape)
        return out.view(len(z), k, *out.shape[1:]).mean(1)

    @torch.no_grad()
    def reconstruct(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        y = self.infer_labels(x) if y is None else y
        return self.decode(self.posterior(x, y).mu, y)

    def sample_with_latents(self, n, *, y=None, generator=None):
        """{"x", "z", "y"}: z ~ N(0, I), labels as given (or cycling 0..K-1), x the decoder's mean."""
        labels = class_labels(n, y, self.num_classes, self.device)
        z = self.prior_sample(n, generator)
        with torch.no_grad():
            dist = self.decoder_dist(z, labels)
            x = dist.mean if self.is_image or self.likelihood == "bernoulli" else dist.sample(generator)
        return {"x": x, "z": z, "y": labels}

    # --- likelihood ----------------------------------------------------------------------------
    def elbo(self, x: Tensor) -> Tensor:
        """sum_y q(y|x) [ELBO(x, y) + log p(y) - log q(y|x)], one z per class, (N,) nats, with
        q(y|x) = softmax(classify(x)): Bayes' rule for the cvae, the classifier for m2.

        A bound on log p(x) for any q(y|x) that does not see the z noise; the tightest is the true
        p(y|x), where it is logsumexp_y of the ELBOs. (logsumexp_y of *sampled* ELBOs is not a
        bound: its convexity turns the sampling noise into an upward bias.)
        """
        log_q = F.log_softmax(self.classify(x), dim=1)  # (N, K)
        return (log_q.exp() * (self.class_elbos(x) - log_q)).sum(1)

    def iwae_bound(self, x: Tensor, k: int, *, chunk: int = 100) -> Tensor:
        """log p(x) >= logsumexp_y [log p(y) + IWAE_k(x | y)], (N,) nats: y summed out exactly,
        k importance samples of q(z | x, y) per class (Burda et al. 2015). Costs K * k decodes."""
        h = self.encoder(x)
        per_class = []
        for c in range(self.num_classes):
            y = torch.full((len(x),), c, dtype=torch.long, device=x.device)
            post = self.posterior_from(h, y)
            log_w = []
            for start in range(0, k, chunk):
                m = min(chunk, k - start)
                q = DiagonalGaussian(post.mu.repeat(m, 1), post.logvar.repeat(m, 1))  # (m*N, D)
                z = q.sample()
                xs = x.repeat(m, *([1] * (x.dim() - 1)))  # (m*N, *shape)
                lw = (self.decoder_dist(z, y.repeat(m)).log_prob(xs)
                      + DiagonalGaussian.standard(z.shape, z).log_prob(z) - q.log_prob(z))
                log_w.append(lw.view(m, -1))  # (m, N)
            per_class.append(iwae_log_weights_to_bound(torch.cat(log_w)) + self.log_prior_y)
        return torch.logsumexp(torch.stack(per_class, 1), dim=1)  # (N, K) -> (N,)

    # --- training ------------------------------------------------------------------------------
    def labelled_terms(self, x: Tensor, h: Tensor, y: Tensor, kl_weight: float) -> dict[str, Tensor]:
        """-log p(x|z,y) and KL(q(z|x,y) || p(z)) for labelled examples, (N,) each."""
        post = self.posterior_from(h, y)
        rec = -self.decoder_dist(post.sample(), y).log_prob(x)
        kl = kl_normal(post)
        return {"recon": rec, "kl": kl, "loss": rec + kl_weight * kl - self.log_prior_y}

    def training_input(self, batch: dict[str, Tensor]) -> Tensor:
        x = batch["x"]
        return torch.bernoulli(x) if self.binarized else x  # dynamic binarisation, as in the VAE

    def loss(self, phase, batch, *, step=0):
        y = batch.get("y")
        if y is None or (y < 0).any():
            raise GenlabError("cvae is fully supervised and needs every training label "
                              "(m2 learns from partly labelled data)")
        x = self.training_input(batch)
        t = self.labelled_terms(x, self.encoder(x), y, self.kl_weight(step))
        out = {k: v.mean() for k, v in t.items()}
        return {"loss": out["loss"], "nelbo": (out["recon"] + out["kl"]).detach() - self.log_prior_y,
                "recon": out["recon"].detach(), "kl": out["kl"].detach()}
