"""Deep Convolutional Inverse Graphics Network (Kulkarni, Whitney, Kohli & Tenenbaum 2015).

A VAE whose first latent units are bound to named generative factors; the rest are free
("intrinsic" appearance, here the shape):

    z = [z_rotation, z_scale, z_x, z_y | z_intrinsic ...]                      (N, D)
    x --g_enc--> (mu, log sigma^2) --sample--> z --clamp / swap--> g_dec --> p(x | z)
    g_dec (``decoder="warp"``): template = g_shape(z_intrinsic), moved by (angle, scale, x, y) (nn.warp)

Some training batches vary one factor only (``genlab.data.factors``). In a batch where factor k varies,
every unit but k's (all named units when k is intrinsic, e.g. the shape) is *clamped*: the decoder
sees its batch mean, and its gradient is replaced, as in the paper, by lambda times its difference
from that mean (the gradient of lambda/2 ||z - mean||^2: it pulls the encoder toward invariance), so
the one active unit must carry everything that changes. A share of free batches (every factor
varies, nothing clamped) keeps reconstructions sharp.

Choices the paper leaves open, made here so edits are exact:
* the decoder (``decoder``): "warp" draws the shape from the free units in its own frame and moves it
  into place by the pose units, as geometry (a spatial-transformer decoder, as in spatial-VAE, Bepler
  et al. 2019), so an edit of a unit moves the picture exactly; "conv" renders the image from all
  units with one network (the rotation unit lifted to its harmonics, ``lift``).
* binding (``bind``): when the batch carries the factor values, each named unit's posterior mean is
  also pulled toward the factor value mapped to a fixed unit scale (a Gaussian term with std
  ``bind_sigma``); so ``unit_value`` is known, not fitted. ``bind=0`` is the paper's weak supervision.
  It is learned from free batches only (``bind_all`` adds the one-factor ones).
  With ``fixed_sigma`` the named units' posterior std is that of the binding, not learned.
* swap (``swap``): that share of examples is decoded with the free units of a *partner*, the same
  item with every bound factor redrawn and rendered exactly: the per-example form of the clamping.
* circular factors (rotation): the unit is an angle, u = 2 (theta - lo) / (hi - lo), fed to the conv
  decoder as its harmonics (cos k pi u, sin k pi u): a whole turn is a period, and rotating by alpha
  adds 2 alpha / (hi - lo) to u; its prior is uniform over the turn. The image fixes theta only
  modulo its own symmetry (a quarter turn for squares), so the encoder regresses the harmonics
  (cos k theta, sin k theta), k = 1, 2, 4, and reads the unit's mean from the lowest one the image
  determines; any representative renders the same image, and in training the decoder sees each
  item turned by a random multiple of its symmetry.
* the pose network (``pose_encoder``): the harmonics come from a conv net of their own whose pooled head
  reads features that each see the whole object, trained by the binding only; on the shared encoder,
  beside the reconstruction's gradient, a heart's angle was never learned.

``transform(x, rotate=, scale=, move=)`` is novel-view synthesis: encode, edit the named units, decode.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..config import DataInfo, option
from ..data.factors import FactorBatches
from ..distributions import DiagonalGaussian
from ..errors import GenlabError
from ..losses import dcign_clamp, kl_normal
from ..nn import make_decoder, make_encoder
from ..nn.blocks import ConvEncoder
from ..nn.warp import PoseWarpDecoder
from ..registry import MODELS
from .capabilities import NamedUnits, Transforms
from .vae import VAE, VAEConfig

# --- named units: the first latent units bound to factors of the data ---------------------------------
# The mapping between a factor's value (data units, e.g. radians) and its unit's value is fixed, not fitted:
# a factor uniform on its range (lo, hi) maps to [-sqrt 3, sqrt 3] (unit variance), a circular one (a period
# > 0, rotation) to u = 2 (theta - lo) / (hi - lo), so that u = 2 is a whole turn. ``traverse``, ``transform``
# and the unit metrics read a model through ``unit_names``, ``unit_value``, ``factor_value``, ``unit_range``
# and ``unit_period``.
SQRT3 = math.sqrt(3.0)  # a factor uniform on its range maps to [-sqrt 3, sqrt 3]: unit variance


def bound_units(config, info: DataInfo) -> dict[str, tuple[int, float, float, float]]:
    """{unit: (factor column, lo, hi, period)} for each named unit whose factor the data knows."""
    names = info.factor_names or ()
    ranges = info.factor_ranges or ((0.0, 1.0),) * len(names)
    periods = info.factor_periods or (0.0,) * len(names)
    return {u: (names.index(u), *ranges[names.index(u)], periods[names.index(u)]) for u in config.units if u in names}


class NamedUnitsMixin:
    """The ``NamedUnits`` capability for a model whose ``config.units`` name its first latent units and
    whose ``bound`` is ``bound_units(config, data_info)``."""

    @property
    def unit_names(self) -> tuple[str, ...]:
        """Factors bound to the first latent units, in order."""
        return tuple(self.config.units)

    def _unit(self, name: str) -> int:
        if name not in self.config.units:
            raise GenlabError(f"this model has no unit {name!r}; its units are {', '.join(self.unit_names)}")
        return self.config.units.index(name)

    def unit_value(self, name: str, factor_value):
        """Factor value (data units, e.g. radians) -> the unit's value; affine, tensors or floats."""
        self._unit(name)
        if name not in self.bound:
            return factor_value  # no factor range known: the identity
        _, lo, hi, period = self.bound[name]
        t = (factor_value - lo) / (hi - lo)
        return 2 * t if period > 0 else SQRT3 * (2 * t - 1)

    def factor_value(self, name: str, unit):
        """The inverse of ``unit_value``: a unit's value -> the factor value (circular: not wrapped)."""
        self._unit(name)
        if name not in self.bound:
            return unit
        _, lo, hi, period = self.bound[name]
        t = unit / 2 if period > 0 else (unit / SQRT3 + 1) / 2
        return lo + t * (hi - lo)

    def unit_range(self, name: str) -> tuple[float, float]:
        """The unit values of the factor's range (for sweeping it); (-2, 2) when no range is known."""
        if name not in self.bound:
            self._unit(name)
            return (-2.0, 2.0)
        _, lo, hi, _ = self.bound[name]
        return float(self.unit_value(name, lo)), float(self.unit_value(name, hi))

    def unit_period(self, name: str) -> float | None:
        """The change of a circular unit after which every image looks the same (None: not circular)."""
        if name not in self.bound or self.bound[name][3] <= 0:
            return None
        _, lo, hi, period = self.bound[name]
        return 2 * period / (hi - lo)


