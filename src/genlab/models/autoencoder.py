"""Autoencoder: encoder -> small code z -> decoder, trained to reconstruct its input.

    x (N, *shape) --g_enc--> z (N, latent_dim) --g_dec--> x_hat (N, *shape)

Loss: L2 (sum of squared errors per example) or binary cross-entropy per example. The code z is
what later tools use as features (clustering, semi-supervised probes, compression). An
autoencoder has no prior over z: ``sample`` draws z ~ N(0, I) anyway, which is exactly why its
samples are poor and why the VAE exists ("where should you sample z?").
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .. import losses
from ..config import WIDTHS, DataInfo, ModelConfig, option
from ..nn import make_decoder, make_encoder
from ..registry import MODELS
from .base import GenerativeModel
from .capabilities import Decodes, Encodes, Reconstructs


@dataclass(frozen=True)
class AEConfig(ModelConfig):
    latent_dim: int = 16
    arch: str = option("mlp", "encoder and decoder networks (conv: images only)", choices=("mlp", "conv"))
    hidden: tuple[int, ...] = option((400,), "MLP widths, encoder side; the decoder mirrors them (empty: linear)",
                                     **WIDTHS)
    channels: tuple[int, ...] = option((32, 64, 128), "conv widths per stride-2 stage", **WIDTHS, nonempty=True)
    recon: str = option("bce", "reconstruction loss (points always use l2)", choices=("bce", "l2"))


@MODELS.register("ae", help="autoencoder: deterministic code z, L2 or BCE reconstruction")
class Autoencoder(GenerativeModel, Decodes, Reconstructs, Encodes):
    Config = AEConfig
    # what it is trained for picks best.pt: reconstruction. FD of decoded N(0, I) codes is still reported (the
    # lecture's point that an autoencoder is no sampler), but it rises as the codes spread, so it would keep the
    # first weights (benchmarks/results/tour_before_after.txt).
    default_eval_metrics = ("recon_mse", "fd")

    def __init__(self, config: AEConfig, data_info: DataInfo):
        super().__init__(config, data_info)
        shape = data_info.shape
        self.encoder = make_encoder(config.arch, shape, self.encoder_outputs(), hidden=config.hidden,
                                    channels=config.channels)
        self.decoder = make_decoder(config.arch, config.latent_dim, shape, hidden=config.hidden,
                                    channels=config.channels)

    def encoder_outputs(self) -> int:
        return self.config.latent_dim

    # --- the encoder-model surface -------------------------------------------------------------
    def encode(self, x: Tensor) -> Tensor:
        """x (N, *shape) -> z (N, latent_dim); for a VAE, the posterior mean."""
        return self.encoder(x)

    def decode_raw(self, z: Tensor) -> Tensor:
        """z -> the decoder's unbounded output: logits for images, coordinates for points."""
        return self.decoder(z)

    def decode(self, z: Tensor) -> Tensor:
        """z (N, latent_dim) -> data (N, *shape); images in [0, 1]."""
        out = self.decode_raw(z)
        return torch.sigmoid(out) if self.is_image else out

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))

    def sample_with_latents(self, n, *, y=None, generator=None):
        z = self.prior_sample(n, generator)
        with torch.no_grad():
            return {"x": self.decode(z), "z": z}

    # --- training ------------------------------------------------------------------------------
    def reconstruction_loss(self, out: Tensor, x: Tensor) -> Tensor:
        """Per-example loss (N,) from the decoder's raw output."""
        if self.config.recon == "bce" and self.is_image:
            return losses.binary_cross_entropy(out, x)
        return losses.squared_error(torch.sigmoid(out) if self.is_image else out, x)

    def loss(self, phase, batch, *, step=0):
        x = batch["x"]
        rec = self.reconstruction_loss(self.decode_raw(self.encoder(x)), x)  # (N,)
        return {"loss": rec.mean(), "recon": rec.mean().detach()}
