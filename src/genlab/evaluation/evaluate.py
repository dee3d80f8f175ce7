"""The metric registry and ``evaluate``: "how do you know that you are improving?"

Every metric is a small ``Metric`` record in ``genlab.registry.METRICS``: its name, one line of
help, its direction, the model capability it needs (``isinstance(model, LikelihoodBound)``, a Protocol
of ``genlab.models.capabilities``, never a class or a name) and a compute function. Five kinds:

* sample metrics (fd, kid, precision, recall, density, coverage, is) compare features of samples
  with features of held-out real data: ``compute(fake: FeatureSet, real: FeatureSet)``. They see a
  sampler (``n -> samples``) only, so anything with ``.sample()`` (a ``Sampler``) can be measured. Each comes with
  its real-vs-real floor: the same metric between the evaluated split and as many train images.
* encoder metrics (recon_mse, psnr) need ``model.reconstruct``.
* likelihood metrics (elbo, nll) need ``model.elbo`` / ``model.iwae_bound`` and are computed on
  ``model.eval_targets(x)`` (e.g. a fixed binarisation), in nats per example.
* label metrics (accuracy) need ``model.classify(x) -> (N, K) logits`` and a labelled data set;
  they score the model's class predictions against the evaluated split's labels.
* points metrics (modes, hq in ``modes.py``) read the data set's known structure (e.g. the exact
  mode centres of toy 2-D sets): ``compute(samples, data)`` on ``n`` samples (default 10,000).
* image metrics (sharpness) compare sample pixels with held-out pixels: ``compute(samples, real)``.
* factor metrics (view_iou, scale_iou, move_iou, unit_corr, unit_leak in ``semantics.py``) edit or
  encode held-out items of a data set that renders its factors exactly:
  ``compute(model, data, split=, n=, seed=) -> {name: value}`` (extra keys: per-factor details).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..data.base import DataSet
from ..errors import GenlabError
from ..models.capabilities import (
    Classifies,
    Clusters,
    CodesToBits,
    Encodes,
    LikelihoodBound,
    NamedUnits,
    Reconstructs,
    Transforms,
)
from ..nn.features import FeatureExtractor, FeatureSet, feature_extractor, real_features
from ..registry import METRICS
from . import metrics as M
from . import semantics as S
from .cluster_metrics import cluster_acc

log = logging.getLogger(__name__)

DEFAULT_N = 2000  # samples per sample metric
IWAE_BATCH = 50  # examples per iwae_bound call: K samples each
POINTS_N = 10_000  # samples per points metric
NOT_APPLICABLE = "does not apply to this model or data"  # info["skipped"]'s reason for such metrics


@dataclass(frozen=True)
class Metric:
    """One registered metric. ``kind`` is "sample", "images", "encoder", "likelihood", "labels", "codes",
    "factors" or "points"."""

    name: str
    help: str
    higher_is_better: bool
    kind: str
    needs: Callable[[Any], bool]  # capability check on the model
    compute: Callable[..., float]  # sample: (fake, real); points: (samples, data); others: (run: _ModelRun)
    needs_classifier: bool = False  # the feature network must have a classifier (IS)
    images_only: bool = False
    needs_data: Callable[[DataSet], bool] | None = None  # check on the data set (e.g. known mode centres)
    min_items: int = 1  # fewer items than this (e.g. a covariance of one vector): skipped, with the reason

    def applies(self, model: Any, features: FeatureExtractor | None, data: DataSet) -> bool:
        return (self.needs(model) and (not self.needs_classifier or (features is not None and features.has_classifier))
                and (data.kind == "image" or not self.images_only)
                and (self.needs_data is None or self.needs_data(data)))


def register_metric(metric: Metric) -> None:
    METRICS.register(metric.name, help=metric.help)(metric)


@runtime_checkable
class Sampler(Protocol):
    """Anything the sample metrics can measure: ``sample(n, generator=)`` -> (n, *shape)."""

    def sample(self, n: int, *, y: Any = None, generator: Any = None) -> Tensor: ...


def can_sample(m) -> bool:
    return isinstance(m, Sampler)


def _fd(fake: FeatureSet, real: FeatureSet) -> float:
    return M.frechet_distance(real.features, fake.features)


def _kid(fake: FeatureSet, real: FeatureSet) -> float:
    return M.kernel_inception_distance(real.features, fake.features)


PR_K, DC_K = 3, 5  # neighbours of the k-NN manifolds: each set needs more than k items


def _pr(key: str) -> Callable[[FeatureSet, FeatureSet], float]:
    return lambda fake, real: M.precision_recall(real.features, fake.features, k=PR_K)[key]


def _dc(key: str) -> Callable[[FeatureSet, FeatureSet], float]:
    return lambda fake, real: M.density_coverage(real.features, fake.features, k=DC_K)[key]


def _is(fake: FeatureSet, real: FeatureSet) -> float:
    return M.inception_score(fake.probs)


for _m in (
    Metric("fd", "Fréchet distance of Gaussian fits to real and sample features (FID, own feature net)",
           False, "sample", can_sample, _fd, min_items=2),
    Metric("kid", "kernel inception distance: unbiased cubic-kernel MMD² of real vs sample features",
           False, "sample", can_sample, _kid, min_items=2),
    Metric("precision", f"share of samples inside the real data's k-NN manifold (fidelity, k={PR_K})",
           True, "sample", can_sample, _pr("precision"), min_items=PR_K + 1),
    Metric("recall", f"share of real data inside the samples' k-NN manifold (diversity, k={PR_K})",
           True, "sample", can_sample, _pr("recall"), min_items=PR_K + 1),
    Metric("density", f"real k-NN balls holding each sample, / k (fidelity, ~1 when matched, k={DC_K})",
           True, "sample", can_sample, _dc("density"), min_items=DC_K + 1),
    Metric("coverage", f"share of real points whose k-NN ball holds a sample (diversity, k={DC_K})",
           True, "sample", can_sample, _dc("coverage"), min_items=DC_K + 1),
    Metric("is", "Inception score with the data set's own classifier: exp E KL(p(y|x) || p(y))",
           True, "sample", can_sample, _is, needs_classifier=True),
    Metric("recon_mse", "mean squared reconstruction error per pixel of held-out data",
           False, "encoder", lambda m: isinstance(m, Reconstructs), lambda run: float(run.recon_errors.mean())),
    Metric("psnr", "peak signal-to-noise ratio of reconstructions in dB (images in [0, 1])",
           True, "encoder", lambda m: isinstance(m, Reconstructs),
           lambda run: M.psnr(float(run.recon_errors.mean())), images_only=True),
    Metric("elbo", "mean evidence lower bound on log p(x), nats per example",
           True, "likelihood", lambda m: isinstance(m, LikelihoodBound), lambda run: float(run.elbos.mean())),
    Metric("bpp", "bits per pixel the codec's entropy model gives the rounded latents of held-out data",
           False, "encoder", lambda m: isinstance(m, CodesToBits),
           lambda run: float((run.codec_bits / run.pixels).mean())),
    Metric("rd_loss", "the codec's objective on held-out data: bits per pixel + lambda * 255^2 * MSE",
           False, "encoder", lambda m: isinstance(m, CodesToBits),
           lambda run: float(run.model.rd_objective(run.codec_bits / run.pixels, run.recon_errors).mean())),
    Metric("accuracy", "share of held-out items whose label the model's classify(x) predicts (m2: q(y|x))",
           True, "labels", lambda m: isinstance(m, Classifies),
           lambda run: float((run.predictions == run.y.double()).double().mean()),
           needs_data=lambda d: d.labelled),
    Metric("cluster_acc", "Hungarian-matched accuracy of the model's own clusters (argmax q(y|x)) on held-out labels",
           True, "labels", lambda m: isinstance(m, Clusters),
           lambda run: cluster_acc(run.y, run.clusters), needs_data=lambda d: d.labelled),
    Metric("nll", "negative log-likelihood estimate, mean of -IWAE bound with K samples, nats per example",
           False, "likelihood", lambda m: isinstance(m, LikelihoodBound),
           lambda run: float(-run.iwae_bounds.mean())),
):
    register_metric(_m)


def _edit(name: str, edit: str) -> Callable[..., dict[str, float]]:
    def compute(model, data, *, split, n, seed) -> dict[str, float]:
        return {name: float(S.edit_ious(model, data, edit, split=split, n=n, seed=seed)[0].median())}

    return compute


def _units(key: str, reduce: Callable) -> Callable[..., dict[str, float]]:
    def compute(model, data, *, split, n, seed) -> dict[str, float]:
        per = S.unit_correlations(model, data, split=split, n=n, seed=seed)
        out = {f"{key}.{f}": v["own" if key == "unit_corr" else "other"] for f, v in per.items()}
        return {key: reduce(out.values()), **out} if out else {}

    return compute


def _has_units(m) -> bool:
    return isinstance(m, NamedUnits) and isinstance(m, Encodes)


def _has_factor(*names: str) -> Callable[[DataSet], bool]:
    return lambda d: S.renders(d) and all(f in d.factor_names for f in names)


for _m in (
    Metric("view_iou", "novel views: median IoU of held-out images rotated 15-90° vs exact renders",
           True, "factors", lambda m: isinstance(m, Transforms), _edit("view_iou", "rotate"),
           images_only=True, needs_data=_has_factor("rotation")),
    Metric("scale_iou", "median IoU of held-out images rescaled by the model vs exact renders",
           True, "factors", lambda m: isinstance(m, Transforms), _edit("scale_iou", "scale"),
           images_only=True, needs_data=_has_factor("scale")),
    Metric("move_iou", "median IoU of held-out images moved by the model vs exact renders",
           True, "factors", lambda m: isinstance(m, Transforms), _edit("move_iou", "move"),
           images_only=True, needs_data=_has_factor("x", "y")),
    Metric("unit_corr", "smallest |correlation| of a factor with its named unit (held-out; per factor too)",
           True, "factors", _has_units, _units("unit_corr", min), needs_data=_has_factor()),
    Metric("unit_leak", "largest |correlation| of a factor with any unit not its own (per factor too)",
           False, "factors", _has_units, _units("unit_leak", max), needs_data=_has_factor()),
    Metric("sharpness", "mean gradient magnitude of samples / that of held-out images (1: as sharp)",
           True, "images", can_sample, S.sharpness_ratio, images_only=True),
):
    register_metric(_m)
_ORDER = ("fd", "kid", "precision", "recall", "density", "coverage", "is", "sharpness", "recon_mse", "psnr",
          "elbo", "nll", "accuracy", "code_acc", "code_nmi", "code_acc_real", "bpp", "rd_loss", "view_iou",
          "scale_iou", "move_iou", "unit_corr", "unit_leak")


# --- sampling ---------------------------------------------------------------------------------------
def _device(model) -> torch.device:
    try:
        return next(model.parameters()).device
    except (AttributeError, StopIteration):
        return torch.device("cpu")


@contextmanager
def _seeded(seed: int, device: torch.device):
    """Seed the global RNG for code that draws from it, then restore the caller's state."""
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


