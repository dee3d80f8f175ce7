"""What a model can do beyond the base surface, declared: one ``typing.Protocol`` per capability.

A model family declares a capability by inheriting its Protocol (``class VAE(Autoencoder,
LikelihoodBound)``); code outside ``models/`` asks ``isinstance(model, Encodes)``, never a model's
name, its config fields or a bare ``hasattr``. The Protocols are runtime-checkable, so ``isinstance``
also holds for any object with the members (a test helper, a user's own model); the shared contract
test (tests/test_models.py) checks that every registered family has the members of exactly the
capabilities it declares and that each behaves as its docstring says.

The base surface every model has (``genlab.models.base.GenerativeModel``): ``phases()``,
``loss(phase, batch)``, ``sample(n, y=, generator=)``, ``sample_with_latents``, ``sample_groups``,
``prior_sample``, ``latent_size``, ``default_eval_metrics``, ``train_defaults``, ``batch_plan`` (None,
or the one-factor batches it trains on), ``prepare(data)`` and ``eval_targets(x)``.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from torch import Tensor, nn


@runtime_checkable
class Decodes(Protocol):
    """Has a latent space to explore: ``decode(z)`` maps codes (N, latent_size) from ``prior_sample(n)``
    to data (N, *shape) in [0, 1]. The latent tools (interpolate, traverse, arithmetic) need it."""

    latent_size: int

    def decode(self, z: Tensor) -> Tensor: ...

    def prior_sample(self, n: int, generator: Any = None) -> Tensor: ...


@runtime_checkable
class Reconstructs(Protocol):
    """``reconstruct(x)`` returns its reconstruction of data (N, *shape), same shape: the
    reconstruction metrics (recon_mse, psnr) and the reconstruct command need it."""

    def reconstruct(self, x: Tensor) -> Tensor: ...


@runtime_checkable
class Encodes(Protocol):
    """An encoder: ``encode(x)`` maps data (N, *shape) to codes (N, latent_size) (posterior means for a
    VAE); with ``Decodes``, ``decode`` maps them back. Encode, cluster, probe and held-out interpolation
    need it."""

    def encode(self, x: Tensor) -> Tensor: ...


@runtime_checkable
class LikelihoodBound(Protocol):
    """A lower bound on log p(x) per example, in nats: ``elbo(x)`` (N,) and the importance-weighted
    ``iwae_bound(x, k)`` (N,), which tightens with k (the elbo and nll metrics), both of the data as
    ``eval_targets(x)`` gives it (e.g. a fixed binarisation)."""

    def eval_targets(self, x: Tensor, generator: Any = None) -> Tensor: ...

    def elbo(self, x: Tensor) -> Tensor: ...

    def iwae_bound(self, x: Tensor, k: int) -> Tensor: ...


@runtime_checkable
class ClassConditional(Protocol):
    """Conditional on a class: ``num_classes`` K, and ``sample(n, y=k)`` draws class k (``sample(n)``
    cycles 0..K-1). An encoder model among them takes the class beside the input: ``encode(x, y)``,
    ``decode(z, y)`` (class analogies)."""

    num_classes: int


@runtime_checkable
class CaptionConditional(Protocol):
    """Conditional on a caption: ``parse_caption(text)`` gives the condition (1, S) that
    ``sample(n, y=condition.expand(n, -1))`` draws from; ``grammar.vocabulary`` lists the words."""

    grammar: Any

    def parse_caption(self, text: str) -> Tensor: ...


@runtime_checkable
class ReadableCodes(Protocol):
    """Latent codes with a meaning the model keeps readable (InfoGAN): ``code_layout`` says where the
    categorical and continuous codes sit in z (samples drawn with category k are meant to show k)."""

    code_layout: Any


@runtime_checkable
class PredictsCodes(Protocol):
    """Reads its codes back from data: ``predict_codes(x)`` -> categorical (N, C) and continuous (N, M)
    codes (InfoGAN's Q head; the code_acc_real metric)."""

    def predict_codes(self, x: Tensor) -> tuple[Tensor, Tensor]: ...


@runtime_checkable
class NamedUnits(Protocol):
    """Latent units bound to named generative factors: ``unit_names`` (the first units of z, in order),
    the factor's ``unit_range(name)`` (lo, hi) and ``unit_period(name)`` (None unless circular)."""

    unit_names: tuple[str, ...]

    def unit_range(self, name: str) -> tuple[float, float]: ...

    def unit_period(self, name: str) -> float | None: ...


@runtime_checkable
class Transforms(Protocol):
    """Novel views: ``transform(x, rotate=radians, scale=factor, move=(dx, dy))`` re-renders images
    (N, *shape) with their named factors changed (the transform command and the *_iou metrics)."""

    def transform(self, x: Tensor, *, rotate: Any = 0.0, scale: Any = 1.0, move: Any = (0.0, 0.0)) -> Tensor: ...


@runtime_checkable
class Clusters(Protocol):
    """Its own clusters: ``cluster_probs(x)`` (N, K), the posterior q(y|x) over K mixture components."""

    def cluster_probs(self, x: Tensor) -> Tensor: ...


@runtime_checkable
class Classifies(Protocol):
    """Predicts labels: ``classify(x)`` (N, K) class scores (logits), the argmax the predicted class (the
    accuracy metric)."""

    def classify(self, x: Tensor) -> Tensor: ...


@runtime_checkable
class LearnsFromPartialLabels(Protocol):
    """Learns from partly labelled data: batches whose hidden labels are -1 (``train(labels=N)``, the
    labels budget: N balanced labels, the rest hidden). Such a model also ``classify``s."""

    learns_from_partial_labels: bool

    def classify(self, x: Tensor) -> Tensor: ...


@runtime_checkable
class CodesToBits(Protocol):
    """A learned codec: ``estimated_bits(x)`` (N,) bits its entropy model gives the rounded latents,
    ``rd_objective(bpp, mse)`` (N,) its rate-distortion objective, ``coding_tables()`` the integer
    tables a range coder uses (``genlab.compression`` writes .glc files with them); ``lmbda`` weighs
    distortion against rate. ``qualities``: the levels this one model codes at (several for a
    variable-rate codec), ``set_quality(q)`` picks the one it codes at (stored in a .glc header)."""

    lmbda: float
    qualities: tuple[int, ...]

    def set_quality(self, quality: int) -> None: ...

    def estimated_bits(self, x: Tensor) -> Tensor: ...

    def rd_objective(self, bpp: Tensor, mse: Tensor) -> Tensor: ...

    def coding_tables(self) -> Any: ...


@runtime_checkable
class QualityLadder(Protocol):
    """Trains as a ladder of quality levels, one run per level (``train(qualities=...)``):
    ``ladder_settings(q)`` gives the config fields of level q, ``ladder_fields`` their names (a ladder
    sets them, so an override of one is refused); ``quality`` is this model's level (0: not in a ladder)."""

    quality: int
    ladder_fields: tuple[str, ...]

    @classmethod
    def ladder_settings(cls, quality: int) -> dict[str, Any]: ...


@runtime_checkable
class Adversarial(Protocol):
    """Trained against a critic: ``critic(x[, y])`` (N,) scores, ``generator_loss(d_fake)`` the
    generator's loss on them, ``critic_is_logit`` (the score is a logit of P(real)), ``objective`` the
    name of the adversarial loss, ``generator_sample(n)`` the generator's own samples (not its EMA)."""

    critic: nn.Module
    critic_is_logit: bool
    objective: str

    def generator_loss(self, d_fake: Tensor) -> Tensor: ...

    def generator_sample(self, n: int, *, y: Tensor | None = None, generator: Any = None) -> Tensor: ...


#: every capability, in the order of ``genlab list``'s table
CAPABILITIES: tuple[type, ...] = (Decodes, Reconstructs, Encodes, LikelihoodBound, ClassConditional,
                                  CaptionConditional, ReadableCodes, PredictsCodes, NamedUnits, Transforms, Clusters,
                                  Classifies, LearnsFromPartialLabels, CodesToBits, QualityLadder, Adversarial)


def declared(model_or_class: Any) -> tuple[str, ...]:
    """Names of the capabilities a model family declares (inherits), in ``CAPABILITIES`` order."""
    cls = model_or_class if isinstance(model_or_class, type) else type(model_or_class)
    return tuple(c.__name__ for c in CAPABILITIES if issubclass_declared(cls, c))


def issubclass_declared(cls: type, capability: type) -> bool:
    """``cls`` inherits ``capability`` (a declaration, not a structural match)."""
    return capability in cls.__mro__


def capability(name: str) -> type:
    """The capability Protocol called ``name``."""
    return {c.__name__: c for c in CAPABILITIES}[name]
