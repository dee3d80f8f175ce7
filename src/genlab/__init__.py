"""genlab: generative neural networks that train for real on a laptop CPU, with honest metrics.

Data flows ``data -> models -> training -> runs/<id>/ -> evaluation | latent``; the CLI drives each step
through the same functions this package exports::

    import genlab
    run = genlab.train(name, data="mnist5k", steps=300)   # name: one of `genlab list`
    model = genlab.open_run(run.path).load()     # best weights; which="last" for the last
    x = model.sample(16)                         # (16, C, H, W) in [0, 1]
    scores = genlab.evaluate(run, metrics=["fd", "nll"])

Images are float tensors in [0, 1] everywhere inside the library, shaped (N, C, H, W). Everything is
imported on first use, so ``import genlab`` stays light (no torch until it is needed).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from . import clustering, compression, latent
    from .api.inference import Scores, evaluate
    from .api.training import train
    from .data import DataSet, load_data
    from .errors import GenlabError
    from .models import capabilities
    from .runs import Run, open_run

# public name -> (module, attribute; None: the module itself)
_EXPORTS: dict[str, tuple[str, str | None]] = {
    "train": ("genlab.api.training", "train"),
    "evaluate": ("genlab.api.inference", "evaluate"),
    "Scores": ("genlab.api.inference", "Scores"),
    "Run": ("genlab.runs", "Run"),
    "open_run": ("genlab.runs", "open_run"),
    "DataSet": ("genlab.data", "DataSet"),
    "load_data": ("genlab.data", "load_data"),
    "GenlabError": ("genlab.errors", "GenlabError"),
    "capabilities": ("genlab.models.capabilities", None),
    "latent": ("genlab.latent", None),
    "clustering": ("genlab.clustering", None),
    "compression": ("genlab.compression", None),
}

__all__ = ["DataSet", "GenlabError", "Run", "Scores", "__version__", "capabilities", "clustering", "compression",
           "evaluate", "latent", "load_data", "open_run", "train"]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'genlab' has no attribute {name!r}")
    module, attribute = _EXPORTS[name]
    value = importlib.import_module(module)
    value = value if attribute is None else getattr(value, attribute)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