def model_sampler(model, *, seed: int = 0, batch_size: int = 500) -> Callable[[int], Tensor]:
    """n -> n samples on the CPU, drawn in batches from one seeded generator."""
    g = torch.Generator().manual_seed(seed)

    @torch.no_grad()
    def sample(n: int) -> Tensor:
        sizes = [min(batch_size, n - i) for i in range(0, n, batch_size)]
        return torch.cat([model.sample(b, generator=g).detach().cpu() for b in sizes])  # (n, *shape)

    return sample


def sample_metrics(sampler: Callable[[int], Tensor], real: FeatureSet, features: FeatureExtractor,
                   names: list[str], *, kind: str = "image") -> tuple[dict[str, float], FeatureSet]:
    """Draw len(real) samples once and compute each named sample metric: ({name: value}, fake features)."""
    x = sampler(len(real))
    if kind == "image":
        x = x.clamp(0, 1)  # as an image file would store it
    fake = features.feature_set(x)
    return {name: METRICS.get(name).compute(fake, real) for name in names}, fake


# --- encoder and likelihood quantities --------------------------------------------------------------
class _ModelRun:
    """Per-example quantities on real data, computed once, batched, seeded."""

    def __init__(self, model, x: Tensor, *, seed: int, nll_k: int, batch_size: int, y: Tensor | None = None,
                 features: FeatureExtractor | None = None, n_samples: int = DEFAULT_N):
        self.model, self.x, self.seed, self.nll_k, self.batch_size = model, x, seed, nll_k, batch_size
        self.y = y  # (N,) labels of x, when the data has them
        self.device = _device(model)
        self.features = features  # the evaluator, for metrics that classify samples
        self.n_samples = n_samples  # samples a metric of kind "codes" draws (not capped by the split)
        self.memo: dict[str, Any] = {}  # quantities several metrics of one kind share

    def _map(self, fn: Callable[[Tensor], Tensor], x: Tensor, batch: int, desc: str) -> Tensor:
        parts = [fn(xb.to(self.device)).detach().cpu().double()
                 for xb in tqdm(x.split(batch), desc=desc, leave=False, disable=None)]
        return torch.cat(parts)  # (N,)

    @cached_property
    def predictions(self) -> Tensor:
        """The model's class for each item, argmax of ``classify`` (N,)."""
        with _seeded(self.seed + 5, self.device):
            return self._map(lambda xb: self.model.classify(xb).argmax(1), self.x, self.batch_size, "classify")

    @cached_property
    def clusters(self) -> Tensor:
        """The model's cluster of each item, argmax of ``cluster_probs`` (N,)."""
        return self._map(lambda xb: self.model.cluster_probs(xb).argmax(1), self.x, self.batch_size, "cluster")

    @cached_property
    def targets(self) -> Tensor:
        """The data the likelihood is defined on (e.g. a fixed binarisation), (N, *shape)."""
        g = torch.Generator().manual_seed(self.seed + 1)
        return self.model.eval_targets(self.x, generator=g) if isinstance(self.model, LikelihoodBound) else self.x

    @cached_property
    def recon_errors(self) -> Tensor:
        def mse(xb: Tensor) -> Tensor:
            return (self.model.reconstruct(xb) - xb).pow(2).flatten(1).mean(1)  # (B,)

        with _seeded(self.seed + 2, self.device):
            return self._map(mse, self.x, self.batch_size, "reconstruction")

    @cached_property
    def pixels(self) -> int:
        return int(self.x.shape[-2] * self.x.shape[-1]) if self.x.dim() == 4 else 1

    @cached_property
    def codec_bits(self) -> Tensor:
        return self._map(self.model.estimated_bits, self.x, self.batch_size, "rate")

    @cached_property
    def elbos(self) -> Tensor:
        with _seeded(self.seed + 3, self.device):
            return self._map(self.model.elbo, self.targets, self.batch_size, "elbo")

    @cached_property
    def iwae_bounds(self) -> Tensor:
        with _seeded(self.seed + 4, self.device):
            return self._map(lambda xb: self.model.iwae_bound(xb, self.nll_k), self.targets,
                             IWAE_BATCH, f"nll (K={self.nll_k})")


