"""Model families, one file each, registered by name in ``genlab.registry.MODELS``; what each can do
is declared with the Protocols of ``genlab.models.capabilities``.

The families are imported when their name is first asked for (``MODELS.get(name)``, see
``genlab.catalog``), not by importing this package; ``MODELS.load_all()`` imports every one.
"""

from ..runs.folder import build_model
from .base import GenerativeModel, Phase

__all__ = ["GenerativeModel", "Phase", "build_model"]
