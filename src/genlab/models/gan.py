"""Generative adversarial networks (Goodfellow et al. 2014) and their Wasserstein variants.

    z ~ N(0, I) (N, latent_dim) --G--> x_fake (N, *shape) --D--> (N,) logits / critic values
                                     x_real (N, *shape) --D--> (N,)

Training alternates two phases: the critic (D) ``n_critic`` times on fresh batches, then the
generator (G) once. The adversarial losses live in ``genlab.losses``: minimax and non-saturating
(Goodfellow et al. 2014), hinge (Lim & Ye 2017), Wasserstein with weight clipping (WGAN, Arjovsky
et al. 2017) or with a gradient penalty (WGAN-GP, Gulrajani et al. 2017). Options: one-sided label
smoothing (Salimans et al. 2016), spectral normalisation of D (Miyato et al. 2018), and an
exponential moving average of G's weights for sampling (Karras et al. 2018; Yazıcı et al. 2019).

Images: G ends in tanh, mapped to [0, 1] at its edge ((tanh(a) + 1) / 2, i.e. sigmoid(2a)); D maps
its [0, 1] input to [-1, 1] first. Conv nets are DCGAN-shaped (Radford et al. 2016): BatchNorm in
G, none in D (the gradient penalty is per example). Points: G outputs coordinates, D reads them.
Default conv widths (32, 64): narrower than DCGAN's, they reach a lower FD in a CPU budget than
wider nets (docs/models/gan.md).
``critic``, ``generator_loss`` and ``generator_sample`` are the capabilities ``genlab.pictures.dfield``
reads to draw D's field and G's gradient arrows on 2-D points.
"""

from __future__ import annotations

import copy
import functools
import math
from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from .. import losses
from ..config import WIDTHS, DataInfo, ModelConfig, option
from ..errors import GenlabError
from ..nn.augment import AUGMENTATIONS, augment
from ..nn.blocks import ConvDecoder, ConvEncoder, Flat, mlp, spectral_normed
from ..registry import MODELS
from .base import GenerativeModel, Phase
from .capabilities import Adversarial, Decodes


@dataclass(frozen=True)
class GANConfig(ModelConfig):
    """A GAN's options. Fields left at ``None`` are "auto": the model fills them from ``AUTO`` by the
    data's kind ("image" or "points") when it is built (``resolved``); config.json keeps the None,
    so a rebuilt model resolves them the same way. Any of them can still be set by hand."""

    latent_dim: int | None = option(None, "width of z (none: by the data's kind)")
    arch: str = option("auto", "network kind; auto: mlp for points, conv for images", choices=("auto", "mlp", "conv"))
    hidden: tuple[int, ...] | None = option(None, "MLP widths (G mirrors them); D's feature width is the last "
                                                  "(none: by the data's kind)", **WIDTHS, nonempty=True)
    channels: tuple[int, ...] = option((32, 64), "conv widths per stride-2 stage (28x28 uses two)", **WIDTHS,
                                       nonempty=True)
    loss: str = option("nonsaturating", "adversarial loss", choices=losses.GAN_LOSSES)
    n_critic: int | None = option(None, "critic steps per generator step (none: by the data's kind)", min=1, max=100)
    lr_g: float | None = option(None, "G's learning rate (none: by the data's kind)", min=0, min_exclusive=True)
    lr_d: float | None = option(None, "D's learning rate (none: by the data's kind)", min=0, min_exclusive=True)
    betas: tuple[float, float] | None = option(None, "Adam's betas (none: by the data's kind)", min=0, max=1,
                                               max_exclusive=True)
    optimizer: str = option("adam", "optimiser of G and D", choices=("adam", "rmsprop"))
    clip: float | None = option(None, "WGAN weight clipping: every critic weight kept in [-clip, clip] (none: off)",
                                min=0, min_exclusive=True)
    gp_weight: float | None = option(None, "weight of the WGAN-GP gradient penalty (0: none; none: by the data's "
                                           "kind)", min=0)
    ema: float | None = option(None, "decay of the moving average of G used for sampling (0: off; e.g. 0.999; "
                                     "none: by the data's kind)", min=0, max=1, max_exclusive=True)
    spectral_norm: bool = option(False, "spectral normalisation of every critic layer")
    label_smoothing: float = option(0.0, "one-sided: real target 1 - s (minimax / nonsaturating)", min=0, max=1,
                                    max_exclusive=True)
    r1: float | None = option(None, "R1 weight gamma: D's loss adds gamma/2 E_real ||grad_x D(x)||^2, D held flat "
                                    "on the data (Mescheder et al. 2018; 0: off; none: by the data's kind)", min=0)
    r1_every: int = option(4, "lazy R1: the penalty on the critic steps of every k-th training step only, weighted "
                              "k x gamma (Karras et al. 2020): about 1/k of its cost", min=1, max=10_000)
    augment: str = option("none", "differentiable augmentation of everything D sees", choices=AUGMENTATIONS)

    #: values of the "auto" (None) fields per data kind; a variant overrides the entries it changes.
    #: Images: Adam 4e-4 for both nets with batch 64 (``GAN.train_defaults_by_kind``) reach a given FD on mnist5k
    #: in less than half the CPU-seconds of the DCGAN paper's 2e-4 with batch 128; without R1, D then memorises
    #: the 4,000 training digits and FD runs away after ~3,000 steps; with R1 (gamma 10, on every 4th step,
    #: ``r1_every``) it keeps falling (docs/speed.md, "Time to quality").
    AUTO: ClassVar[dict[str, dict[str, Any]]] = {
        "image": {"latent_dim": 64, "hidden": (256, 256), "n_critic": 1, "lr_g": 4e-4, "lr_d": 4e-4,
                  "betas": (0.5, 0.999), "gp_weight": 0.0, "ema": 0.0, "r1": 10.0},
        "points": {"latent_dim": 64, "hidden": (256, 256), "n_critic": 1, "lr_g": 2e-4, "lr_d": 2e-4,
                   "betas": (0.5, 0.999), "gp_weight": 0.0, "ema": 0.0, "r1": 0.0},
    }

    def resolved(self, kind: str) -> GANConfig:
        """This config with every None ("auto") field set to ``AUTO[kind]``'s value."""
        auto = self.AUTO["image" if kind == "image" else "points"]
        names = {f.name for f in fields(self)}
        return replace(self, **{k: v for k, v in auto.items() if k in names and getattr(self, k) is None})


