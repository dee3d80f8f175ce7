"""Learned compression into real files: the ``.glc`` format, range coding, rate–distortion curves."""

from .codec import compress, decompress, model_identity, rate_check
from .format import FORMAT_VERSION, GlcFile, pack, unpack

__all__ = ["FORMAT_VERSION", "GlcFile", "compress", "decompress", "model_identity", "pack", "rate_check",
           "unpack"]