# --- evaluate ---------------------------------------------------------------------------------------
def _choose(names: list[str] | None, model, features: FeatureExtractor | None, data: DataSet
            ) -> tuple[list[Metric], dict[str, str], FeatureExtractor | None]:
    """The metrics to compute (unknown names raise GenlabError), {name: reason} of those that do not
    apply, and the feature network (built only when a sample metric is asked for)."""
    explicit = names is not None
    if names is None:  # ours in their order (sample metrics first), then any others by name
        names = sorted(METRICS.names(), key=lambda k: (_ORDER.index(k) if k in _ORDER else len(_ORDER), k))
    candidates = [m for m in (METRICS.get(k) for k in names) if isinstance(m, Metric)]
    if features is None and any((m.kind == "sample" or m.needs_classifier) and m.needs(model) for m in candidates):
        features = feature_extractor(data, device=_device(model))  # trained (or loaded) only when needed
    chosen = [m for m in candidates if (m.kind != "sample" or features is not None)
              and m.applies(model, features, data)]
    skipped = {m.name: NOT_APPLICABLE for m in candidates if m.name not in {c.name for c in chosen}}
    if explicit and skipped:
        log.info("skipping metrics that do not apply to this model or data: %s", ", ".join(skipped))
    return chosen, skipped, features


