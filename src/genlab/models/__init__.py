"""Model families, one file each, registered by name in ``genlab.registry.MODELS``; what each can do
is declared with the Protocols of ``genlab.models.capabilities``."""

from ..runs.folder import build_model
from . import autoencoder, cgan, codec, cvae, dcign, gan, gmvae, infogan, m2, stackgan, vae  # noqa: F401  (registration)
from .base import GenerativeModel, Phase

__all__ = ["GenerativeModel", "Phase", "build_model"]
