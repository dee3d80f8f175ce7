"""The small surface every generative model shares, and the phase that the trainer runs.

A model is an ``nn.Module`` built from ``(config, data_info)``. It lists its training ``phases()``
(which parameters, which optimiser, how often); ``loss(phase, batch, step=)`` returns a dict whose
``"loss"`` is minimised in that phase and whose other entries are logged; ``sample(n)`` draws data.
What a model can do beyond this surface it declares by inheriting the Protocols of
``genlab.models.capabilities`` (``Encodes``, ``LikelihoodBound``, ...); evaluation, the tools and the
CLI ask ``isinstance(model, Capability)``, never a model's name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ..config import DataInfo, ModelConfig
from ..errors import GenlabError


@dataclass
class Phase:
    """One optimisation phase: a name, the parameters it updates, its optimiser and its cadence.

    ``repeat`` runs the phase that many times per step, each on a fresh batch (a GAN critic's
    n_critic); ``after_step`` runs after each optimiser step (e.g. WGAN weight clipping).
    Distributed training syncs exactly ``parameters`` through one DDP wrapper per phase, which
    expects every one of them to get a gradient at every step: a phase whose loss may leave some
    unused sets ``unused_parameters`` (DDP then looks for them, at a cost).
    """

    name: str
    parameters: Callable[[], Iterable[nn.Parameter]]
    optimizer: str = "adam"  # "adam" or "rmsprop"
    lr: float | None = None  # None: the run's train.lr
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    repeat: int = 1
    after_step: Callable[[], None] | None = None
    unused_parameters: bool = False

    def make_optimizer(self, default_lr: float) -> torch.optim.Optimizer:
        params = [p for p in self.parameters() if p.requires_grad]
        lr = self.lr if self.lr is not None else default_lr
        if self.optimizer == "rmsprop":
            return torch.optim.RMSprop(params, lr=lr, weight_decay=self.weight_decay)
        return torch.optim.Adam(params, lr=lr, betas=self.betas, weight_decay=self.weight_decay,
                                **_fast_kernels(params))


class GenerativeModel(nn.Module):
    """Base class: keeps the config and data info, and gives the defaults of the small surface."""

    Config: type[ModelConfig] = ModelConfig
    # validation metrics during training when train.eval_metrics is not set; the first that applies
    # picks best.pt
    default_eval_metrics: tuple[str, ...] = ("elbo", "fd", "recon_mse")
    # TrainConfig fields this family trains with unless ``--set train.X=...`` says otherwise
    train_defaults: ClassVar[dict[str, Any]] = {}
    # more of them for one kind of data ({"image": {"batch_size": 64}}), applied once the data is loaded
    train_defaults_by_kind: ClassVar[dict[str, dict[str, Any]]] = {}
    # the batches it trains on: None for random batches of the train split, or a
    # ``genlab.data.factors.FactorBatches`` plan (batches in which one generative factor varies)
    batch_plan: Any = None

    def __init__(self, config: ModelConfig, data_info: DataInfo):
        super().__init__()
        self.config, self.data_info = config, data_info

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def sample_groups(self) -> int | None:
        """K when ``sample(n)`` cycles through K groups (classes, mixture components) and ``sample(n, y=k)``
        draws from group k: sample grids then give each group a column. None: one population."""
        return getattr(self, "num_classes", None)

    @property
    def is_image(self) -> bool:
        return self.data_info.kind == "image"

    def phases(self) -> list[Phase]:
        return [Phase("main", self.parameters)]

    def prepare(self, data) -> None:
        """Called once by the trainer before the first step, with the training data (e.g. to load a
        frozen feature network trained on it). Nothing by default."""

    def eval_targets(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """The held-out data (N, *shape) as the evaluation's likelihood sees it (a binarising model draws
        binary images from it); the data itself by default."""
        return x

    def loss(self, phase: str, batch: dict[str, Tensor], *, step: int = 0) -> dict[str, Tensor]:
        raise NotImplementedError

    def sample(self, n: int, *, y: Tensor | None = None, generator: torch.Generator | None = None) -> Tensor:
        """n samples (n, *shape): images in [0, 1], points as coordinates."""
        return self.sample_with_latents(n, y=y, generator=generator)["x"]

    def sample_with_latents(self, n: int, *, y: Tensor | None = None,
                            generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """{"x": samples, "z": the latents that made them (and "y" when conditional)}."""
        raise NotImplementedError

    @property
    def latent_size(self) -> int:
        """Length of the latent vector the latent tools see (``prior_sample``, ``decode``)."""
        return self.config.latent_dim

    def prior_sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """z ~ N(0, I), (n, latent_dim), on the model's device."""
        z = torch.randn(n, self.config.latent_dim, generator=generator)
        return z.to(self.device)


def _fast_kernels(params: list[nn.Parameter]) -> dict:
    """Fused Adam (one kernel for all parameters) where this torch supports it on the device."""
    return {"fused": True} if params and params[0].device.type in ("cpu", "cuda") else {}


def class_labels(n: int, y: Tensor | int | None, classes: int, device: torch.device) -> Tensor:
    """(n,) labels: the given ones (an int or n of them), or 0, 1, ..., K-1, 0, 1, ... ."""
    if y is None:
        return torch.arange(n, device=device) % classes
    y = torch.as_tensor(y, dtype=torch.long)
    y = (y.expand(n) if y.dim() == 0 else y).to(device)
    if y.shape != (n,):
        raise GenlabError(f"expected one label or {n} labels, got a tensor of shape {tuple(y.shape)}")
    if len(y) and (y.min() < 0 or y.max() >= classes):
        raise GenlabError(f"labels must be in 0..{classes - 1}, got {y.min().item()}..{y.max().item()}")
    return y