POSE_UNITS = ("rotation", "scale", "x", "y")  # the units a warp decoder applies as geometry


@dataclass(frozen=True)
class DCIGNConfig(VAEConfig):
    # two free units beside the four named ones: with more, the unused ones follow the pose
    latent_dim: int = option(6, "width of z: the named units first, then the free (intrinsic) ones")
    arch: str = "conv"
    units: tuple[str, ...] = option(("rotation", "scale", "x", "y"), "factors bound to z[:, 0], z[:, 1], ...")
    intrinsic: tuple[str, ...] = option(("shape",), "factors the free units carry (they take turns varying too)")
    clamp_grad: float = option(1.0, "lambda: the clamped units' gradient is lambda * (z - batch mean)", min=0)
    bind: float = option(1.0, "weight of the binding term (0: the paper's weak supervision only)", min=0)
    bind_sigma: float = option(0.02, "std of the binding term, as a fraction of the factor's range",
                               min=0, min_exclusive=True)
    # off: the 64 poses of one item in a one-factor batch drowned what the encoder learns of a heart's angle
    bind_all: bool = option(False, "bind in one-factor batches too")
    free_batches: float = option(0.75, "share of batches in which every factor varies and nothing is clamped",
                                 min=0, max=1)
    swap: float = option(1.0, "share of examples decoded with the free units of their partner (see swap_free)",
                         min=0, max=1)
    fixed_sigma: bool = option(True, "the bound units' posterior std is the binding's, not learned (see unit_sigma)")
    decoder: str = option("warp", "conv: one network renders the image from all units (named ones lifted); warp: a "
                                  "network draws the shape from the free units and the pose units move it into "
                                  "place (nn.warp)", choices=("conv", "warp"))
    known_symmetry: bool = option(True, "in training, read a circular unit from the harmonic the item's symmetry "
                                        "fixes")
    # on the shared encoder a heart's angle was never learned
    pose_encoder: bool = option(True, "a circular unit's harmonics come from a network of their own (a pooled "
                                      "head after one more 3x3 convolution), trained by the binding only")
    angle_grad: bool = option(False, "the decoder's gradient reaches a circular unit's harmonics (see _read_pose)")


