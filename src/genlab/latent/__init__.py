"""Tools on the latent space: interpolation, class analogies (and, in later issues, arithmetic,
traversals, projection)."""

from .analogies import analogy_grid, is_conditional_encoder
from .interpolate import interpolate, lerp, slerp

__all__ = ["analogy_grid", "interpolate", "is_conditional_encoder", "lerp", "slerp"]
