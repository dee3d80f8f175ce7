"""Learned lossy image codec: the factorized-prior model of Ballé, Laparra & Simoncelli (2017),
"End-to-end optimized image compression", with the factorized density of Ballé et al. (2018),
"Variational image compression with a scale hyperprior", appendix 6.1.

    x (N, C, H, W) --pad--> g_a --> y (N, M, H/s, W/s) --Q--> y_hat --> g_s --crop--> x_hat
                                                 |
                                 p(y_hat) = prod_c p_c  (one learned density per latent channel)

Q is additive uniform noise U(-1/2, 1/2) in training and rounding at test time (clamped to the
support of the coding tables). The loss is rate + lambda * distortion:

    bpp = -log2 p(y_hat) / (H * W)        MSE on the [0, 255] scale (CompressAI's convention)
    loss = bpp + lmbda * 255**2 * mean((x_hat - x)**2)

``arch="conv"``: 5x5 stride-2 convolutions with GDN (g_a) and IGDN (g_s) between them, the total
stride 2**len(channels); inputs are padded to a multiple of it and outputs cropped back, so any
image size works. ``arch="mlp"`` codes a flat vector (M latents per example, the "nonlinear
transform coding" of a whole small image or a 2-D point, Ballé et al. 2021).

Entropy coding tables: each channel's density is evaluated once in float64 on its integer support
and quantised to an integer PMF summing to 2**16 (``coding_tables``); the encoder, the decoder and
``sample`` all use these integers, so floating point never differs between encode and decode.
``sample`` draws y_hat from those tables (the learned prior) and decodes it: honest samples of
the codec's prior, which look like textures, not digits.

The codec has no ``encode``/``decode`` (a flat code for latent-space tools); it has
``reconstruct`` (the quantised reconstruction) and ``quantized_latents`` / ``synthesize``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..config import DataInfo, ModelConfig
from ..errors import GenlabError
from ..registry import MODELS
from .base import GenerativeModel

PMF_BITS = 16  # integer PMFs sum to 2**PMF_BITS
TAIL_MASS = 1e-9  # mass left outside each channel's coding support (y_hat is clamped into it)
MAX_HALF_WIDTH = 512  # support never wider than [-512, 512]


@dataclass(frozen=True)
class CodecConfig(ModelConfig):
    latent_dim: int = 32  # M: latent channels (conv) or latents (mlp)
    arch: str = "conv"  # "conv" (images) or "mlp" (images or points)
    channels: tuple[int, ...] = (64, 64)  # conv widths per stride-2 stage of g_a (g_s mirrors)
    hidden: tuple[int, ...] = (256,)  # MLP widths (arch="mlp")
    lmbda: float = 0.01  # weight of the MSE on the [0, 255] scale against bits per pixel
    nonlinearity: str = "gdn"  # "gdn" (Ballé 2016) or "relu"
    quality: int = 0  # index of this model in a quality ladder, stored in .glc files


class GDN(nn.Module):
    """Generalized divisive normalization (Ballé, Laparra, Simoncelli 2016):
    y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2); ``inverse=True`` multiplies (IGDN).

    beta and gamma are kept non-negative by storing their square roots."""

    def __init__(self, channels: int, *, inverse: bool = False):
        super().__init__()
        self.inverse = inverse
        self.beta_sqrt = nn.Parameter(torch.ones(channels))
        self.gamma_sqrt = nn.Parameter((0.1 * torch.eye(channels)).sqrt())

    def forward(self, x: Tensor) -> Tensor:  # (N, C, H, W)
        beta = self.beta_sqrt.pow(2) + 1e-6
        gamma = self.gamma_sqrt.pow(2)[:, :, None, None]  # (C, C, 1, 1)
        norm = F.conv2d(x.pow(2), gamma, beta).sqrt()
        return x * norm if self.inverse else x / norm


def _act(kind: str, channels: int, inverse: bool) -> nn.Module:
    return GDN(channels, inverse=inverse) if kind == "gdn" else nn.ReLU()


class FactorizedDensity(nn.Module):
    """One learned univariate density per channel (Ballé et al. 2018, appendix 6.1).

    The CDF is sigmoid(f_c(y)) with f_c a small monotone network (positive matrices via softplus,
    tanh gates bounded below by -1); the likelihood of y_hat under noise or rounding is
    P(y_hat) = CDF(y_hat + 1/2) - CDF(y_hat - 1/2)."""

    def __init__(self, channels: int, filters: tuple[int, ...] = (3, 3, 3), init_scale: float = 10.0):
        super().__init__()
        dims = (1, *filters, 1)
        scale = init_scale ** (1 / (len(filters) + 1))
        self.matrices, self.biases, self.factors = nn.ParameterList(), nn.ParameterList(), nn.ParameterList()
        for k in range(len(filters) + 1):
            init = float(np.log(np.expm1(1 / scale / dims[k + 1])))
            self.matrices.append(nn.Parameter(torch.full((channels, dims[k + 1], dims[k]), init)))
            self.biases.append(nn.Parameter(torch.rand(channels, dims[k + 1], 1) - 0.5))
            if k < len(filters):
                self.factors.append(nn.Parameter(torch.zeros(channels, dims[k + 1], 1)))

    def logits_cdf(self, v: Tensor) -> Tensor:
        """v (C, 1, K) -> logits of the CDF (C, 1, K). Elementwise products and sums over <= 3
        terms (no BLAS), so the float64 tables are reproducible."""
        for k, (m, b) in enumerate(zip(self.matrices, self.biases, strict=True)):
            w = F.softplus(m.to(v.dtype))  # (C, out, in)
            v = (w[:, :, :, None] * v[:, None, :, :]).sum(2) + b.to(v.dtype)  # (C, out, K)
            if k < len(self.factors):
                v = v + torch.tanh(self.factors[k].to(v.dtype)) * torch.tanh(v)
        return v

    def likelihood(self, y: Tensor) -> Tensor:
        """y (N, C, *spatial) -> P(y - 1/2 < Y < y + 1/2), same shape, bounded below by 1e-9."""
        c = y.shape[1]
        v = y.transpose(0, 1).reshape(c, 1, -1)  # (C, 1, N*S)
        lower, upper = self.logits_cdf(v - 0.5), self.logits_cdf(v + 0.5)
        sign = -torch.sign(lower + upper).detach()  # work on the far tail of the sigmoid
        p = (torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower)).abs()
        p = p.reshape(c, y.shape[0], *y.shape[2:]).transpose(0, 1)
        return p.clamp_min(1e-9)

    @torch.no_grad()
    def integer_tables(self) -> tuple[np.ndarray, np.ndarray]:
        """(lo (C,) int64, pmf (C, K) int64): channel c codes y_hat in lo_c .. lo_c + K_c - 1 with
        pmf[c, :K_c] (>= 1 each, summing to 2**PMF_BITS; zero-padded past K_c)."""
        grid = torch.arange(-MAX_HALF_WIDTH - 1, MAX_HALF_WIDTH + 1, dtype=torch.float64) + 0.5
        c = self.matrices[0].shape[0]
        cdf = torch.sigmoid(self.logits_cdf(grid.expand(c, 1, -1))).squeeze(1).numpy()  # (C, 2R+2)
        values = np.arange(-MAX_HALF_WIDTH, MAX_HALF_WIDTH + 1)
        los, pmfs = [], []
        for row in cdf:  # row[i] = CDF(values[i] - 1/2); row[i + 1] = CDF(values[i] + 1/2)
            keep = (row[1:] > TAIL_MASS) & (row[:-1] < 1 - TAIL_MASS)
            idx = np.flatnonzero(keep)
            a, b = (idx[0], idx[-1]) if len(idx) else (MAX_HALF_WIDTH, MAX_HALF_WIDTH)
            p = np.diff(row[a:b + 2]).clip(0)  # (K,)
            p[0] += row[a]
            p[-1] += 1 - row[b + 1]  # the tails fold into the end symbols
            los.append(values[a])
            pmfs.append(quantize_pmf(p))
        width = max(len(p) for p in pmfs)
        table = np.zeros((c, width), dtype=np.int64)
        for i, p in enumerate(pmfs):
            table[i, :len(p)] = p
        return np.array(los, dtype=np.int64), table


def quantize_pmf(p: np.ndarray, bits: int = PMF_BITS) -> np.ndarray:
    """Float PMF (K,) -> integers >= 1 summing to 2**bits; leftovers go to the largest entries."""
    total = 1 << bits
    p = np.asarray(p, dtype=np.float64)
    p = p / p.sum()
    q = np.floor(p * (total - len(p))).astype(np.int64) + 1
    rest = total - int(q.sum())
    order = np.argsort(-p, kind="stable")
    q[order[: rest % len(p)]] += 1
    q += rest // len(p)
    return q


@MODELS.register("codec", help="learned image codec: Ballé 2017 factorized prior, rate + lambda*MSE")
class Codec(GenerativeModel):
    Config = CodecConfig

    def __init__(self, config: CodecConfig, data_info: DataInfo):
        super().__init__(config, data_info)
        for name, value, choices in (("arch", config.arch, ("conv", "mlp")),
                                     ("nonlinearity", config.nonlinearity, ("gdn", "relu"))):
            if value not in choices:
                raise GenlabError(f"model.{name}={value!r} is not one of {', '.join(choices)}")
        shape, m = data_info.shape, config.latent_dim
        self.conv = config.arch == "conv" and self.is_image
        if config.arch == "conv" and not self.is_image:
            raise GenlabError("a conv codec needs images; use --set model.arch=mlp for points")
        if self.conv:
            ch, act = (shape[0], *config.channels), config.nonlinearity
            enc, dec = [], []
            for i in range(len(config.channels)):
                enc += [nn.Conv2d(ch[i], ch[i + 1], 5, 2, 2)] + ([_act(act, ch[i + 1], False)])
                dec = [nn.ConvTranspose2d(ch[i + 1], ch[i], 5, 2, 2, output_padding=1)] + (
                    [_act(act, ch[i], True)] if i > 0 else []) + dec
            self.g_a = nn.Sequential(*enc, nn.Conv2d(ch[-1], m, 3, 1, 1))
            self.g_s = nn.Sequential(nn.Conv2d(m, ch[-1], 3, 1, 1), _act(act, ch[-1], True), *dec)
            self.stride = 2 ** len(config.channels)
        else:
            d = int(np.prod(shape))
            widths = (d, *config.hidden, m)
            enc = []
            for a, b in zip(widths[:-1], widths[1:], strict=True):
                enc += [nn.Linear(a, b), nn.ReLU()]
            dec = []
            for a, b in zip(widths[::-1][:-1], widths[::-1][1:], strict=True):
                dec += [nn.Linear(a, b), nn.ReLU()]
            self.g_a = nn.Sequential(nn.Flatten(), *enc[:-1])
            self.g_s = nn.Sequential(*dec[:-1], nn.Unflatten(1, tuple(shape)))
            self.stride = 1
        self.density = FactorizedDensity(m)
        self._tables: tuple | None = None
        self._tables_key: tuple | None = None

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

    def synthesize(self, y_hat: Tensor, size: tuple[int, ...] | None = None) -> Tensor:
        """y_hat -> x_hat cropped to ``size`` (C, H, W) (default: the data's shape), unbounded."""
        x = self.g_s(y_hat)
        if self.conv:
            h, w = (size or self.data_info.shape)[-2:]
            x = x[..., :h, :w]
        return x

    # --- quantisation and the coding tables ---------------------------------------------------
    def coding_tables(self) -> tuple[np.ndarray, np.ndarray]:
        """(lo (M,), pmf (M, K)) integer tables, recomputed only when the density's weights change."""
        key = tuple((p.data_ptr(), p._version) for p in self.density.parameters())
        if self._tables is None or key != self._tables_key:
            self._tables, self._tables_key = self.density.integer_tables(), key
        return self._tables

    def quantized_latents(self, x: Tensor) -> Tensor:
        """x -> y_hat: round(g_a(x)), clamped to each channel's coding support (float, integral)."""
        lo, pmf = self.coding_tables()
        hi = lo + (pmf > 0).sum(1) - 1
        shape = (1, -1) + (1,) * (2 if self.conv else 0)
        lo_t = torch.as_tensor(lo, dtype=torch.float32, device=x.device).view(shape)
        hi_t = torch.as_tensor(hi, dtype=torch.float32, device=x.device).view(shape)
        return torch.round(self.analysis(x)).clamp(lo_t, hi_t)

    def output(self, x_hat: Tensor) -> Tensor:
        return x_hat.clamp(0, 1) if self.is_image else x_hat

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """What the decoder of a .glc file gives: g_s(y_hat) cropped, clamped to [0, 1]."""
        return self.output(self.synthesize(self.quantized_latents(x), tuple(x.shape[1:])))

    @torch.no_grad()
    def estimated_bits(self, x: Tensor) -> Tensor:
        """-log2 p(y_hat) per example (N,): the rate the model claims for its rounded latents."""
        y_hat = self.quantized_latents(x)
        return -torch.log2(self.density.likelihood(y_hat)).flatten(1).sum(1)

    # --- training -----------------------------------------------------------------------------
    def loss(self, phase, batch, *, step=0):
        x = batch["x"]
        y = self.analysis(x)
        y_tilde = y + torch.rand_like(y) - 0.5 if self.training else torch.round(y)
        x_hat = self.synthesize(y_tilde, tuple(x.shape[1:]))
        bits = -torch.log2(self.density.likelihood(y_tilde)).flatten(1).sum(1)  # (N,)
        bpp = bits.mean() / self.pixels(x)
        mse = (x_hat - x).pow(2).mean()
        scale = 255.0 ** 2 if self.is_image else 1.0
        out = {"loss": bpp + self.config.lmbda * scale * mse, "bpp": bpp.detach(), "mse": mse.detach()}
        if self.is_image:
            out["psnr"] = (10 * torch.log10(1 / mse.clamp_min(1e-10))).detach()
        return out

    # --- sampling -----------------------------------------------------------------------------
    @torch.no_grad()
    def sample_with_latents(self, n, *, y=None, generator=None):
        """y_hat drawn symbol by symbol from the integer coding tables (the learned prior), decoded."""
        lo, pmf = self.coding_tables()
        shape = self.latent_shape(self.data_info.shape)
        positions = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        probs = torch.as_tensor(pmf, dtype=torch.float64)  # (M, K)
        idx = torch.multinomial(probs, n * positions, replacement=True, generator=generator)  # (M, n*P)
        z = (idx + torch.as_tensor(lo)[:, None]).float().view(shape[0], n, *shape[1:]).transpose(0, 1)
        z = z.contiguous().to(self.device)
        return {"x": self.output(self.synthesize(z)), "z": z}