def items_used(metric: Metric, split_size: int, n: int | None) -> int:
    """How many items ``metric`` is computed on for a split of ``split_size`` items and ``evaluate``'s n."""
    if metric.kind == "points":
        return n or POINTS_N  # samples only
    if metric.kind in ("sample", "images"):
        return min(n or DEFAULT_N, split_size)
    return min(n, split_size) if n else split_size


def _too_few(chosen: list[Metric], split: str, split_size: int, n: int | None) -> dict[str, str]:
    """{name: reason} of the chosen metrics that need more items than this split gives."""
    return {m.name: f"needs at least {m.min_items} items, the {split} split gives {used}"
            for m in chosen if (used := items_used(m, split_size, n)) < m.min_items}


_FLOORS: dict[tuple, float] = {}


def _floor(sample_ms: list[Metric], features: FeatureExtractor, data: DataSet, split: str, n: int,
           seed: int) -> dict[str, float]:
    """Each sample metric between ``split`` and n train items (memoised: it depends on data only)."""
    if "train" not in data.splits:
        log.warning("data set %s has no train split: no real-vs-real floor", data.name)
        return {}
    real = real_features(features, data, split, n, seed=seed)
    train = real_features(features, data, "train", n, seed=seed + 1)
    if len(train) < n:
        log.warning("the floor uses %d train items, fewer than n=%d", len(train), n)
    out = {}
    for m in sample_ms:
        if len(train) < m.min_items:  # a set of one or two items (all splits the same)
            continue
        key = (features.fingerprint, data.fingerprint(), split, n, seed, m.name)
        if key not in _FLOORS:
            _FLOORS[key] = m.compute(train, real)
        out[m.name] = _FLOORS[key]
    return out


