"""``genlab.catalog`` (what ``--help`` and ``list`` print without importing torch) against the real registries."""

from __future__ import annotations

import genlab.evaluation  # noqa: F401  (registers the metrics)
from genlab import catalog
from genlab.cli.listing import CAPABILITY_ORDER, capability_table
from genlab.data import dataset_names
from genlab.models.capabilities import CAPABILITIES, declared
from genlab.registry import METRICS, MODELS


def test_every_model_entry_matches_its_class():
    MODELS.load_all()
    assert set(catalog.MODELS) == set(MODELS.loaded())
    for name, entry in catalog.MODELS.items():
        cls = MODELS.get(name)
        assert cls.__module__ == entry.module, name
        assert MODELS.help(name) == entry.help, name
        assert declared(cls) == entry.capabilities, name


def test_data_sets_and_metrics_match_their_registries():
    assert list(catalog.DATASET_NAMES) == dataset_names()
    assert set(catalog.METRICS) == set(METRICS.loaded())
    assert {n: METRICS.help(n) for n in METRICS.loaded()} == catalog.METRICS


def test_the_list_table_has_every_capability_in_order():
    assert CAPABILITY_ORDER == tuple(c.__name__ for c in CAPABILITIES)
    table = capability_table({"a": ("Encodes",), "b": ()}).splitlines()
    assert table[0].split() == ["a", "b"]
    assert [line.split() for line in table[1:] if line.startswith("Encodes")] == [["Encodes", "x", "."]]
