"""Variational autoencoder (Kingma & Welling 2014; Rezende et al. 2014).

    x --encoder--> (mu, log sigma^2) --z = mu + sigma * eps--> decoder --> p(x|z)

Loss: the per-example negative ELBO in nats, -E_q[log p(x|z)] + beta * KL(q(z|x) || N(0, I)),
with the KL reported separately and beta optionally warmed up from 0. Decoder likelihoods:
``bernoulli`` (logits; optionally with dynamic binarisation of the training images, as in the
literature), ``gaussian`` (fixed sigma: a scaled L2), ``gaussian-learned-sigma`` (one learned
sigma shared by all pixels, as in the sigma-VAE). ``iwae_bound`` gives the importance-weighted
bound of Burda et al. 2015, our estimate of the test NLL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..config import DataInfo
from ..distributions import Bernoulli, DiagonalGaussian, Gaussian
from ..losses import iwae_log_weights_to_bound, kl_normal
from ..registry import MODELS
from .autoencoder import AEConfig, Autoencoder, _check_choice

LIKELIHOODS = ("auto", "bernoulli", "gaussian", "gaussian-learned-sigma")


@dataclass(frozen=True)
class VAEConfig(AEConfig):
    latent_dim: int = 20
    likelihood: str = "auto"  # "auto": bernoulli for images, gaussian for points
    sigma: float = 0.1  # the fixed sigma of "gaussian" (initial sigma of the learned one)
    beta: float = 1.0  # weight of the KL term (beta-VAE when > 1)
    warmup_steps: int = 0  # KL weight ramps linearly from 0 to beta over these steps
    binarize: bool = True  # dynamic binarisation of training images (Bernoulli decoders only)


@MODELS.register("vae", help="variational autoencoder: Gaussian posterior, ELBO in nats, IWAE bound")
class VAE(Autoencoder):
    Config = VAEConfig

    def __init__(self, config: VAEConfig, data_info: DataInfo):
        super().__init__(config, data_info)
        _check_choice("likelihood", config.likelihood, LIKELIHOODS)
        lik = config.likelihood
        if lik == "auto":
            lik = "bernoulli" if data_info.kind == "image" else "gaussian"
        self.likelihood = lik
        # a scalar log sigma; trained only for gaussian-learned-sigma
        self.log_sigma = nn.Parameter(torch.tensor(math.log(config.sigma)),
                                      requires_grad=lik == "gaussian-learned-sigma")

    def encoder_outputs(self) -> int:
        return 2 * self.config.latent_dim  # mu and log sigma^2

    @property
    def binarized(self) -> bool:
        return self.likelihood == "bernoulli" and self.config.binarize and self.is_image

    # --- distributions -------------------------------------------------------------------------
    def posterior(self, x: Tensor) -> DiagonalGaussian:
        mu, logvar = self.encoder(x).chunk(2, dim=1)  # (N, latent_dim) each
        return DiagonalGaussian(mu, logvar.clamp(-12.0, 8.0))

    def decoder_dist(self, z: Tensor) -> Bernoulli | Gaussian:
        out = self.decode_raw(z)
        if self.likelihood == "bernoulli":
            return Bernoulli(out)
        mean = torch.sigmoid(out) if self.is_image else out
        return Gaussian(mean, self.log_sigma.clamp(min=math.log(1e-3)))

    def encode(self, x: Tensor) -> Tensor:
        return self.posterior(x).mu

    def sample_with_latents(self, n, *, y=None, generator=None):
        z = self.prior_sample(n, generator)
        with torch.no_grad():
            dist = self.decoder_dist(z)
            # images: the decoder's mean, as papers show them; points: a draw, noise included
            x = dist.mean if self.is_image or self.likelihood == "bernoulli" else dist.sample(generator)
        return {"x": x, "z": z}

    # --- likelihood ------------------------------------------------------------------------------
    def eval_targets(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The data the likelihood is defined on: a fixed binarisation for a binarised model."""
        if not self.binarized:
            return x
        return torch.bernoulli(x.cpu(), generator=generator).to(x.device)

    def elbo(self, x: Tensor) -> Tensor:
        """E_q[log p(x|z)] - KL(q || p) with one z sample and the KL in closed form, (N,) nats."""
        post = self.posterior(x)
        return self.decoder_dist(post.sample()).log_prob(x) - kl_normal(post)

    def iwae_bound(self, x: Tensor, k: int, *, chunk: int = 100) -> Tensor:
        """log p(x) >= log (1/k) sum_j p(x, z_j) / q(z_j|x), z_j ~ q(z|x); (N,) nats.

        k = 1 is the ELBO with a sampled KL (equal to ``elbo`` in expectation).
        """
        post = self.posterior(x)
        log_w = []
        for start in range(0, k, chunk):
            m = min(chunk, k - start)
            mu, logvar = (t.repeat(m, 1) for t in (post.mu, post.logvar))  # (m*N, latent)
            q = DiagonalGaussian(mu, logvar)
            z = q.sample()
            xs = x.repeat(m, *([1] * (x.dim() - 1)))  # (m*N, *shape)
            lw = self.decoder_dist(z).log_prob(xs) + DiagonalGaussian.standard(z.shape, z).log_prob(z) - q.log_prob(z)
            log_w.append(lw.view(m, -1))  # (m, N)
        return iwae_log_weights_to_bound(torch.cat(log_w))

    # --- training ------------------------------------------------------------------------------
    def kl_weight(self, step: int) -> float:
        c = self.config
        return c.beta * (min(1.0, step / c.warmup_steps) if c.warmup_steps > 0 else 1.0)

    def loss(self, phase, batch, *, step=0):
        x = batch["x"]
        if self.binarized:
            x = torch.bernoulli(x)  # dynamic binarisation: a fresh binary image each time
        post = self.posterior(x)
        rec = self.decoder_dist(post.sample()).log_prob(x)  # (N,) log p(x|z)
        kl = kl_normal(post)  # (N,)
        loss = (-rec + self.kl_weight(step) * kl).mean()
        out = {"loss": loss, "nelbo": (kl - rec).mean().detach(), "kl": kl.mean().detach(),
               "recon": (-rec).mean().detach()}
        if self.likelihood == "gaussian-learned-sigma":
            out["sigma"] = self.log_sigma.detach().exp()
        return out
