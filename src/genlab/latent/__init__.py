"""Tools on the latent space, tensors in and out: interpolation, traversals, attribute vectors and
arithmetic, projection (GAN inversion), nearest neighbours, class analogies.

``interpolate(model, a, b, steps=8, slerp=True)`` works on images; the code-level pieces are in the
submodules (``genlab.latent.interpolate.interpolate(za, zb, steps)`` on codes, ``traverse``, ``attributes``).
"""

from .analogies import analogy_grid, is_conditional_encoder
from .attributes import apply_attribute, arithmetic, attribute_vector
from .edits import attribute_edit, codes_of, effect_report, interpolate
from .interpolate import lerp, slerp
from .project import project
from .traverse import code_grid, decode_grid, dimension_grid, sweep

__all__ = ["analogy_grid", "apply_attribute", "arithmetic", "attribute_edit", "attribute_vector", "code_grid",
           "codes_of", "decode_grid", "dimension_grid", "effect_report", "interpolate", "is_conditional_encoder",
           "lerp", "project", "slerp", "sweep"]
