"""Variational autoencoder (Kingma & Welling 2014; Rezende et al. 2014).

    x --encoder--> (mu, log sigma^2) --z = mu + sigma * eps--> decoder --> p(x|z)

Loss: the per-example negative ELBO in nats, -E_q[log p(x|z)] + beta * KL(q(z|x) || N(0, I)),
with the KL reported separately and beta optionally warmed up from 0. Decoder likelihoods:
``bernoulli`` (logits; optionally with dynamic binarisation of the training images, as in the
literature), ``gaussian`` (fixed sigma: a scaled L2), ``gaussian-learned-sigma`` (one learned
sigma shared by all pixels, as in the sigma-VAE). ``iwae_bound`` gives the importance-weighted
bound of Burda et al. 2015, our estimate of the test NLL.

``loss="feature"`` is the Deep Feature Consistent VAE (Hou et al. 2017): the reconstruction term
compares the hidden activations of a fixed network for x and for the decoder's mean image
(``losses.feature_reconstruction``) instead of pixels; ``"both"`` adds it to the pixel term. The
network is a ``FeatureNet`` trained on the data set itself (no downloaded VGG), with another seed
than the evaluation's, frozen and saved with the model. By default every layer counts alike (Hou et
al.'s per-layer mean) and the compared layers run from the first conv stage to the standardised
128-d feature layer; the weight sets how much the KL weighs against them. The objective is then not
an ELBO: validation picks best.pt by Fréchet distance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..config import DataInfo, option
from ..distributions import Bernoulli, DiagonalGaussian, Gaussian
from ..errors import GenlabError
from ..losses import feature_reconstruction, iwae_log_weights_to_bound, kl_normal
from ..registry import MODELS
from .autoencoder import AEConfig, Autoencoder
from .capabilities import LikelihoodBound

LIKELIHOODS = ("auto", "bernoulli", "gaussian", "gaussian-learned-sigma")
RECON_LOSSES = ("pixel", "feature", "both")
FEATURE_NORMS = ("channel", "layer")
FEATURE_NETS = ("classifier", "autoencoder")


@dataclass(frozen=True)
class VAEConfig(AEConfig):
    latent_dim: int = 20
    likelihood: str = option("auto", "decoder likelihood; auto: bernoulli for images, gaussian for points",
                             choices=LIKELIHOODS)
    sigma: float = option(0.1, "the fixed sigma of gaussian (the initial sigma of the learned one)",
                          min=0, min_exclusive=True)
    beta: float = option(1.0, "weight of the KL term (a beta-VAE when > 1)", min=0)
    warmup_steps: int = option(0, "steps over which the KL weight ramps linearly from 0 to beta", min=0)
    binarize: bool = option(True, "dynamic binarisation of training images (Bernoulli decoders only)")
    loss: str = option("pixel", "reconstruction term: pixel (the ELBO), feature (DFC-VAE) or both",
                       choices=RECON_LOSSES)
    # the feature-loss defaults: every layer alike up to the feature layer, a weight that keeps the KL near the
    # pixel VAE's (a larger KL leaves holes between codes); the trials: docs/models/dfc-vae.md
    feature_weight: float = option(0.25, "weight of the feature-consistency term", min=0)
    feature_stages: int = option(4, "compare the feature net's first 1-3 conv stages (4: and its feature layer)",
                                 min=1, max=4)
    feature_norm: str = option("layer", "how layers are weighted: layer = Hou et al.'s mean over C*H*W times the "
                                        "pixel count; channel = sum over positions / 2C", choices=FEATURE_NORMS)
    feature_net: str = option("classifier", "the frozen feature net: classifier (labelled data) or autoencoder "
                                            "(trained to redraw its input; any data)", choices=FEATURE_NETS)


@MODELS.register("vae", help="variational autoencoder: Gaussian posterior, ELBO in nats, IWAE bound")
class VAE(Autoencoder, LikelihoodBound):
    Config = VAEConfig

    def __init__(self, config: VAEConfig, data_info: DataInfo):
        super().__init__(config, data_info)
        lik = config.likelihood
        if lik == "auto":
            lik = "bernoulli" if data_info.kind == "image" else "gaussian"
        self.likelihood = lik
        # a scalar log sigma; trained only for gaussian-learned-sigma
        self.log_sigma = nn.Parameter(torch.tensor(math.log(config.sigma)),
                                      requires_grad=lik == "gaussian-learned-sigma")
        if config.loss != "pixel":
            if not self.is_image or len(data_info.shape) != 3:
                raise GenlabError(f"model.loss={config.loss} compares image features; this data is "
                                  f"{data_info.kind} of shape {tuple(data_info.shape)}")
            from ..nn.features import FrozenFeatures

            if config.feature_stages not in (1, 2, 3, 4):
                raise GenlabError(f"model.feature_stages must be 1-4, got {config.feature_stages}")
            classes = (data_info.num_classes or 0) if config.feature_net == "classifier" else 0
            self.features = FrozenFeatures(*data_info.shape, num_classes=classes,
                                           stages=config.feature_stages)

    @property
    def default_eval_metrics(self) -> tuple[str, ...]:
        """The ELBO picks best.pt, unless the loss is not an ELBO (feature consistency): then FD."""
        return ("elbo", "fd", "recon_mse") if self.config.loss == "pixel" else ("fd", "sharpness", "recon_mse")

    def prepare(self, data) -> None:
        """Before training: load the frozen feature network of ``data`` for a feature-consistent loss."""
        if self.config.loss != "pixel":
            self.features.load_from(data)

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
        return self.decoder_dist(post.sample()).log_prob(x) - self.kl(post)

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
    def kl(self, post: DiagonalGaussian) -> Tensor:
        """KL(q(z|x) || p(z)) per example, (N,); p = N(0, I) here."""
        return kl_normal(post)

    def kl_weight(self, step: int) -> float:
        c = self.config
        return c.beta * (min(1.0, step / c.warmup_steps) if c.warmup_steps > 0 else 1.0)

    def loss(self, phase, batch, *, step=0):
        x = batch["x"]
        if self.binarized:
            x = torch.bernoulli(x)  # dynamic binarisation: a fresh binary image each time
        post = self.posterior(x)
        dist = self.decoder_dist(post.sample())
        rec = dist.log_prob(x)  # (N,) log p(x|z)
        kl = self.kl(post)  # (N,)
        data_term = -rec
        out = {}
        if self.config.loss != "pixel":
            with torch.no_grad():
                target = self.features(batch["x"])  # the grey-level input's activations
            feat = feature_reconstruction(self.features(dist.mean), target, norm=self.config.feature_norm,
                                          pixels=x[0].numel())  # (N,)
            data_term = self.config.feature_weight * feat + (data_term if self.config.loss == "both" else 0)
            out["feature"] = feat.mean().detach()
        loss = (data_term + self.kl_weight(step) * kl).mean()
        out = {"loss": loss, "nelbo": (kl - rec).mean().detach(), "kl": kl.mean().detach(),
               "recon": (-rec).mean().detach(), **out}
        if self.likelihood == "gaussian-learned-sigma":
            out["sigma"] = self.log_sigma.detach().exp()
        return out