def evaluate(model, data: DataSet, *, split: str = "test", metrics: list[str] | None = None,
             n: int | None = None, nll_k: int = 200, seed: int = 0,
             features: FeatureExtractor | None = None, batch_size: int = 500) -> dict:
    """Metrics of ``model`` on ``data[split]``: {"values": {...}, "floor": {...}, "info": {...}}.

    ``metrics``: names, or None for all that apply. Those that do not apply to the model or data, and
    those that need more items than the split gives (e.g. FD's covariance needs 2), are skipped:
    info["skipped"] maps each to its reason. ``n``: items per metric; by default sample metrics use
    min(2000, len(split)) samples and encoder/likelihood metrics the whole split.
    ``floor`` holds each sample metric between the evaluated split and as many train images:
    about what a perfect generator would get at this n (the noise floor). Deterministic given
    ``seed``; the caller's global RNG state is left as it was.
    """
    if split not in data.splits:
        raise GenlabError(f"data set {data.name} has no split {split!r}; it has: {', '.join(data.splits)}")
    device = _device(model)
    chosen, skipped, features = _choose(metrics, model, features, data)
    size = len(data.splits[split])
    n_sample = min(n or DEFAULT_N, size)
    too_few = _too_few(chosen, split, size, n)
    chosen = [m for m in chosen if m.name not in too_few]
    skipped.update(too_few)
    values: dict[str, float] = {}
    floor: dict[str, float] = {}
    info: dict[str, Any] = {"data": data.name, "split": split, "seed": seed, "skipped": skipped}
    if features is not None:
        info.update(feature_net=features.kind, feature_net_accuracy=features.test_accuracy)
    module = isinstance(model, torch.nn.Module)  # any sampler can be measured; a module is put in eval mode
    was_training = module and model.training
    if module:
        model.eval()
    try:
        with torch.no_grad(), _seeded(seed, device):
            sample_ms = [m for m in chosen if m.kind == "sample"]
            if sample_ms:
                real = real_features(features, data, split, n_sample, seed=seed)
                sampler = model_sampler(model, seed=seed, batch_size=batch_size)
                got, _ = sample_metrics(sampler, real, features, [m.name for m in sample_ms], kind=data.kind)
                values.update(got)
                floor.update(_floor(sample_ms, features, data, split, n_sample, seed))
                info["n"] = n_sample
            points_ms = [m for m in chosen if m.kind == "points"]
            if points_ms:
                info["n_points"] = n or POINTS_N
                x = model_sampler(model, seed=seed, batch_size=batch_size)(info["n_points"])
                values.update({m.name: m.compute(x, data) for m in points_ms})
            image_ms = [m for m in chosen if m.kind == "images"]
            if image_ms:
                real_x, _ = data.tensors(split, limit=n_sample, seed=seed)
                x = model_sampler(model, seed=seed + 11, batch_size=batch_size)(len(real_x))
                values.update({m.name: m.compute(x, real_x) for m in image_ms})
            for m in (m for m in chosen if m.kind == "factors"):
                values.update(m.compute(model, data, split=split, n=n, seed=seed))
            model_ms = [m for m in chosen if m.kind in ("encoder", "likelihood", "labels", "codes")]
            if model_ms:
                x, y = data.tensors(split, limit=n, seed=seed)
                run = _ModelRun(model, x, y=y, seed=seed, nll_k=nll_k, batch_size=batch_size, features=features,
                                n_samples=n or DEFAULT_N)
                values.update({m.name: m.compute(run) for m in model_ms})
                info["n_model"] = len(x)
                if any(m.name == "nll" for m in model_ms):
                    info["nll_k"] = nll_k
    finally:
        if module:
            model.train(was_training)
    return {"values": values, "floor": floor, "info": info}


def format_table(result: dict) -> str:
    """A plain-text table: metric, value, real-vs-real floor, direction, description; then the split,
    and the metrics skipped for a reason other than not applying (e.g. too few items)."""
    rows = [("metric", "value", "real-vs-real", "dir", "description")]
    for name, value in result["values"].items():
        metric = METRICS.get(name) if name in METRICS else None
        arrow = "" if metric is None else ("↑" if metric.higher_is_better else "↓")
        fl = result.get("floor", {}).get(name)
        rows.append((name, f"{value:.4g}", "-" if fl is None else f"{fl:.4g}", arrow,
                     METRICS.help(name)))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4] for r in rows]
    info = result.get("info", {})
    foot = f"split {info.get('split')}"
    if "n" in info:
        foot += f", n={info['n']} samples"
    if info.get("feature_net_accuracy") is not None:
        foot += f", feature net ({info['feature_net']}) test accuracy {info['feature_net_accuracy']:.3f}"
    if "nll_k" in info:
        foot += f", nll with K={info['nll_k']}"
    skipped = [f"skipped {name}: {why}" for name, why in (info.get("skipped") or {}).items()
               if why != NOT_APPLICABLE]
    return "\n".join([*lines, foot, *skipped])
