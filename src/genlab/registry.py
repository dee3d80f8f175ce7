"""Named registries for models, data sets and metrics: the CLI's choices and menus read them.

A registry knows the built-in names from ``genlab.catalog`` before their modules are imported: asking
for a name (``MODELS.get(name)``) imports the module that registers it, so ``genlab --help`` and
``genlab list`` need no torch, and ``genlab.runs`` can rebuild a run's model without importing
``genlab.models`` itself.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from . import catalog
from .errors import GenlabError

T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> object table with a decorator to fill it and a lookup that explains misses."""

    def __init__(self, kind: str, *, modules: dict[str, str] | None = None, helps: dict[str, str] | None = None):
        """``modules``: name -> the module that registers it, imported on first use; ``helps``: their
        one-line help, known before the import."""
        self.kind = kind
        self._items: dict[str, T] = {}
        self._help: dict[str, str] = dict(helps or {})
        self._modules: dict[str, str] = dict(modules or {})

    def _load(self, name: str) -> None:
        if name not in self._items and name in self._modules:
            importlib.import_module(self._modules[name])

    def load_all(self) -> None:
        """Import every module that registers a built-in name."""
        for name in list(self._modules):
            self._load(name)

    def register(self, name: str, help: str = "") -> Callable[[T], T]:
        def add(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = obj
            doc = help or (getattr(obj, "__doc__", None) or "").strip().splitlines()
            self._help[name] = doc if isinstance(doc, str) else (doc[0] if doc else "")
            return obj

        return add

    def get(self, name: str) -> T:
        self._load(name)
        try:
            return self._items[name]
        except KeyError:
            close = difflib.get_close_matches(name, self.names(), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise GenlabError(
                f"unknown {self.kind} {name!r}{hint}; choose from: {', '.join(self.names())}"
            ) from None

    def loaded(self) -> list[str]:
        """The names registered so far (imported), sorted."""
        return sorted(self._items)

    def help(self, name: str) -> str:
        return self._help.get(name, "")

    def names(self) -> list[str]:
        """Every name: the registered ones and the built-in ones not imported yet."""
        return sorted({*self._items, *self._modules})

    def __contains__(self, name: str) -> bool:
        return name in self._items or name in self._modules

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())


MODELS: Registry = Registry("model", modules={n: e.module for n, e in catalog.MODELS.items()},
                            helps={n: e.help for n, e in catalog.MODELS.items()})
DATASETS: Registry = Registry("data set")
METRICS: Registry = Registry("metric", modules=dict.fromkeys(catalog.METRICS, catalog.METRICS_MODULE),
                             helps=catalog.METRICS)
