"""InfoGAN (Chen et al. 2016): a GAN whose generator input carries codes that must stay readable.

    z (N, latent) ++ onehot(c_cat) (N, C·K) ++ c_cont (N, M) --G--> x (N, *shape)
    x --D trunk--> h (N, F) --D head--> real/fake     h --Q head--> logits (N, C, K), mean/log-std (N, M)

Nothing tells the codes what to mean; the mutual-information lower bound
L_I = H(c) − E[−log Q(c | G(z, c))] (eq. 4 of the paper) is maximised by G and by Q, so G must
put each code somewhere Q can read it back, and on digits the categorical code usually finds the
class and the continuous ones slant and width. As in the authors' code, the L_I term is added to
both phases: the critic phase trains Q (sharing D's trunk) on the fakes D already sees, the
generator phase pushes G. Any adversarial loss of the GAN family works (``model.loss``, and
``model.gp_weight`` for WGAN-GP's penalty).

The latent that every tool sees (``prior_sample``, ``decode``, interpolation, projection) is G's
whole input: noise then codes, (N, latent + C·K + M); ``code_layout`` says where the codes are.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .. import losses
from ..config import MAX_WIDTH, WIDTHS, DataInfo, option
from ..errors import GenlabError
from ..nn.blocks import ConvDecoder, ConvEncoder
from ..registry import MODELS
from .base import Phase
from .capabilities import PredictsCodes, ReadableCodes
from .gan import GAN, GANConfig


@dataclass(frozen=True)
class InfoGANConfig(GANConfig):
    """The paper's MNIST set-up: 62 noise dimensions, one 10-way categorical code, two continuous
    codes uniform on [−1, 1]; λ = 1 for the categorical part and smaller for the continuous one,
    whose Gaussian Q has a fixed unit std as in the authors' code."""

    categories: int = option(10, "values of each categorical code", min=2, max=1000)
    cat_codes: int = option(1, "number of categorical codes", min=0, max=100)
    cont_codes: int = option(2, "number of continuous codes", min=0, max=100)
    info_weight: float = option(1.0, "lambda of the categorical part of L_I", min=0)
    cont_weight: float = option(0.1, "lambda of the continuous part of L_I", min=0)
    # fixed, as in the authors' code: a learned std shrinks as Q gets sure and scales the continuous term's
    # gradients by 1/std^2, so the continuous codes outweighed their lambda and took class changes with them
    cont_std: float | None = option(1.0, "Q's std for the continuous codes (none: learned)", min=0,
                                    min_exclusive=True)
    q_hidden: int = option(128, "width of Q's hidden layer on top of D's trunk", **WIDTHS)
    d_batchnorm: bool = option(True, "batch statistics in D's trunk, as the paper's MNIST net (not with a gradient "
                                     "penalty: it is per example)")
    g_fc: int = option(1024, "width of a hidden fully connected layer at G's input, as the paper's (0: none)",
                       min=0, max=MAX_WIDTH)
    # not the paper's: on mnist5k the raw G's categories drift and then collapse once D knows the digits;
    # the average keeps them (training is unchanged; benchmarks/infogan.py)
    ema: float | None = 0.999

    AUTO: ClassVar[dict[str, dict[str, Any]]] = {
        "image": {**GANConfig.AUTO["image"], "latent_dim": 62, "hidden": (1024,), "lr_g": 1e-3, "lr_d": 2e-4,
                  "r1": 0.0},
        "points": {**GANConfig.AUTO["points"], "latent_dim": 4},
    }


