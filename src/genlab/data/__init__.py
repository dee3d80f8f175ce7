"""Data sets: built-in (mnist5k, digits, toy2d:*, shapes) and user data (folder:, npz:, idx:).

``load_data("toy2d:ring8", seed=1)`` returns a ``DataSet``; ``Loader`` draws resumable batches from it.
Importing this package registers every loader in ``genlab.registry.DATASETS``.
"""

from __future__ import annotations

import inspect
import os

from ..errors import GenlabError
from ..registry import DATASETS
from . import builtin, user  # noqa: F401  (importing them registers the loaders)
from .base import SPLITS, DataSet, Loader, batch_dict
from .budget import SizeBudget, open_image
from .builtin import TOY_VARIANTS, render_shapes

__all__ = ["DATASETS", "SPLITS", "DataSet", "Loader", "SizeBudget", "batch_dict", "dataset_names", "load_data",
           "loader_options", "open_image", "render_shapes"]

PATH_DATA = ("folder", "npz", "idx")  # registry names whose argument is a path
_ORDER = ("mnist5k", "digits", "toy2d", "shapes", *PATH_DATA)


def dataset_names() -> list[str]:
    """The names a user can pass as ``--data``, e.g. mnist5k, toy2d:ring8, folder:PATH."""
    registered = DATASETS.names()
    names = []
    for name in [n for n in _ORDER if n in registered] + [n for n in registered if n not in _ORDER]:
        if name == "toy2d":
            names += [f"toy2d:{v}" for v in TOY_VARIANTS]
        else:
            names.append(f"{name}:PATH" if name in PATH_DATA else name)
    return names


def loader_options(spec: str) -> list[str]:
    """The options the loader of ``spec`` takes (e.g. image_size, channels, seed)."""
    loader = DATASETS.get(spec.strip().partition(":")[0])
    return [p.name for p in list(inspect.signature(loader).parameters.values())[1:]
            if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name != "budget"]


def load_data(spec: str, *, budget: SizeBudget | None = None, **options) -> DataSet:
    """Load the data set named by ``spec`` ("name" or "name:arg", split at the first ':').

    ``arg`` is the toy variant (toy2d:ring8) or a path (folder:~/pngs, ``~`` expanded). Options set
    to None are dropped; the rest go to the loader (see each loader's docstring), and an option it
    does not take is a GenlabError. Built-in sets are named by their spec, user data by a short name.
    Sizes are checked against ``budget`` (default ``SizeBudget()``, see ``genlab.data.budget``) before
    anything is read or made: ``image_size`` here, file headers and item counts in the loaders.
    """
    budget = budget or SizeBudget()
    name, _, arg = spec.strip().partition(":")
    loader = DATASETS.get(name)
    options = {k: v for k, v in options.items() if v is not None}
    accepted = loader_options(spec)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise GenlabError(f"data set {name!r} has no option {', '.join(unknown)}; "
                          f"its options are: {', '.join(accepted) or 'none'}")
    size = options.get("image_size")
    if isinstance(size, int) and not isinstance(size, bool) and size > 0:  # the loader checks the rest
        budget.check_image(size, size, f"with image_size={size}, an image of {spec.strip()}")
    if "budget" in inspect.signature(loader).parameters:
        options["budget"] = budget
    if name in PATH_DATA and arg:
        arg = os.path.expanduser(arg)
    return loader(arg or None, **options)
