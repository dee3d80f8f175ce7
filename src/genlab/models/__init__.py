"""Model families, one file each, registered by name in ``genlab.registry.MODELS``."""

from . import autoencoder, cgan, codec, cvae, gan, gmvae, infogan, m2, stackgan, vae  # noqa: F401  (registration)
from .base import GenerativeModel, Phase

__all__ = ["GenerativeModel", "Phase", "build_model"]


def build_model(run_config):
    """Build a model from a ``RunConfig``: the registry gives the class, the config its shape.

    The initial weights depend only on ``train.seed``, not on what ran before in the process.
    """
    import torch

    from ..registry import MODELS

    cls = MODELS.get(run_config.model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(run_config.train.seed)
        return cls(run_config.model_config, run_config.data_info)