class Generator(nn.Module):
    """z (N, latent) [+ a label embedding] -> x (N, *shape): images in [0, 1], points as coordinates."""

    def __init__(self, net: nn.Module, *, image: bool, num_classes: int | None = None, embed_dim: int = 0):
        super().__init__()
        self.net, self.image = net, image
        self.embed = nn.Embedding(num_classes, embed_dim) if num_classes else None

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        if self.embed is not None:
            z = torch.cat([z, self.embed(y)], dim=1)  # (N, latent + embed_dim)
        out = self.net(z)  # (N, *shape), unbounded
        return (torch.tanh(out) + 1) / 2 if self.image else out


class Discriminator(nn.Module):
    """D(x[, y]) = psi(phi(x)) [+ <embed(y), phi(x)>], (N,): the projection discriminator of
    Miyato & Koyama 2018 when ``num_classes`` is given, a plain one otherwise."""

    def __init__(self, body: nn.Module, features: int, *, image: bool, num_classes: int | None = None):
        super().__init__()
        self.body, self.image = body, image  # phi: x -> (N, features)
        self.head = nn.Linear(features, 1)  # psi
        self.embed = nn.Embedding(num_classes, features) if num_classes else None

    def forward(self, x: Tensor, y: Tensor | None = None, *, features: bool = False) -> Tensor | tuple[Tensor, Tensor]:
        """(N,) outputs; with ``features=True`` also phi(x) (N, F), for heads that share D's trunk."""
        h = self.body(x * 2 - 1 if self.image else x)  # (N, F)
        out = self.head(h).squeeze(1)  # (N,)
        if self.embed is not None:
            out = out + (self.embed(y) * h).sum(1)
        return (out, h) if features else out


def _differentiable(seen: Tensor, r1: float) -> Tensor:
    """D's input as a leaf that records its gradient when the R1 penalty needs grad_x D(x); else as it is."""
    return seen.detach().requires_grad_(True) if r1 else seen


def _twice(y: Tensor | None) -> Tensor | None:
    return None if y is None else torch.cat([y, y])


