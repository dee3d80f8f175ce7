"""Tools on the latent space: interpolation (and, in later issues, arithmetic, traversals, projection)."""

from .interpolate import interpolate, lerp, slerp

__all__ = ["interpolate", "lerp", "slerp"]
