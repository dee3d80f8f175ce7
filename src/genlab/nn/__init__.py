"""Reusable networks sized from the data's shape: MLPs for points and small images, conv nets for images."""

from .blocks import ConvDecoder, ConvEncoder, make_decoder, make_encoder, mlp

__all__ = ["ConvDecoder", "ConvEncoder", "make_decoder", "make_encoder", "mlp"]