@MODELS.register("dcign", help="DC-IGN: VAE whose first units are bound to named factors (one-factor batches)")
class DCIGN(NamedUnitsMixin, VAE, NamedUnits, Transforms):
    Config = DCIGNConfig
    default_eval_metrics = ("view_iou", "elbo", "unit_corr", "fd")

    def __init__(self, config: DCIGNConfig, data_info: DataInfo):
        super().__init__(config, data_info)
        if config.loss != "pixel":
            raise GenlabError("dcign trains with the pixel likelihood (model.loss=pixel)")
        if len(config.units) > config.latent_dim:
            raise GenlabError(f"dcign: {len(config.units)} named units need model.latent_dim >= "
                              f"{len(config.units)}, got {config.latent_dim}")
        self.bound = bound_units(config, data_info)
        self.circular = [i for i, u in enumerate(config.units) if u in self.bound and self.bound[u][3] > 0]
        self.orders = self.harmonic_orders()  # {circular unit: its harmonics k}, read on every forward pass
        self.decoder = self._make_decoder(config, data_info)
        self.pose_net = None
        if config.pose_encoder and self.circular:  # images: pooled after one more 3x3 convolution; else an MLP
            conv = config.arch == "conv" and len(data_info.shape) == 3
            self.pose_net = (ConvEncoder(data_info.shape, self._harmonic_outputs(), config.channels, pooled=True,
                                         refine=1) if conv else
                             make_encoder(config.arch, data_info.shape, self._harmonic_outputs(),
                                          hidden=config.hidden, channels=config.channels))
        names = data_info.factor_names or ()
        self._vary = {names.index(f): f for f in (*config.units, *config.intrinsic) if f in names}

    def _make_decoder(self, config: DCIGNConfig, data_info: DataInfo) -> nn.Module:
        """"conv": one network from all units, each circular one lifted to 2K harmonics; "warp": nn.warp."""
        if config.decoder not in ("conv", "warp"):
            raise GenlabError(f"model.decoder must be conv or warp, got {config.decoder!r}")
        if config.decoder == "conv" or not data_info.factor_names:  # no factors: the trainer's check says why
            lifted = config.latent_dim + sum(2 * len(k) - 1 for k in self.orders.values())
            return make_decoder(config.arch, lifted, data_info.shape, hidden=config.hidden, channels=config.channels)
        if set(config.units) != set(POSE_UNITS) or set(self.bound) != set(POSE_UNITS) or len(data_info.shape) != 3:
            raise GenlabError(f"model.decoder=warp needs image data whose factors include {', '.join(POSE_UNITS)}, "
                              f"bound to model.units = exactly those; got units {', '.join(config.units)}")
        return PoseWarpDecoder(config.latent_dim - len(config.units), data_info.shape, channels=config.channels)

    def harmonic_orders(self) -> dict[str, tuple[int, ...]]:
        """For each circular unit, the harmonics k its encoder regresses (cos k theta, sin k theta): the
        divisors of turn / period (rotation of shapes: 1, 2, 4)."""
        out = {}
        for name, (_, lo, hi, period) in bound_units(self.config, self.data_info).items():
            if period > 0:
                m = max(1, round((hi - lo) / period))
                out[name] = tuple(k for k in range(1, m + 1) if m % k == 0)
        return out

    def _harmonic_outputs(self) -> int:  # (cos, sin) of every harmonic of every circular unit
        return 2 * sum(len(k) for k in self.harmonic_orders().values())

    def encoder_outputs(self) -> int:  # mean and log-variance of every unit, then the harmonics (unless pose_net)
        return 2 * self.config.latent_dim + (0 if self.config.pose_encoder else self._harmonic_outputs())

    # --- the posterior ---------------------------------------------------------------------------
    def encode_all(self, x: Tensor, periods: Tensor | None = None, *,
                   pose: bool = True) -> tuple[DiagonalGaussian, dict[str, Tensor]]:
        """q(z|x) and, per circular unit, its harmonics (N, K, 2).

        A circular unit's mean is read from its lowest harmonic that the image determines (norm > 1/2):
        u = atan2(s_k, c_k) / (k pi), an angle in units of pi modulo the shape's own period. Regressing
        (cos k theta, sin k theta) is easy where regressing an angle is not; a harmonic the image does
        not fix (k = 1 for a square) is regressed to its mean over the symmetric poses, 0.

        In training, ``periods`` (N, F) (each item's symmetry, known to the data) picks the harmonic
        instead of the confidence: a heart's angle is then read from k = 1 from the first step, so the
        reconstruction's gradient reaches that harmonic (picked by confidence, a heart's k = 1 stays weak
        and its angle comes from k = 2).
        """
        d = self.config.latent_dim
        harmonics, named = {}, {}  # named: {unit index: posterior mean (N,)} read from the harmonics
        if self.pose_net is not None and pose:  # a swap partner (pose=False): only its free units are used
            harmonics, named = self._read_pose(self.pose_net(x), periods)
        out = self.encoder(x)  # (N, 2D + 2 sum K), or (N, 2D) with a pose_net
        mu, logvar = out[:, :2 * d].chunk(2, dim=1)  # (N, D) each
        if self.pose_net is None:
            harmonics, named = self._read_pose(out[:, 2 * d:], periods)
        mu = mu.clone()
        for i, value in named.items():
            mu[:, i] = value
        logvar = logvar.clamp(-12.0, 8.0)
        if self.config.fixed_sigma and self.bound:
            logvar = logvar.clone()
            for name in self.bound:
                logvar[:, self.config.units.index(name)] = 2 * math.log(self.unit_sigma(name))
        return DiagonalGaussian(mu, logvar), harmonics

    def _read_pose(self, out: Tensor, periods: Tensor | None) -> tuple[dict[str, Tensor], dict[int, Tensor]]:
        """Harmonic outputs (N, 2 sum K) -> ({circular unit: harmonics (N, K, 2)}, {unit index: its mean (N,)})."""
        harmonics, named, start = {}, {}, 0
        for name, orders in self.orders.items():
            h = out[:, start:start + 2 * len(orders)].view(-1, len(orders), 2)  # (N, K, 2)
            start += 2 * len(orders)
            harmonics[name] = h
            k = torch.tensor(orders, dtype=h.dtype, device=h.device)  # (K,)
            # the decoder's and the clamp's gradients would reach the harmonics through atan2, scaled by 1 / |h|,
            # and keep a heart's k = 1 harmonic from being learned; the binding term teaches the harmonics
            hh = h if self.config.angle_grad else h.detach()
            angle = torch.atan2(hh[..., 1], hh[..., 0]) / (k * math.pi)  # (N, K) units
            if periods is not None:  # the lowest k that is a multiple of the item's symmetry order
                order = self.symmetry_order(name, periods).to(h).unsqueeze(1)  # (N, 1): 4 square, 1 heart
                first = (torch.remainder(k, order) == 0).to(torch.int64).argmax(1, keepdim=True)
            else:
                first = (h.norm(dim=2) > 0.5).to(torch.int64).argmax(1, keepdim=True)  # lowest confident k
                first = torch.where(h.norm(dim=2).gather(1, first) > 0.5, first,
                                    torch.full_like(first, len(orders) - 1))
            named[self.config.units.index(name)] = angle.gather(1, first).squeeze(1)
        return harmonics, named

    def unit_sigma(self, name: str) -> float:
        """The binding's std in the unit's own scale (bind_sigma times the unit's change over the factor's
        range): with ``fixed_sigma`` the posterior std of a bound unit. Learned, the rotation unit's std
        drifted to ~0.93 (half a turn) in 4,500 steps while the free units carried the pose: the decoder
        could not use so noisy a unit, so nothing pulled its std down."""
        lo, hi = self.unit_range(name)
        return self.config.bind_sigma * abs(hi - lo)

    def posterior(self, x: Tensor) -> DiagonalGaussian:
        return self.encode_all(x)[0]

    @property
    def batch_plan(self) -> FactorBatches:
        """Batches in which one of the named or intrinsic factors varies (the data must render them)."""
        return FactorBatches(vary=(*self.config.units, *self.config.intrinsic), free_share=self.config.free_batches,
                             partner_vary=tuple(self.bound) if self.config.swap > 0 else ())

    # --- decoding ------------------------------------------------------------------------------
    def lift(self, z: Tensor) -> Tensor:
        """(N, D) -> (N, D - C + 2 sum K): each circular unit u becomes its harmonics (cos k pi u, sin k pi u),
        k in its ``harmonic_orders`` (rotation: 1, 2, 4), so the decoder gets a square's pose (k = 4)
        as directly as a heart's (k = 1)."""
        if not self.circular:
            return z
        parts, start = [], 0
        for i in self.circular:
            k = torch.tensor(self.orders[self.config.units[i]], dtype=z.dtype, device=z.device)  # (K,)
            u = z[:, i:i + 1] * math.pi * k  # (N, K) radians
            parts += [z[:, start:i], torch.cos(u), torch.sin(u)]
            start = i + 1
        return torch.cat([*parts, z[:, start:]], 1)

    def decode_raw(self, z: Tensor) -> Tensor:
        if isinstance(self.decoder, PoseWarpDecoder):  # the pose units as geometry: angle (radians), scale, x, y
            rot, *pose = (self.config.units.index(u) for u in POSE_UNITS)
            angle = self.factor_value("rotation", z[:, rot])  # (N,)
            return self.decoder(angle, z[:, pose], z[:, len(self.config.units):])
        return self.decoder(self.lift(z))

    @torch.no_grad()
    def transform(self, x: Tensor, *, rotate: float | Tensor = 0.0, scale: float | Tensor = 1.0,
                  move: tuple[float | Tensor, float | Tensor] = (0.0, 0.0)) -> Tensor:
        """Novel views (N, *shape) in [0, 1]: encode, edit the named units, decode (the decoder's mean).

        ``rotate`` in the rotation factor's units (radians, counter-clockwise), ``scale`` multiplies
        the scale factor, ``move`` adds (dx, dy) to the x and y factors (fractions of their range);
        each a number or one per image (N,). No edit at all returns the reconstruction.
        """
        z = self.encode(x).clone()  # (N, D) posterior means
        edits = (("rotation", rotate, 0.0, torch.add), ("scale", scale, 1.0, torch.mul),
                 ("x", move[0], 0.0, torch.add), ("y", move[1], 0.0, torch.add))
        for name, amount, identity, apply in edits:
            amount = torch.as_tensor(amount, dtype=z.dtype, device=z.device)
            if bool((amount == identity).all()):
                continue
            i = self._unit(name)
            z[:, i] = self.unit_value(name, apply(self.factor_value(name, z[:, i]), amount))
        return self.decode(z)

    # --- training ------------------------------------------------------------------------------
    def clamped_units(self, vary: Tensor | None) -> Tensor | None:
        """(D,) bool: the units a batch clamps, from its varying factor (None: a free batch)."""
        if vary is None or len(vary) == 0 or int(vary[0]) < 0 or int(vary[0]) not in self._vary:
            return None
        factor, d = self._vary[int(vary[0])], self.config.latent_dim
        clamped = torch.ones(d, dtype=torch.bool, device=vary.device)
        if factor in self.config.units:
            clamped[self.config.units.index(factor)] = False  # only that unit is free
        else:
            clamped[len(self.config.units):] = False  # an intrinsic factor: the free units are free
        return clamped

    def binding(self, mu: Tensor, factors: Tensor, harmonics: dict[str, Tensor] | None = None,
                periods: Tensor | None = None) -> Tensor:
        """-log N(0 | e, bind_sigma^2) up to a constant, summed over bound units, (N,); e is the error of
        each unit's posterior mean as a fraction of its factor's range.

        A circular unit binds its harmonics instead: ||h_k - t_k||^2 / (2 (2 pi bind_sigma)^2) summed
        over k, with t_k = (cos k theta, sin k theta) where the item's image determines harmonic k
        (k a multiple of its symmetry order, from ``periods`` (N, F)) and t_k = 0 where it does not
        (the mean of t_k over the item's symmetric poses). Without ``periods`` every t_k is the cosine
        and sine, whose best prediction is the same but with irreducible noise.
        """
        out = mu.new_zeros(len(mu))
        harmonics = harmonics or {}
        for name, (col, lo, hi, _) in self.bound.items():
            v = factors[:, col].to(mu)
            if name in harmonics:
                h = harmonics[name]  # (N, K, 2)
                k = torch.tensor(self.orders[name], dtype=mu.dtype, device=mu.device)
                phase = 2 * math.pi * (v - lo).unsqueeze(1) / (hi - lo) * k  # (N, K)
                target = torch.stack([torch.cos(phase), torch.sin(phase)], 2)  # (N, K, 2)
                if periods is not None:
                    order = self.symmetry_order(name, periods).to(mu).unsqueeze(1)  # (N, 1)
                    target = target * (torch.remainder(k, order) == 0).unsqueeze(2)
                out = out + ((h - target) ** 2).flatten(1).sum(1) / (2 * (2 * math.pi * self.config.bind_sigma) ** 2)
                continue
            d = mu[:, self.config.units.index(name)] - self.unit_value(name, v)
            out = out + (d / (2 * SQRT3)) ** 2 / (2 * self.config.bind_sigma ** 2)
        return out

    def symmetry_order(self, name: str, periods: Tensor) -> Tensor:
        """(N,) times each item (``periods`` (N, F)) looks the same in a turn of ``name``: square 4, heart 1."""
        col, lo, hi, _ = self.bound[name]
        return ((hi - lo) / periods[:, col].clamp(min=1e-6)).round()

    def symmetric_turns(self, z: Tensor, periods: Tensor) -> Tensor:
        """z with each circular unit turned by a random multiple of its item's period (``periods`` (N, F),
        radians): the same image. The encoder reads a square's angle in (-45, 45] degrees only; without
        this the decoder would never see a square at 60 degrees, which a 30-degree edit asks for."""
        z = z.clone()
        for i in self.circular:
            col, lo, hi, _ = self.bound[self.config.units[i]]
            step = 2 * periods[:, col].to(z) / (hi - lo)  # (N,) the unit's change per symmetric turn
            order = self.symmetry_order(self.config.units[i], periods).to(z)  # (N,) turns a turn: square 4
            z[:, i] = z[:, i] + step * torch.floor(torch.rand_like(step) * order)
        return z

    def swap_free(self, z: Tensor, other: Tensor) -> Tensor:
        """z (N, D) with the free units of a random ``swap`` share of the examples replaced by ``other``'s
        (N, D): a sample of their partner's posterior, the same item with every bound factor redrawn.

        The per-example form of DC-IGN's clamping: the decoder must rebuild x from x's named units and
        free units that saw x's shape in another pose, so pose kept in the free units is wrong there and
        the named units must carry it (the figures with and without: docs/models/dcign.md).
        """
        n = len(self.config.units)
        pick = (torch.rand(len(z), 1, device=z.device) < self.config.swap)  # (N, 1)
        return torch.cat([z[:, :n], torch.where(pick, other[:, n:], z[:, n:])], 1)

    def kl(self, post: DiagonalGaussian) -> Tensor:
        """KL(q || p) per example (N,). A circular unit's prior is uniform over the turn, so no angle is
        cheaper than another: its mu^2 / 2 is left out (the sigma part stays)."""
        kl = kl_normal(post)  # (N,)
        if self.circular:
            kl = kl - 0.5 * post.mu[:, self.circular].pow(2).sum(1)
        return kl

    def prior_sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """z ~ p(z) (n, D): N(0, 1) units, circular ones uniform over a turn (u in [-1, 1))."""
        z = torch.randn(n, self.config.latent_dim, generator=generator)
        for i in self.circular:
            z[:, i] = 2 * torch.rand(n, generator=generator) - 1
        return z.to(self.device)

    def loss(self, phase, batch, *, step=0):
        x = batch["x"]
        if self.binarized:
            x = torch.bernoulli(x)
        post, harmonics = self.encode_all(x, batch.get("periods") if self.config.known_symmetry else None)
        z = post.sample()  # (N, D)
        clamped = self.clamped_units(batch.get("vary"))
        if clamped is not None:
            z = dcign_clamp(z, clamped, self.config.clamp_grad)
        if "periods" in batch and self.circular:
            z = self.symmetric_turns(z, batch["periods"])
        if self.config.swap > 0 and "partner" in batch:
            z = self.swap_free(z, self.encode_all(batch["partner"], pose=False)[0].sample())
        rec = self.decoder_dist(z).log_prob(x)  # (N,)
        kl = self.kl(post)  # (N,)
        loss = -rec + self.kl_weight(step) * kl
        out = {"nelbo": (kl - rec).mean().detach(), "kl": kl.mean().detach(), "recon": (-rec).mean().detach()}
        if self.config.bind > 0 and "factors" in batch and self.bound and (clamped is None or self.config.bind_all):
            bind = self.binding(post.mu, batch["factors"], harmonics, batch.get("periods"))
            loss = loss + self.config.bind * bind
            out["bind"] = bind.mean().detach()
        return {"loss": loss.mean(), **out}
