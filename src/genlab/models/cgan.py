"""Class-conditional GAN (Mirza & Osindero 2014) with a projection discriminator (Miyato & Koyama 2018).

    z (N, latent) ++ embed_G(y) (N, embed_dim) --G--> x (N, *shape)
    D(x, y) = psi(phi(x)) + <embed_D(y), phi(x)>  (N,)

G sees the label as a learned embedding concatenated to z; D projects its features phi(x) onto a
learned class embedding instead of concatenating y to its input, which Miyato & Koyama found both
better and more stable. Everything else (losses, phases, EMA, spectral norm) is the GAN's; fakes
in a batch get the real batch's labels, so classes are drawn with the data's frequencies. Needs
labelled data: ``num_classes`` comes from the data; ``sample(n, y=None)`` cycles 0..K-1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from torch import Tensor

from ..config import WIDTHS, DataInfo, option
from ..errors import GenlabError
from ..registry import MODELS
from .base import class_labels
from .capabilities import ClassConditional
from .gan import GAN, GANConfig


@dataclass(frozen=True)
class CGANConfig(GANConfig):
    embed_dim: int = option(16, "width of G's label embedding (D's is its feature width)", **WIDTHS)
    spectral_norm: bool = True  # Miyato & Koyama 2018 train the projection critic with it
    loss: str = "hinge"

    # the DCGAN paper's Adam 2e-4 with batch 128 (CGAN.train_defaults_by_kind) and no R1, at which
    # docs/models/cgan.md measures it
    AUTO: ClassVar[dict[str, dict[str, Any]]] = {
        "image": {**GANConfig.AUTO["image"], "lr_g": 2e-4, "lr_d": 2e-4, "r1": 0.0},
        "points": GANConfig.AUTO["points"],
    }


@MODELS.register("cgan", help="class-conditional GAN: label embedding in G, projection discriminator")
class CGAN(GAN, ClassConditional):
    Config = CGANConfig
    train_defaults_by_kind = {}  # the trainer's batch (128)

    def __init__(self, config: CGANConfig, data_info: DataInfo):
        super().__init__(config, data_info)
        self.num_classes: int = data_info.num_classes  # the capability ``sample(n, y=...)`` reads

    @property
    def embed_dim(self) -> int:
        return self.config.embed_dim

    def label_classes(self, data_info: DataInfo) -> int:
        if not data_info.num_classes:
            raise GenlabError("cgan needs labelled data (classes), and this data set has no labels")
        return data_info.num_classes

    def batch_labels(self, batch: dict[str, Tensor]) -> Tensor:
        if "y" not in batch:
            raise GenlabError("cgan needs labelled data, and this batch has no labels")
        return batch["y"]

    def sample_labels(self, n: int, y: Tensor | int | None) -> Tensor:
        """(n,) labels: the given ones (an int or a tensor of n), or 0, 1, ..., K-1, 0, 1, ... ."""
        return class_labels(n, y, self.num_classes, self.device)