@dataclass(frozen=True)
class CodeLayout:
    """Where the codes sit in G's input vector: noise [0, noise), then categorical blocks, then continuous."""

    noise: int
    categories: int
    cat_codes: int
    cont_codes: int

    @property
    def cat_start(self) -> int:
        return self.noise

    @property
    def cont_start(self) -> int:
        return self.noise + self.cat_codes * self.categories

    @property
    def size(self) -> int:
        return self.cont_start + self.cont_codes

    def compose(self, noise: Tensor, cat: Tensor, cont: Tensor) -> Tensor:
        """noise (N, noise), cat (N, C) ints, cont (N, M) -> G's input (N, size)."""
        onehot = F.one_hot(cat.long(), self.categories).flatten(1).to(noise)  # (N, C·K)
        return torch.cat([noise, onehot, cont.to(noise)], 1)

    def split(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """G's input (N, size) -> noise (N, noise), cat (N, C) ints (argmax of each block), cont (N, M)."""
        blocks = z[:, self.cat_start:self.cont_start].view(len(z), self.cat_codes, self.categories)
        return z[:, :self.noise], blocks.argmax(2), z[:, self.cont_start:]


@MODELS.register("infogan",
                 help="InfoGAN: categorical and continuous codes kept readable by a Q head (Chen et al. 2016)")
class InfoGAN(GAN, ReadableCodes, PredictsCodes):
    Config = InfoGANConfig
    default_eval_metrics = ("fd", "code_acc")
    # bf16 autocast where the CPU / GPU has fast bf16 (else fp32): code_acc grows with steps, and a bf16 step
    # is cheaper with the same code_acc per step.
    # best.pt: the latest weights whose validation FD is within 50% of the lowest so far. The lowest alone
    # comes early, before the categories are the classes; the last weights are lost once D has learnt the
    # 4,000 training digits and FD runs away (code_acc falls with it). Figures: docs/models/infogan.md
    train_defaults = {"precision": "auto", "select_tolerance": 0.5}
    train_defaults_by_kind = {}  # the trainer's batch (128), at which its figures are measured

    def __init__(self, config: InfoGANConfig, data_info: DataInfo):
        if config.categories < 2 and config.cat_codes:
            raise GenlabError(f"model.categories={config.categories} must be at least 2")
        if min(config.cat_codes, config.cont_codes) < 0 or config.cat_codes + config.cont_codes < 1:
            raise GenlabError("infogan needs at least one code: set model.cat_codes or model.cont_codes >= 1")
        if config.d_batchnorm and config.gp_weight:
            raise GenlabError("model.gp_weight needs a critic without batch statistics: set model.d_batchnorm=false")
        super().__init__(config, data_info)
        c = self.config  # resolved
        self.code_layout = CodeLayout(c.latent_dim, c.categories, c.cat_codes, c.cont_codes)
        features = c.hidden[-1]  # the width of D's trunk output
        self.q = nn.Sequential(nn.Linear(features, c.q_hidden), nn.LeakyReLU(0.2),
                               nn.Linear(c.q_hidden, c.cat_codes * c.categories + 2 * c.cont_codes))

    def _g_net(self, conv: bool) -> nn.Module:
        c = self.config
        if not (conv and c.g_fc):
            return super()._g_net(conv)
        z_dim = c.latent_dim + self.embed_dim
        return nn.Sequential(nn.Linear(z_dim, c.g_fc, bias=False), nn.BatchNorm1d(c.g_fc), nn.ReLU(),
                             ConvDecoder(c.g_fc, self.data_info.shape, c.channels, batchnorm=True))

    def _d_body(self, conv: bool) -> tuple[nn.Module, int]:
        c = self.config
        if not (conv and c.d_batchnorm):
            return super()._d_body(conv)
        width = c.hidden[-1]
        return nn.Sequential(ConvEncoder(self.data_info.shape, width, c.channels, batchnorm=True),
                             nn.BatchNorm1d(width), nn.LeakyReLU(0.2)), width

    @property
    def embed_dim(self) -> int:  # G's input beyond the noise: the codes
        c = self.config
        return c.cat_codes * c.categories + c.cont_codes

    @property
    def latent_size(self) -> int:
        """Length of the latent the tools see: noise and codes."""
        return self.code_layout.size

    def phases(self) -> list[Phase]:
        critic, generator = super().phases()
        critic.parameters = lambda: itertools.chain(self.critic.parameters(), self.q.parameters())
        return [critic, generator]

    # --- codes -----------------------------------------------------------------------------------
    def draw_codes(self, n: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Uniform categorical codes (n, C) and continuous codes U(−1, 1) (n, M), on the model's device."""
        c = self.config
        cat = torch.randint(c.categories, (n, c.cat_codes), generator=generator)
        cont = torch.rand(n, c.cont_codes, generator=generator) * 2 - 1
        return cat.to(self.device), cont.to(self.device)

    def prior_sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """G's whole input (n, noise + codes): N(0, I) noise, then codes from their priors."""
        noise = torch.randn(n, self.config.latent_dim, generator=generator).to(self.device)
        return self.code_layout.compose(noise, *self.draw_codes(n, generator))

    def draw_latents(self, n: int) -> dict[str, Tensor]:
        z = self.prior_sample(n)
        _, cat, cont = self.code_layout.split(z)
        return {"z": z, "code_cat": cat, "code_cont": cont}

    def q_outputs(self, h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """D's trunk features (N, F) -> categorical logits (N, C, K), continuous mean and log-std (N, M)."""
        c = self.config
        out = self.q(h)
        k = c.cat_codes * c.categories
        logits = out[:, :k].view(len(h), c.cat_codes, c.categories)
        mean, log_std = out[:, k:].chunk(2, dim=1)  # (N, M) each
        if c.cont_std is not None:
            return logits, mean, torch.full_like(mean, math.log(c.cont_std))
        return logits, mean, log_std.clamp(-5.0, 2.0)  # keep the Gaussian's scale sane early on

    def auxiliary_loss(self, features: Tensor, latents: dict[str, Tensor]) -> dict[str, Tensor]:
        c = self.config
        logits, mean, log_std = self.q_outputs(features)
        out: dict[str, Tensor] = {"loss": features.new_zeros(())}
        if c.cat_codes:
            ce = losses.info_categorical(logits, latents["code_cat"])
            out["loss"] = out["loss"] + c.info_weight * ce
            out["mi_cat"] = (math.log(c.categories) - ce).detach()  # L_I per code, → ln K
        if c.cont_codes:
            nll = losses.info_continuous(mean, log_std, latents["code_cont"])
            out["loss"] = out["loss"] + c.cont_weight * nll
            out["q_cont_nll"] = nll.detach()
        return out

    @torch.no_grad()
    def predict_codes(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Q on images (N, *shape): the most likely categorical codes (N, C) and continuous means (N, M)."""
        _, h = self.critic(x.to(self.device), features=True)
        logits, mean, _ = self.q_outputs(h)
        return logits.argmax(2), mean

    def sample_with_latents(self, n, *, y=None, generator=None):
        drawn = super().sample_with_latents(n, y=y, generator=generator)
        _, cat, cont = self.code_layout.split(drawn["z"])
        return {**drawn, "code_cat": cat, "code_cont": cont}
