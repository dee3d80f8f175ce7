"""Entropy models of learned codecs, with the integer tables that make coding exact.

``FactorizedDensity``: one learned univariate density per channel (Ballé et al. 2018, "Variational
image compression with a scale hyperprior", appendix 6.1), for latents coded without side
information (the factorized prior of Ballé 2017, and the hyper-latent z of the hyperprior).

``GaussianScales``: a zero-mean Gaussian whose scale comes from the hyperprior, convolved with
U(-1/2, 1/2) (Ballé 2018, eq. 7). For coding, scales are snapped to a fixed log-spaced table of
``SCALES`` values, each with its own integer PMF, as CompressAI does.

Coding tables are integers: ``(lo (T,), pmf (T, K))``: table t codes the values lo_t .. lo_t + K_t - 1
with pmf[t, :K_t] (each >= 1, summing to 2**PMF_BITS, zero-padded past K_t). The encoder, the
decoder and the rate estimate all read these integers, so floating point never has to agree.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

PMF_BITS = 16  # integer PMFs sum to 2**PMF_BITS
TAIL_MASS = 1e-9  # mass left outside each table's support (values are clamped into it)
MAX_HALF_WIDTH = 512  # support never wider than [-512, 512]
SCALE_MIN, SCALE_MAX, SCALES = 0.11, 64.0, 64  # the Gaussian scale table (log-spaced)


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


def tables_from_cdfs(cdf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CDFs (T, 2R+2) at the half-integers -R-1/2 .. R+1/2 -> integer tables (lo (T,), pmf (T, K)).

    Each table keeps the values whose interval holds mass above TAIL_MASS; the tails fold into the
    end symbols."""
    half = (cdf.shape[1] - 2) // 2
    values = np.arange(-half, half + 1)
    los, pmfs = [], []
    for row in cdf:  # row[i] = CDF(values[i] - 1/2); row[i + 1] = CDF(values[i] + 1/2)
        keep = (row[1:] > TAIL_MASS) & (row[:-1] < 1 - TAIL_MASS)
        idx = np.flatnonzero(keep)
        a, b = (idx[0], idx[-1]) if len(idx) else (half, half)
        if a == b:  # a one-symbol table (a channel that always says 0): keep a neighbour, coders need two
            a, b = (a, b + 1) if b + 1 < len(values) else (a - 1, b)
        p = np.diff(row[a:b + 2]).clip(0)  # (K,)
        p[0] += row[a]
        p[-1] += 1 - row[b + 1]
        los.append(values[a])
        pmfs.append(quantize_pmf(p))
    table = np.zeros((len(pmfs), max(len(p) for p in pmfs)), dtype=np.int64)
    for i, p in enumerate(pmfs):
        table[i, :len(p)] = p
    return np.array(los, dtype=np.int64), table


def table_bits(tables: tuple[np.ndarray, np.ndarray], ids: np.ndarray, values: np.ndarray) -> float:
    """Ideal code length in bits of integer ``values`` coded with tables ``ids`` (both (L,))."""
    lo, pmf = tables
    p = pmf[ids, values - lo[ids]]
    return float(len(values) * PMF_BITS - np.log2(p).sum())


def clamp_to_tables(v: Tensor, tables: tuple[np.ndarray, np.ndarray], ids: Tensor) -> Tensor:
    """Integral ``v`` clamped into the support of table ``ids`` (same shape as v)."""
    lo, pmf = tables
    lo_t = torch.as_tensor(lo, dtype=v.dtype, device=v.device)[ids]
    hi_t = torch.as_tensor(lo + (pmf > 0).sum(1) - 1, dtype=v.dtype, device=v.device)[ids]
    return torch.maximum(torch.minimum(v, hi_t), lo_t)


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
        with torch.autocast(y.device.type, enabled=False):  # the rate in fp32 under bf16 autocast
            return self._likelihood(_at_least_fp32(y))

    def _likelihood(self, y: Tensor) -> Tensor:
        c = y.shape[1]
        v = y.transpose(0, 1).reshape(c, 1, -1)  # (C, 1, N*S)
        lower, upper = self.logits_cdf(v - 0.5), self.logits_cdf(v + 0.5)
        sign = -torch.sign(lower + upper).detach()  # work on the far tail of the sigmoid
        p = (torch.sigmoid(sign * upper) - torch.sigmoid(sign * lower)).abs()
        p = p.reshape(c, y.shape[0], *y.shape[2:]).transpose(0, 1)
        return p.clamp_min(1e-9)

    @torch.no_grad()
    def integer_tables(self) -> tuple[np.ndarray, np.ndarray]:
        """One table per channel, from the CDF in float64 on the integer grid."""
        grid = torch.arange(-MAX_HALF_WIDTH - 1, MAX_HALF_WIDTH + 1, dtype=torch.float64) + 0.5
        c = self.matrices[0].shape[0]
        cdf = torch.sigmoid(self.logits_cdf(grid.expand(c, 1, -1))).squeeze(1).numpy()  # (C, 2R+2)
        return tables_from_cdfs(cdf)


def _at_least_fp32(t: Tensor) -> Tensor:
    """bf16 / fp16 (from an autocast forward pass) -> fp32; fp32 and fp64 as they are."""
    return t.float() if t.dtype in (torch.bfloat16, torch.float16) else t


class GaussianScales:
    """N(0, sigma^2) convolved with U(-1/2, 1/2); sigma from a hyperprior, bounded below by SCALE_MIN."""

    log_table = np.linspace(math.log(SCALE_MIN), math.log(SCALE_MAX), SCALES)

    @staticmethod
    def likelihood(y: Tensor, sigma: Tensor) -> Tensor:
        """P(y - 1/2 < Y < y + 1/2) elementwise, bounded below by 1e-9. Uses the upper tail of the
        normal on |y| so the far tail keeps its precision. Computed in fp32 at least, also under autocast."""
        with torch.autocast(y.device.type, enabled=False):
            return GaussianScales._likelihood(_at_least_fp32(y), _at_least_fp32(sigma))

    @staticmethod
    def _likelihood(y: Tensor, sigma: Tensor) -> Tensor:
        sigma = sigma.clamp_min(SCALE_MIN)
        v = y.abs()
        upper = torch.special.ndtr((0.5 - v) / sigma)  # P(Y > |y| - 1/2), reflected
        lower = torch.special.ndtr((-0.5 - v) / sigma)
        return (upper - lower).clamp_min(1e-9)

    @classmethod
    def index(cls, sigma: Tensor) -> Tensor:
        """Nearest table scale in log space: integer ids, same shape. Computed in float64."""
        step = cls.log_table[1] - cls.log_table[0]
        ids = torch.round((sigma.double().clamp_min(SCALE_MIN).log() - cls.log_table[0]) / step)
        return ids.clamp(0, SCALES - 1).long()

    @classmethod
    def integer_tables(cls) -> tuple[np.ndarray, np.ndarray]:
        """One table per scale of the table; fixed, not learned."""
        grid = torch.arange(-MAX_HALF_WIDTH - 1, MAX_HALF_WIDTH + 1, dtype=torch.float64) + 0.5
        scales = torch.from_numpy(np.exp(cls.log_table))[:, None]  # (S, 1)
        cdf = torch.special.ndtr(grid[None, :] / scales).numpy()  # (S, 2R+2)
        return tables_from_cdfs(cdf)
