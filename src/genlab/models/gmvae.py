"""Gaussian-mixture VAE for clustering: a categorical y picks a Gaussian prior component for z.

The categorical-y formulation of Dilokthanakul et al. 2016 ("Deep unsupervised clustering with
Gaussian mixture variational autoencoders") as simplified by Rui Shu (2016, "vae-clustering"):

    generative:  y ~ Uniform(K),  z | y ~ N(mu_y, sigma_y^2) (learned),  x | z ~ p(x|z) (the VAE's)
    inference:   q(y|x) = softmax(logits(x)),  q(z|x, y) = N(m_y(x), s_y(x)^2)

    x --g_enc--> [ logits (N, K) | m, log s^2 (N, K, D) each ] ;  z_y --g_dec--> p(x|z_y)

The ELBO enumerates y exactly (no sampling of the discrete variable, no relaxation):

    ELBO(x) = sum_y q(y|x) [ E_q(z|x,y) log p(x|z) - KL(q(z|x,y) || p(z|y)) ] - KL(q(y|x) || U(K))

with one reparameterised z per component and both KLs in closed form. The loss reports its pieces
``recon`` + ``kl_z`` + ``kl_y`` (they sum to the loss at beta = 1 and balance = 0). Not in the
ELBO: ``balance`` * KL(mean_batch q(y|x) || U(K)), the marginal KL of Hoffman & Johnson 2016
("ELBO surgery") counted once more, logged as ``kl_y_marginal``; without it q(y|x) turns one-hot
on one or two components within a few hundred steps and never recovers. q(y|x) is the model's own
clustering (``cluster_probs``); E_q[z] = sum_y q(y|x) m_y(x) is the code ``encode`` gives.

Also not in the ELBO, on images: ``consistency`` * KL(q(y|x) || q(y|x')) for a random view x' of the
same image (turned, slanted, scaled, shifted, pen width changed: ``nn.augment.label_preserving_view``),
the target q(y|x) held fixed (the Pi-model / UDA consistency term; IIC, Ji et al. 2019, clusters with
views alone). The ELBO alone groups digits by what the decoder needs most, slant and pen width as
much as identity; the views say which changes a cluster must ignore (docs/models/gmvae.md).
``consistency=0`` with ``balance=0`` is the model of the paper.
The encoder has one head per component (K Gaussian heads on a shared trunk), so all K posteriors
come from a single pass; the decoder then runs on the K * N codes at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import DataInfo, option
from ..distributions import kl_diag_normals, log_normal
from ..errors import GenlabError
from ..losses import class_consistency, iwae_log_weights_to_bound, marginal_balance
from ..nn import make_encoder
from ..nn.augment import label_preserving_view
from ..registry import MODELS
from .capabilities import Clusters
from .vae import VAE, VAEConfig


@dataclass(frozen=True)
class GMVAEConfig(VAEConfig):
    latent_dim: int = 10
    components: int = option(10, "K, the number of mixture components (clusters)", min=1, max=1000)
    prior_spread: float = option(2.0, "initial means mu_y ~ N(0, spread^2 I): distinct components from step 0",
                                 min=0)
    # the default keeps all 10 components of mnist5k in use (at 1 q(y|x) collapsed onto 2 of them)
    balance: float = option(20.0, "weight of KL(batch-mean q(y) || U(K)) added to the loss (0: the plain ELBO)",
                            min=0)
    consistency: float = option(100.0, "weight of KL(q(y|x) || q(y|x')) for a random label-preserving view x' "
                                       "(0: off)", min=0)
    consistency_temperature: float = option(1.0, "temperature of the target q(y|x) (< 1 sharpens it, as in UDA)",
                                            min=0, min_exclusive=True)
    classifier_arch: str | None = option(None, "q(y|x)'s own network (conv: images only, with channels); none: a "
                                               "head on the encoder's trunk", choices=("mlp", "conv"))


@MODELS.register("gmvae", help="Gaussian-mixture VAE: q(y|x) clusters, p(z|y) learned, ELBO enumerates y")
class GMVAE(VAE, Clusters):
    Config = GMVAEConfig

    def __init__(self, config: GMVAEConfig, data_info: DataInfo):
        if config.components < 1:
            raise GenlabError(f"model.components={config.components}: need at least 1")
        super().__init__(config, data_info)
        k, d = config.components, config.latent_dim
        self.classifier = None
        if config.classifier_arch is not None:
            self.classifier = make_encoder(config.classifier_arch, data_info.shape, k, hidden=config.hidden,
                                           channels=config.channels)
        self.prior_mu = nn.Parameter(config.prior_spread * torch.randn(k, d))  # (K, D)
        self.prior_logvar = nn.Parameter(torch.zeros(k, d))  # (K, D)

    @property
    def default_eval_metrics(self) -> tuple[str, ...]:
        """The ELBO picks best.pt (no labels choose the weights); cluster_acc is logged beside it."""
        return ("elbo", "fd", "recon_mse", "cluster_acc")

    @property
    def components(self) -> int:
        return self.config.components

    def encoder_outputs(self) -> int:
        own = self.config.classifier_arch is None  # the trunk gives the logits too
        return self.config.components * (int(own) + 2 * self.config.latent_dim)  # [logits], K (mu, log s^2)

    def class_logits(self, x: Tensor) -> Tensor:
        """q(y|x) logits, (N, K), from the classifier network (when the model has one)."""
        return self.classifier(x) if self.classifier is not None else self.inference(x)[0]

    # --- distributions -------------------------------------------------------------------------
    def inference(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x (N, *shape) -> q(y|x) logits (N, K), q(z|x,y) means and log-variances (N, K, D)."""
        k, d = self.components, self.config.latent_dim
        out = self.encoder(x)  # (N, [K +] K * 2D)
        if self.classifier is not None:
            logits, rest = self.classifier(x), out.reshape(-1, k, 2, d)
        else:
            logits, rest = out[:, :k], out[:, k:].reshape(-1, k, 2, d)
        return logits, rest[:, :, 0], rest[:, :, 1].clamp(-12.0, 8.0)

    def prior_params(self) -> tuple[Tensor, Tensor]:
        return self.prior_mu, self.prior_logvar.clamp(-12.0, 8.0)

    def cluster_probs(self, x: Tensor) -> Tensor:
        """q(y|x), (N, K); rows sum to 1."""
        return F.softmax(self.class_logits(x), dim=1)

    def encode(self, x: Tensor) -> Tensor:
        """E_q[z] = sum_y q(y|x) m_y(x), (N, latent_dim)."""
        logits, mu, _ = self.inference(x)
        return (F.softmax(logits, dim=1).unsqueeze(2) * mu).sum(1)

    def _decode_all(self, z: Tensor, x: Tensor) -> Tensor:
        """log p(x|z_y) for codes z (N, K, D) of inputs x (N, *shape) -> (N, K)."""
        n, k, d = z.shape
        xs = x.unsqueeze(1).expand(n, k, *x.shape[1:]).reshape(n * k, *x.shape[1:])  # (N*K, *shape)
        return self.decoder_dist(z.reshape(n * k, d)).log_prob(xs).view(n, k)

    def terms(self, x: Tensor) -> dict[str, Tensor]:
        """The three per-example pieces of the negative ELBO, (N,) each, in nats, and q(y|x)'s
        ``logits`` (N, K)."""
        logits, mu, logvar = self.inference(x)  # (N, K), (N, K, D) x 2
        q_y = F.softmax(logits, dim=1)
        z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)  # (N, K, D): one z per component
        p_mu, p_logvar = self.prior_params()  # (K, D)
        rec = -(q_y * self._decode_all(z, x)).sum(1)
        kl_z = (q_y * kl_diag_normals(mu, logvar, p_mu, p_logvar)).sum(1)
        kl_y = (q_y * (F.log_softmax(logits, dim=1) + math.log(self.components))).sum(1)
        return {"recon": rec, "kl_z": kl_z, "kl_y": kl_y, "logits": logits}

    # --- sampling ------------------------------------------------------------------------------
    def _draw(self, y: Tensor, generator: torch.Generator | None) -> Tensor:
        """z ~ p(z|y) for components y (n,), drawn on the CPU from ``generator`` -> (n, D)."""
        eps = torch.randn(len(y), self.config.latent_dim, generator=generator).to(self.device)
        mu, logvar = self.prior_params()
        y = y.to(self.device)
        return mu[y] + (0.5 * logvar[y]).exp() * eps

    def _x_from(self, z: Tensor, generator: torch.Generator | None) -> Tensor:
        dist = self.decoder_dist(z)
        return dist.mean if self.is_image or self.likelihood == "bernoulli" else dist.sample(generator)

    @property
    def sample_groups(self) -> int:
        return self.components  # sample grids: a row per component

    def sample_with_latents(self, n, *, y=None, generator=None):
        """{"x", "z", "component"}: components y as given (or cycling 0..K-1: y ~ U(K) in equal shares),
        z ~ p(z|y), x the decoder's mean (images)."""
        comp = torch.arange(n) % self.components if y is None else y.cpu().long()
        with torch.no_grad():
            z = self._draw(comp, generator)
            return {"x": self._x_from(z, generator), "z": z, "component": comp}

    # --- likelihood ------------------------------------------------------------------------------
    def elbo(self, x: Tensor) -> Tensor:
        """The enumerated-y ELBO with one z per component, (N,) nats."""
        t = self.terms(x)
        return -(t["recon"] + t["kl_z"] + t["kl_y"])

    def iwae_bound(self, x: Tensor, k: int, *, chunk: int = 100) -> Tensor:
        """log p(x) >= log (1/k) sum_j p(x|z_j) p(z_j) / q(z_j|x), (N,) nats (Burda et al. 2015).

        The proposal is the marginal q(z|x) = sum_y q(y|x) q(z|x,y) (draw y_j ~ q(y|x), then z_j),
        and both p(z) = sum_y p(y) p(z|y) and q(z|x) are evaluated as mixtures, so y is summed out:
        k = 1 is in expectation at least the enumerated ELBO, and the bound tightens with k.
        """
        logits, mu, logvar = self.inference(x)  # (N, K), (N, K, D)
        log_qy = F.log_softmax(logits, dim=1)
        p_mu, p_logvar = self.prior_params()
        log_w = []
        for start in range(0, k, chunk):
            m = min(chunk, k - start)
            y = torch.multinomial(log_qy.exp(), m, replacement=True).T  # (m, N)
            rows = torch.arange(len(x), device=x.device)
            z = mu[rows, y] + (0.5 * logvar[rows, y]).exp() * torch.randn_like(mu[rows, y])  # (m, N, D)
            zk = z.unsqueeze(2)  # (m, N, 1, D) against the K components
            log_q = torch.logsumexp(log_qy + log_normal(zk, mu, logvar), dim=2)  # (m, N)
            log_p = torch.logsumexp(log_normal(zk, p_mu, p_logvar), dim=2) - math.log(self.components)
            xs = x.repeat(m, *([1] * (x.dim() - 1)))  # (m*N, *shape)
            log_px = self.decoder_dist(z.reshape(m * len(x), -1)).log_prob(xs).view(m, -1)
            log_w.append(log_px + log_p - log_q)
        return iwae_log_weights_to_bound(torch.cat(log_w))

    # --- training ------------------------------------------------------------------------------
    def loss(self, phase, batch, *, step=0):
        x = batch["x"]
        if self.binarized:
            x = torch.bernoulli(x)  # dynamic binarisation, as in the VAE
        t = self.terms(x)
        logits = t.pop("logits")
        w = self.kl_weight(step)
        loss = (t["recon"] + w * (t["kl_z"] + t["kl_y"])).mean()
        out = {k: v.mean().detach() for k, v in t.items()}
        out["nelbo"] = out["recon"] + out["kl_z"] + out["kl_y"]
        if self.config.balance > 0:
            # the "marginal KL" of the batch's aggregate q(y), counted once more so that one
            # component cannot take all of x
            marginal = marginal_balance(F.softmax(logits, dim=1))
            loss = loss + self.config.balance * marginal
            out["kl_y_marginal"] = marginal.detach()
        if self.config.consistency > 0 and self.is_image:
            # not in the ELBO: the cluster of a digit should not change when it is turned a little;
            # without it q(y|x) splits classes by slant and thickness (what the decoder needs most)
            view = label_preserving_view(batch["x"])  # (N, C, H, W), the un-binarised images
            cons = class_consistency(logits, self.class_logits(view), self.config.consistency_temperature).mean()
            loss = loss + self.config.consistency * cons
            out["consistency"] = cons.detach()
        if self.likelihood == "gaussian-learned-sigma":
            out["sigma"] = self.log_sigma.detach().exp()
        return {"loss": loss, **out}
