"""Learned lossy image codec: Ballé, Laparra & Simoncelli (2017), "End-to-end optimized image
compression" (factorized prior), and Ballé et al. (2018), "Variational image compression with a
scale hyperprior" (``entropy="hyperprior"``).

    x (N, C, H, W) --pad--> g_a --> y (N, M, H/s, W/s) --Q--> y_hat --> g_s --crop--> x_hat
                                    |                          ^
          factorized:  p(y_hat) = prod_c p_c          hyperprior: z = h_a(|y|) --Q--> z_hat,
                       (one learned density per       p(z_hat) factorized, sigma = h_s(z_hat),
                        latent channel)               p(y_hat | z_hat) = N(0, sigma^2) * U(-1/2, 1/2)

Q is additive uniform noise U(-1/2, 1/2) in training and rounding at test time (clamped to the
support of the coding tables). The loss is rate + lambda * distortion:

    bpp = -log2 p(y_hat[, z_hat]) / (H * W)     MSE on the [0, 255] scale (CompressAI's convention)
    loss = bpp + lmbda * 255**2 * mean((x_hat - x)**2)

``arch="conv"``: 5x5 stride-2 convolutions with GDN (g_a) and IGDN (g_s) between them, the total
stride 2**len(channels); inputs are padded to a multiple of it and outputs cropped back, so any
image size works. ``last_stage="latent"`` (the default) is Ballé's layout: the last stride-2 convolution
outputs y (M channels) and g_s's first transposed convolution reads it; ``"gdn_conv3"`` ends g_a with a GDN
and a 3x3 convolution from the last stage's width to M (and g_s begins with their mirror), which learns slower
on photos and digits (docs/compression.md) and is what runs saved before the option existed read as.
``arch="mlp"`` codes a flat vector (M latents per example, the "nonlinear transform coding" of a whole small
image or a 2-D point, Ballé et al. 2021; factorized only).

Variable rate (``rate_levels``, Cui et al. 2021, "Asymmetric gained deep image compression with
continuous rate adaptation"): one model codes at every level q of a ladder. Level q scales y channel-wise
by a learned gain g_q (M,) before rounding and by an inverse gain g'_q after it (and likewise z with
h_q, h'_q), so the quantisation step, and with it the rate, changes per level:

    y_q = g_a(x) * g_q -> y_hat = round(y_q) -> x_hat = g_s(y_hat * g'_q)
    z = h_a(|y_q|) * h_q -> z_hat -> sigma = h_s(z_hat * h'_q)

Training draws a level per example and weights its MSE by that level's lambda; coding uses one level,
chosen with ``set_quality`` and stored in the .glc header. Gains start at sqrt(lambda_q / lambda_mid)
(the step that balances rate and lambda-weighted MSE under high-rate theory).

Why a hyperprior matters on digits: with one density per channel, every background position of
the 7x7 latent grid pays the same bits as an average position (measured: ~11 bits at each border
position of a 28x28 digit); sigma(z_hat) lets the model say "nothing here" for almost nothing.

Coding (``symbol_stages`` / ``decode_stages``): an image is coded as stages of (table id, integer)
pairs; each stage's table ids follow from the stages before it (z_hat's ids are its channels; y_hat's
are its channels, or the scale-table index of h_s(z_hat), computed per image in float64 so encoder
and decoder agree). The tables are integers (``models.entropy``), so the rate estimate, the encoder
and the decoder read the same numbers. ``sample`` draws from the learned prior and decodes it:
honest samples of the codec's prior, which look like textures, not digits.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from ..config import WIDTHS, DataInfo, ModelConfig, option
from ..errors import GenlabError
from ..nn.blocks import gdn_or_relu
from ..registry import MODELS
from .base import GenerativeModel
from .capabilities import CodesToBits, QualityLadder, Reconstructs
from .entropy import FactorizedDensity, GaussianScales, clamp_to_tables, table_bits

Stage = tuple[np.ndarray, np.ndarray]  # (table ids (L,), integer values (L,)) in coding order


def _without_autocast(method):
    """Runs a coding method with autocast off, so the symbols (and the files) never depend on a caller's
    autocast: y rounded from a bf16 g_a would differ from the fp32 encoder's, and the decoder's."""
    @functools.wraps(method)
    def run(self, *args, **kwargs):
        with torch.autocast(self.device.type, enabled=False):
            return method(self, *args, **kwargs)
    return run


@dataclass(frozen=True)
class CodecConfig(ModelConfig):
    # fields added after codec runs and .glc files had been made, and what those runs were: one rate, g_a ending
    # with GDN + 3x3 conv, g_s reading y + noise
    absent_means: ClassVar[Mapping[str, Any]] = MappingProxyType(
        {"rate_levels": (), "last_stage": "gdn_conv3", "decoder_input": "noise"})
    latent_dim: int = option(16, "M: latent channels (conv) or latents (mlp)")
    arch: str = option("conv", "g_a and g_s: conv (images) or mlp (images or points)", choices=("conv", "mlp"))
    channels: tuple[int, ...] = option((32, 32), "conv widths per stride-2 stage of g_a (g_s mirrors)", **WIDTHS,
                                       nonempty=True)
    hidden: tuple[int, ...] = option((256,), "MLP widths (arch=mlp; empty: linear)", **WIDTHS)
    lmbda: float = option(0.01, "weight of the MSE on the [0, 255] scale against bits per pixel", min=0,
                          min_exclusive=True)
    nonlinearity: str = option("gdn", "gdn (Ballé 2016) or relu", choices=("gdn", "relu"))
    entropy: str = option("auto", "entropy model: hyperprior (Ballé 2018) or factorized (Ballé 2017); auto: "
                                  "hyperprior if conv", choices=("auto", "factorized", "hyperprior"))
    last_stage: str = option("latent", "how g_a ends (conv): latent, the last stage's 5x5 stride-2 convolution "
                                       "outputs the M latents (Ballé's layout; the last width of channels is then "
                                       "unused); gdn_conv3, a GDN and a 3x3 convolution to M after the last stage",
                             choices=("latent", "gdn_conv3"))
    decoder_input: str = option("noise", "what g_s reads in training: noise, y + U(-1/2, 1/2) like the rate; round, "
                                         "round(y) with a straight-through gradient, what it reads when decoding "
                                         "(Minnen & Singh 2020)", choices=("noise", "round"))
    hyper_channels: int = option(32, "widths of h_a / h_s", **WIDTHS)
    hyper_latent: int = option(8, "channels of the hyper-latent z", **WIDTHS)
    quality: int = option(0, "index of this model in a quality ladder, stored in .glc files", min=0, max=255)
    rate_levels: tuple[int, ...] = option((), "variable rate: one model for these quality levels (lambda of each "
                                              "from the ladder's table), a gain vector per level on y and z, "
                                              "each example trained at a random level (Cui et al. 2021); empty: "
                                              "one rate, set by lmbda", min=1, max=12)


# CompressAI's lambdas for its MSE-optimised models, qualities 1..8
LMBDA = {1: 0.0018, 2: 0.0035, 3: 0.0067, 4: 0.0130, 5: 0.0250, 6: 0.0483, 7: 0.0932, 8: 0.1800}


def lmbda_for(quality: int) -> float:
    """Quality index -> lambda: the table for 1..8, doubling per step above (halving below 1)."""
    if quality in LMBDA:
        return LMBDA[quality]
    if quality > 8:
        return LMBDA[8] * 2 ** (quality - 8)
    return LMBDA[1] / 2 ** (1 - quality)


def _hyper_nets(m: int, c: int, nz: int) -> tuple[nn.Module, nn.Module]:
    """h_a: |y| (N, M, h, w) -> z (N, Nz, ceil(h/4), ceil(w/4)); h_s: z_hat -> sigma logits (N, M, 4h', 4w')."""
    h_a = nn.Sequential(nn.Conv2d(m, c, 3, 1, 1), nn.ReLU(), nn.Conv2d(c, c, 5, 2, 2), nn.ReLU(),
                        nn.Conv2d(c, nz, 5, 2, 2))
    h_s = nn.Sequential(nn.ConvTranspose2d(nz, c, 5, 2, 2, output_padding=1), nn.ReLU(),
                        nn.ConvTranspose2d(c, c, 5, 2, 2, output_padding=1), nn.ReLU(), nn.Conv2d(c, m, 3, 1, 1))
    return h_a, h_s


@MODELS.register("codec", help="learned image codec: Ballé 2017 factorized prior or 2018 hyperprior, rate + lambda*MSE")
class Codec(GenerativeModel, Reconstructs, CodesToBits, QualityLadder):
    Config = CodecConfig
    default_eval_metrics = ("rd_loss", "bpp", "psnr")  # its prior's samples are textures: no FD
    ladder_fields = ("lmbda", "quality")  # what each level of a quality ladder sets

    @property
    def quality(self) -> int:
        """This model's level in a quality ladder (0: not in one); for a variable-rate model, the level it
        codes at now (``set_quality``)."""
        return self.levels[self.level] if self.levels else self.config.quality

    @property
    def lmbda(self) -> float:
        """The weight of distortion against rate in its objective (at the level it codes at now)."""
        return lmbda_for(self.quality) if self.levels else self.config.lmbda

    @property
    def qualities(self) -> tuple[int, ...]:
        """The levels this one model codes at: all of ``rate_levels``, or its one ``quality``."""
        return self.levels or (self.config.quality,)

    def set_quality(self, quality: int) -> None:
        """Code at level ``quality`` from now on (one of ``qualities``)."""
        if quality not in self.qualities:
            raise GenlabError(f"this codec codes at quality {', '.join(map(str, self.qualities))}, not {quality}")
        if self.levels:
            self.level = self.levels.index(quality)

    @classmethod
    def ladder_settings(cls, quality: int) -> dict:
        """Quality level q of a ladder: lambda from CompressAI's table (``lmbda_for``), and q itself."""
        return {"lmbda": lmbda_for(quality), "quality": quality}

    def __init__(self, config: CodecConfig, data_info: DataInfo):
        super().__init__(config, data_info)
        for name, value, choices in (("arch", config.arch, ("conv", "mlp")),
                                     ("nonlinearity", config.nonlinearity, ("gdn", "relu")),
                                     ("entropy", config.entropy, ("auto", "factorized", "hyperprior"))):
            if value not in choices:
                raise GenlabError(f"model.{name}={value!r} is not one of {', '.join(choices)}")
        shape, m = data_info.shape, config.latent_dim
        self.conv = config.arch == "conv" and self.is_image
        if config.arch == "conv" and not self.is_image:
            raise GenlabError("a conv codec needs images; use --set model.arch=mlp for points")
        entropy = ("hyperprior" if self.conv else "factorized") if config.entropy == "auto" else config.entropy
        if entropy == "hyperprior" and not self.conv:
            raise GenlabError("model.entropy=hyperprior needs the conv codec (a spatial latent)")
        if self.conv:
            # widths along g_a: the image's channels, one per stride-2 stage; "latent" puts M in the last place
            to_latent = config.last_stage == "latent"
            ch = (shape[0], *config.channels[:-1], m) if to_latent else (shape[0], *config.channels)
            act = config.nonlinearity
            enc, dec = [], []
            for i in range(len(ch) - 1):
                last = to_latent and i == len(ch) - 2  # no GDN on y itself
                enc += [nn.Conv2d(ch[i], ch[i + 1], 5, 2, 2)] + ([] if last else [gdn_or_relu(act, ch[i + 1], False)])
                dec = [nn.ConvTranspose2d(ch[i + 1], ch[i], 5, 2, 2, output_padding=1)] + (
                    [gdn_or_relu(act, ch[i], True)] if i > 0 else []) + dec
            if to_latent:
                self.g_a, self.g_s = nn.Sequential(*enc), nn.Sequential(*dec)
            else:
                self.g_a = nn.Sequential(*enc, nn.Conv2d(ch[-1], m, 3, 1, 1))
                self.g_s = nn.Sequential(nn.Conv2d(m, ch[-1], 3, 1, 1), gdn_or_relu(act, ch[-1], True), *dec)
            self.stride = 2 ** len(config.channels)
        else:
            widths = (int(np.prod(shape)), *config.hidden, m)
            enc = []
            for a, b in zip(widths[:-1], widths[1:], strict=True):
                enc += [nn.Linear(a, b), nn.ReLU()]
            dec = []
            for a, b in zip(widths[::-1][:-1], widths[::-1][1:], strict=True):
                dec += [nn.Linear(a, b), nn.ReLU()]
            self.g_a = nn.Sequential(nn.Flatten(), *enc[:-1])
            self.g_s = nn.Sequential(*dec[:-1], nn.Unflatten(1, tuple(shape)))
            self.stride = 1
        self.hyper = entropy == "hyperprior"
        if self.hyper:
            self.h_a, self.h_s = _hyper_nets(m, config.hyper_channels, config.hyper_latent)
            self.density = FactorizedDensity(config.hyper_latent)  # of z
        else:
            self.density = FactorizedDensity(m)  # of y
        self.levels = tuple(sorted(set(config.rate_levels)))
        self.gain_y = self.inv_gain_y = self.gain_z = self.inv_gain_z = None  # variable rate only
        if self.levels:
            lam = torch.tensor([lmbda_for(q) for q in self.levels])
            log_gain = 0.5 * torch.log(lam / lam[len(lam) // 2])  # (Q,)
            nz = config.hyper_latent if self.hyper else 0
            self.register_buffer("level_lmbda", lam)
            self.gain_y = nn.Parameter(log_gain[:, None].repeat(1, m))  # log g_q (Q, M)
            self.inv_gain_y = nn.Parameter(-log_gain[:, None].repeat(1, m))  # log g'_q (Q, M)
            self.gain_z = nn.Parameter(torch.zeros(len(lam), nz))  # log h_q (Q, Nz)
            self.inv_gain_z = nn.Parameter(torch.zeros(len(lam), nz))
        self.level = len(self.levels) // 2  # the level coded at: the middle one until set_quality
        self._tables: tuple | None = None
        self._tables_key: tuple | None = None

    def _gain(self, v: Tensor, table: Tensor | None, levels: Tensor | None = None) -> Tensor:
        """v (N, C, ...) times exp(table[level]) per channel: the selected level, or ``levels`` (N,); v itself
        for a one-rate codec (``table`` None)."""
        if table is None:
            return v
        g = table[self.level].exp().expand(len(v), -1) if levels is None else table[levels].exp()  # (N, C)
        return v * g.view(*g.shape, *(1,) * (v.dim() - 2))

    # --- shapes -------------------------------------------------------------------------------
    def latent_shape(self, size: tuple[int, ...]) -> tuple[int, ...]:
        """Latent shape of one item of ``size`` ((C, H, W) or (D,)): (M, h, w) or (M,)."""
        if not self.conv:
            return (self.config.latent_dim,)
        h, w = (-(-s // self.stride) for s in size[-2:])
        return (self.config.latent_dim, h, w)

    def pixels(self, x: Tensor) -> int:
        """Pixels per example (H * W) for images; 1 for points (bits per point)."""
        return int(x.shape[-2] * x.shape[-1]) if self.is_image else 1

    def analysis(self, x: Tensor) -> Tensor:
        """x (N, C, H, W) -> y (N, M, ceil(H/s), ceil(W/s)): pads with edge values first."""
        if self.conv:
            ph, pw = (-x.shape[-2]) % self.stride, (-x.shape[-1]) % self.stride
            if ph or pw:
                x = F.pad(x, (0, pw, 0, ph), mode="replicate")
        return self.g_a(x)

    def synthesize(self, y_hat: Tensor, size: tuple[int, ...] | None = None, levels: Tensor | None = None) -> Tensor:
        """y_hat -> x_hat cropped to ``size`` (C, H, W) (default: the data's shape), unbounded; a
        variable-rate model first applies the inverse gain of its level (or of each example's ``levels``)."""
        x = self.g_s(self._gain(y_hat, self.inv_gain_y, levels))
        if self.conv:
            h, w = (size or self.data_info.shape)[-2:]
            x = x[..., :h, :w]
        return x

    def hyper_analysis(self, y: Tensor) -> Tensor:
        """y (N, M, h, w) -> z (N, Nz, ceil(h/4), ceil(w/4))."""
        ph, pw = (-y.shape[-2]) % 4, (-y.shape[-1]) % 4
        return self.h_a(F.pad(y.abs(), (0, pw, 0, ph)))

    def scales(self, z: Tensor, size: tuple[int, int], *, exact: bool = False) -> Tensor:
        """z (N, Nz, h', w') -> sigma (N, M, *size). ``exact``: float64, one image at a time, so the
        coder's table ids do not depend on batching or on the kernels chosen for a batch size."""
        if not exact:
            return F.softplus(self.h_s(z))[..., :size[0], :size[1]]
        params = {k: v.double() for k, v in self.h_s.named_parameters()}
        if self.levels:  # z_hat * h'_q, in float64 like the rest
            z = z.double() * self.inv_gain_z[self.level].double().exp().view(1, -1, 1, 1)
        out = [functional_call(self.h_s, params, (zi[None].double(),)) for zi in z]
        return F.softplus(torch.cat(out))[..., :size[0], :size[1]]

    # --- the coding tables and the symbols ----------------------------------------------------
    def coding_tables(self) -> tuple[np.ndarray, np.ndarray]:
        """(lo (T,), pmf (T, K)): the learned density's channels, then (hyperprior) the Gaussian
        scale tables; recomputed only when the density's weights change."""
        key = tuple((p.data_ptr(), p._version) for p in self.density.parameters())
        if self._tables is None or key != self._tables_key:
            lo, pmf = self.density.integer_tables()
            if self.hyper:
                g_lo, g_pmf = GaussianScales.integer_tables()
                width = max(pmf.shape[1], g_pmf.shape[1])
                pad = lambda t: np.pad(t, ((0, 0), (0, width - t.shape[1])))  # noqa: E731
                lo, pmf = np.concatenate([lo, g_lo]), np.concatenate([pad(pmf), pad(g_pmf)])
            self._tables, self._tables_key = (lo, pmf), key
        return self._tables

    def _channel_ids(self, v: Tensor) -> Tensor:
        shape = (1, -1) + (1,) * (v.dim() - 2)
        return torch.arange(v.shape[1], device=v.device).view(shape).expand_as(v)

    @torch.no_grad()
    @_without_autocast
    def quantize(self, x: Tensor) -> dict[str, Tensor]:
        """x -> {"y_hat", "y_ids"[, "z_hat", "z_ids"]}: rounded latents clamped to their tables' support
        (float, integral) and the table each element is coded with."""
        tables = self.coding_tables()
        y = self._gain(self.analysis(x), self.gain_y)
        if not self.hyper:
            ids = self._channel_ids(y)
            return {"y_hat": clamp_to_tables(torch.round(y), tables, ids), "y_ids": ids}
        z = self._gain(self.hyper_analysis(y), self.gain_z)
        z_ids = self._channel_ids(z)
        z_hat = clamp_to_tables(torch.round(z), tables, z_ids)
        y_ids = self.density_count + GaussianScales.index(self.scales(z_hat, y.shape[-2:], exact=True))
        y_hat = clamp_to_tables(torch.round(y), tables, y_ids.to(y.device))
        return {"y_hat": y_hat, "y_ids": y_ids, "z_hat": z_hat, "z_ids": z_ids}

    @property
    def density_count(self) -> int:
        return self.density.matrices[0].shape[0]

    def quantized_latents(self, x: Tensor) -> Tensor:
        return self.quantize(x)["y_hat"]

    def symbol_stages(self, x: Tensor) -> list[list[Stage]]:
        """Per image, its coding stages: [(ids, values) of z_hat,] (ids, values) of y_hat, channel-major."""
        q = {k: v.cpu().to(torch.int64) for k, v in self.quantize(x).items()}
        names = ("z", "y") if self.hyper else ("y",)
        return [[(q[f"{n}_ids"][i].flatten().numpy(), q[f"{n}_hat"][i].flatten().numpy()) for n in names]
                for i in range(len(x))]

    @_without_autocast
    def decode_stages(self, size: tuple[int, ...], read) -> Tensor:
        """The inverse of ``symbol_stages`` for one image of ``size``: ``read(ids) -> values`` gives the
        next stage's integers; returns y_hat (M, h, w) (or (M,))."""
        shape = self.latent_shape(size)
        if not self.hyper:
            ids = self._channel_ids(torch.zeros(1, *shape))[0]
            return torch.from_numpy(read(ids.flatten().numpy())).float().reshape(shape)
        zs = (self.config.hyper_latent, *(-(-s // 4) for s in shape[1:]))
        z_ids = self._channel_ids(torch.zeros(1, *zs))[0]
        z_hat = torch.from_numpy(read(z_ids.flatten().numpy())).float().reshape(zs)
        sigma = self.scales(z_hat[None].to(self.device), shape[1:], exact=True)[0]
        y_ids = self.density_count + GaussianScales.index(sigma).cpu()
        return torch.from_numpy(read(y_ids.flatten().numpy())).float().reshape(shape)

    def output(self, x_hat: Tensor) -> Tensor:
        return x_hat.clamp(0, 1) if self.is_image else x_hat

    @torch.no_grad()
    @_without_autocast
    def reconstruct(self, x: Tensor) -> Tensor:
        """What the decoder of a .glc file gives: g_s(y_hat) cropped, clamped to [0, 1]."""
        return self.output(self.synthesize(self.quantized_latents(x), tuple(x.shape[1:])))

    @torch.no_grad()
    def estimated_bits(self, x: Tensor) -> Tensor:
        """Ideal code length of each example's integers under the coding tables, (N,)."""
        tables = self.coding_tables()
        bits = [sum(table_bits(tables, ids, v) for ids, v in stages) for stages in self.symbol_stages(x)]
        return torch.tensor(bits, dtype=torch.float32)

    def rd_objective(self, bpp: Tensor, mse: Tensor, lmbda: Tensor | float | None = None) -> Tensor:
        """Rate + lambda * distortion from bits per pixel and the MSE on [0, 1] (any matching shapes; lambda
        per example or the model's): the training loss, and the ``rd_loss`` metric that picks best.pt."""
        scale = 255.0 ** 2 if self.is_image else 1.0  # CompressAI's convention: MSE on the 8-bit scale
        return bpp + (self.lmbda if lmbda is None else lmbda) * scale * mse

    # --- training -----------------------------------------------------------------------------
    def loss(self, phase, batch, *, step=0):
        x = batch["x"]
        noisy = self.training
        # a variable-rate model trains each example at a random level, and evaluates at the selected one
        levels = None
        if self.levels:
            levels = (torch.randint(len(self.levels), (len(x),), device=x.device) if noisy
                      else torch.full((len(x),), self.level, device=x.device))
        y = self._gain(self.analysis(x), self.gain_y, levels)
        y_tilde = y + torch.rand_like(y) - 0.5 if noisy else torch.round(y)
        if self.hyper:
            z = self._gain(self.hyper_analysis(y), self.gain_z, levels)
            z_tilde = z + torch.rand_like(z) - 0.5 if noisy else torch.round(z)
            z_dec = self._gain(z_tilde, self.inv_gain_z, levels)
            p_y = GaussianScales.likelihood(y_tilde, self.scales(z_dec, y.shape[-2:]))
            bits = -torch.log2(p_y).flatten(1).sum(1) - torch.log2(self.density.likelihood(z_tilde)).flatten(1).sum(1)
        else:
            bits = -torch.log2(self.density.likelihood(y_tilde)).flatten(1).sum(1)  # (N,)
        y_dec = y + (torch.round(y) - y).detach() if noisy and self.config.decoder_input == "round" else y_tilde
        x_hat = self.synthesize(y_dec, tuple(x.shape[1:]), levels)
        bpp_each = bits / self.pixels(x)  # (N,)
        mse_each = (x_hat - x).pow(2).flatten(1).mean(1)  # (N,)
        lmbda = self.level_lmbda[levels] if levels is not None else None
        bpp, mse = bpp_each.mean(), mse_each.mean()
        out = {"loss": self.rd_objective(bpp_each, mse_each, lmbda).mean(), "bpp": bpp.detach(), "mse": mse.detach()}
        if self.is_image:
            out["psnr"] = (10 * torch.log10(1 / mse.clamp_min(1e-10))).detach()
        return out

    # --- sampling -----------------------------------------------------------------------------
    @torch.no_grad()
    def sample_with_latents(self, n, *, y=None, generator=None):
        """Decoding with random symbols: each integer drawn from its coding table (the learned prior,
        z first for a hyperprior), then synthesised."""
        lo, pmf = self.coding_tables()
        probs = torch.as_tensor(pmf, dtype=torch.float64)  # (T, K)

        def read(ids: np.ndarray) -> np.ndarray:
            idx = torch.multinomial(probs[torch.from_numpy(ids)], 1, generator=generator)[:, 0]
            return idx.numpy() + lo[ids]

        z = torch.stack([self.decode_stages(tuple(self.data_info.shape), read) for _ in range(n)])
        z = z.to(self.device)
        return {"x": self.output(self.synthesize(z)), "z": z}