def _with_auxiliary(out: dict[str, Tensor], aux: dict[str, Tensor]) -> dict[str, Tensor]:
    """Add an auxiliary term's "loss" to the phase's loss; its other entries are logged."""
    if not aux:
        return out
    logged = {k: v for k, v in aux.items() if k != "loss"}
    return {**out, **logged, "loss": out["loss"] + aux["loss"]}


@MODELS.register("gan", help="GAN: generator vs discriminator; minimax, non-saturating, hinge or Wasserstein loss")
class GAN(GenerativeModel, Decodes, Adversarial):
    Config = GANConfig
    # images: batch 64 with GANConfig.AUTO's learning rates; bf16 autocast where the CPU or GPU has fast bf16
    # ("auto": fp32 elsewhere): on an AVX512-BF16 CPU it did 1.46x the steps per CPU-second and reached the fp32
    # defaults' 60-CPU-second FD in 43 (docs/speed.md, "bf16: time to quality")
    train_defaults_by_kind = {"image": {"batch_size": 64, "precision": "auto"}}
    embed_dim = 0  # width of the label embedding fed to G (conditional subclasses)
    # fd picks best.pt; on toy 2-D sets the modes metrics are logged too (beside the critic's gap)
    default_eval_metrics = ("fd", "hq", "modes")

    def __init__(self, config: GANConfig, data_info: DataInfo):
        config = config.resolved(data_info.kind)  # "auto" (None) fields by the data's kind
        super().__init__(config, data_info)
        if config.n_critic < 1:
            raise GenlabError(f"model.n_critic={config.n_critic} must be at least 1")
        if not 0.0 <= config.ema < 1.0:
            raise GenlabError(f"model.ema={config.ema} must be in [0, 1)")
        if config.label_smoothing and config.loss not in ("minimax", "nonsaturating"):
            raise GenlabError(f"model.label_smoothing applies to the minimax and nonsaturating losses, "
                              f"not {config.loss!r}")
        classes = self.label_classes(data_info)
        conv = len(data_info.shape) == 3 and config.arch in ("auto", "conv")
        self.generator = Generator(self._g_net(conv), image=self.is_image, num_classes=classes,
                                   embed_dim=self.embed_dim)
        body, features = self._d_body(conv)
        self.critic = Discriminator(body, features, image=self.is_image, num_classes=classes)
        if config.spectral_norm:
            spectral_normed(self.critic)
        # a critic with batch normalisation sees real and fake batches in separate passes
        self.critic_batch_stats = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in self.critic.modules())
        # the moving average of G: a module (so it is in the state_dict) outside every phase
        self.g_ema = copy.deepcopy(self.generator).requires_grad_(False) if config.ema else None
        self.register_buffer("ema_updates", torch.zeros((), dtype=torch.long))

    def label_classes(self, data_info: DataInfo) -> int | None:
        """Number of classes G and D are conditioned on; None: unconditional."""
        return None

    def _g_net(self, conv: bool) -> nn.Module:
        c, shape = self.config, self.data_info.shape
        z_dim = c.latent_dim + self.embed_dim
        if conv:
            return ConvDecoder(z_dim, shape, c.channels, batchnorm=True)
        return Flat(mlp([z_dim, *reversed(c.hidden), math.prod(shape)]), out_shape=shape)

    def _d_body(self, conv: bool) -> tuple[nn.Module, int]:
        c, shape = self.config, self.data_info.shape
        leaky = functools.partial(nn.LeakyReLU, 0.2)
        width = c.hidden[-1]
        if conv:
            return nn.Sequential(ConvEncoder(shape, width, c.channels), leaky()), width
        return Flat(mlp([math.prod(shape), *c.hidden], act=leaky, final_act=True)), width

    # --- phases --------------------------------------------------------------------------------
    def phases(self) -> list[Phase]:
        c = self.config
        common = {"optimizer": c.optimizer, "betas": tuple(c.betas)}
        return [
            Phase("critic", self.critic.parameters, lr=c.lr_d, repeat=c.n_critic,
                  after_step=self.clip_critic if c.clip else None, **common),
            Phase("generator", self.generator.parameters, lr=c.lr_g,
                  after_step=self.update_ema if self.g_ema is not None else None, **common),
        ]

    @torch.no_grad()
    def clip_critic(self) -> None:
        """WGAN's crude Lipschitz constraint: every critic parameter clamped to [-clip, clip]."""
        for p in self.critic.parameters():
            p.clamp_(-self.config.clip, self.config.clip)

    @torch.no_grad()
    def update_ema(self) -> None:
        """g_ema <- d·g_ema + (1 - d)·G with d = min(ema, (1 + t) / (10 + t)) (warm-up over the first
        updates, as TensorFlow's ExponentialMovingAverage with num_updates); buffers are copied."""
        t = int(self.ema_updates)
        decay = min(self.config.ema, (1 + t) / (10 + t))
        for avg, p in zip(self.g_ema.parameters(), self.generator.parameters(), strict=True):
            avg.lerp_(p, 1.0 - decay)
        for avg, b in zip(self.g_ema.buffers(), self.generator.buffers(), strict=True):
            avg.copy_(b)
        self.ema_updates += 1

    # --- losses ----------------------------------------------------------------------------------
    def batch_labels(self, batch: dict[str, Tensor]) -> Tensor | None:
        """The labels a conditional model trains with (its fakes get the same ones); None here."""
        return None

    def draw_latents(self, n: int) -> dict[str, Tensor]:
        """G's inputs for a training batch: {"z": (n, latent)} from the global RNG (InfoGAN adds codes)."""
        return {"z": self.prior_sample(n)}

    def auxiliary_loss(self, features: Tensor, latents: dict[str, Tensor]) -> dict[str, Tensor]:
        """An extra term on D's features of the fakes, added in both phases (InfoGAN's Q); none here."""
        return {}

    def loss(self, phase, batch, *, step=0):
        x, y = batch["x"], self.batch_labels(batch)
        latents = self.draw_latents(x.shape[0])
        z = latents["z"]  # (N, latent)
        c = self.config
        if phase == "critic":
            with torch.no_grad():
                fake = self.generator(z, y)  # (N, *shape), no graph into G
            lazy_r1 = c.r1 if step % c.r1_every == 0 else 0.0  # R1's weight at this step (0: none)
            if self.critic_batch_stats:  # real and fake normalised apart, as G's phase sees fakes alone
                seen = _differentiable(augment(c.augment, x), lazy_r1)  # (N, *shape): what D sees of the reals
                d_real = self.critic(seen, y)
                d_fake, h_fake = self.critic(augment(c.augment, fake), y, features=True)
            else:  # one pass over both (no batch statistics, so this is exact)
                seen = _differentiable(augment(c.augment, torch.cat([x, fake])), lazy_r1)  # (2N, *shape)
                d, h = self.critic(seen, _twice(y), features=True)
                (d_real, d_fake), h_fake = d.chunk(2), h[len(x):]  # (N,) each; (N, F)
            loss = losses.gan_d_loss(c.loss, d_real, d_fake, smoothing=c.label_smoothing)
            # critic_gap = E[D(real)] - E[D(fake)]: with the Wasserstein loss, the critic's estimate of
            # W1(real, fake) (up to its Lipschitz constant); with the others, a gap in logits / margins
            out = {"d_real": d_real.mean().detach(), "d_fake": d_fake.mean().detach(),
                   "critic_gap": (d_real.mean() - d_fake.mean()).detach()}
            if c.loss != "wasserstein":  # logits / margins: the sign is D's decision
                out["d_acc"] = torch.cat([d_real > 0, d_fake < 0]).float().mean()
            if c.gp_weight:
                gp = losses.gradient_penalty(lambda v: self.critic(v, y), x, fake)
                loss = loss + c.gp_weight * gp
                out["gp"] = gp.detach()
            if lazy_r1:
                r1 = losses.r1_penalty(d_real, seen)
                loss = loss + 0.5 * lazy_r1 * c.r1_every * r1
                out["r1"] = r1.detach()
            return _with_auxiliary({"loss": loss, **out}, self.auxiliary_loss(h_fake, latents))
        if phase == "generator":
            d_fake, h = self.critic(augment(c.augment, self.generator(z, y)), y, features=True)  # (N,), (N, F)
            out = {"loss": self.generator_loss(d_fake), "d_fake": d_fake.mean().detach()}
            return _with_auxiliary(out, self.auxiliary_loss(h, latents))
        raise ValueError(f"GAN has no phase {phase!r}")

    # --- what the critic sees (genlab.pictures.dfield draws it) ---------------------------------------
    def generator_loss(self, d_fake: Tensor) -> Tensor:
        """G's loss from D's outputs on its samples, (N,) -> (): the batch mean of this model's loss."""
        return losses.gan_g_loss(self.config.loss, d_fake)

    @property
    def objective(self) -> str:
        """The adversarial loss: minimax, nonsaturating, hinge or wasserstein."""
        return self.config.loss

    @property
    def critic_is_logit(self) -> bool:
        """D's output is the logit of P(real) (minimax, nonsaturating), not a free critic value."""
        return self.config.loss in ("minimax", "nonsaturating")

    # --- sampling --------------------------------------------------------------------------------
    @property
    def sampling_generator(self) -> Generator:
        """The moving average of G when kept, else G itself."""
        return self.g_ema if self.g_ema is not None else self.generator

    def sample_labels(self, n: int, y: Tensor | None) -> Tensor | None:
        """Labels of n samples; an unconditional model takes none."""
        if y is not None:
            raise GenlabError("this model is not class-conditional: it takes no label")
        return None

    def decode(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """z (N, latent_dim) -> x (N, *shape) through the sampling generator."""
        return self.sampling_generator(z, self.sample_labels(z.shape[0], y))

    def sample_with_latents(self, n, *, y=None, generator=None):
        z = self.prior_sample(n, generator)
        labels = self.sample_labels(n, y)
        with torch.no_grad():
            x = self.sampling_generator(z, labels)
        return {"x": x, "z": z} if labels is None else {"x": x, "z": z, "y": labels}

    @torch.no_grad()
    def generator_sample(self, n: int, *, y: Tensor | None = None,
                         generator: torch.Generator | None = None) -> Tensor:
        """n samples of G itself (not its moving average): the points G's loss moves, (n, *shape)."""
        return self.generator(self.prior_sample(n, generator), self.sample_labels(n, y))


@dataclass(frozen=True)
class WGANConfig(GANConfig):
    """Arjovsky et al. 2017, Algorithm 1: RMSProp, lr 5e-5, clipping at 0.01, 5 critic steps."""

    loss: str = "wasserstein"
    optimizer: str = "rmsprop"
    lr_g: float = 5e-5
    lr_d: float = 5e-5
    clip: float | None = 0.01
    n_critic: int = 5
    r1: float = 0.0  # the clipped critic is its own constraint


@MODELS.register("wgan", help="Wasserstein GAN with weight clipping (Arjovsky et al. 2017)")
class WGAN(GAN):
    """The Wasserstein GAN: a critic kept roughly Lipschitz by clipping its weights."""

    Config = WGANConfig
    train_defaults_by_kind = {}  # the trainer's batch (128): the paper's settings above are tuned with it


@dataclass(frozen=True)
class WGANGPConfig(GANConfig):
    """Gulrajani et al. 2017. Images: their Algorithm 1 (gradient penalty 10, 5 critic steps, Adam
    1e-4, betas (0, 0.9)). Points (toy 2-D): an MLP 3 x 192 with a 2-d latent (as the paper's toy
    experiments, narrower), penalty 0.1, one critic step, Adam 5e-4 and a moving average of G (0.99)
    for sampling: in a CPU budget the paper's settings drop most of grid25's modes. The width trades
    steps (ring8's bridges between modes shrink with them) for capacity (grid25 needs it); the widths
    measured: docs/models/gan.md."""

    loss: str = "wasserstein"
    betas: tuple[float, float] | None = (0.0, 0.9)

    AUTO: ClassVar[dict[str, dict[str, Any]]] = {
        "image": {**GANConfig.AUTO["image"], "gp_weight": 10.0, "n_critic": 5, "lr_g": 1e-4, "lr_d": 1e-4, "r1": 0.0},
        "points": {**GANConfig.AUTO["points"], "latent_dim": 2, "hidden": (192, 192, 192), "gp_weight": 0.1,
                   "n_critic": 1, "lr_g": 5e-4, "lr_d": 5e-4, "ema": 0.99},
    }


@MODELS.register("wgan-gp", help="Wasserstein GAN with a gradient penalty (Gulrajani et al. 2017)")
class WGANGP(GAN):
    """WGAN-GP: the critic's gradient norm pushed to 1 on lines between real and fake data."""

    Config = WGANGPConfig
    train_defaults_by_kind = {}  # the trainer's batch (128): the settings above and their figures are at it
