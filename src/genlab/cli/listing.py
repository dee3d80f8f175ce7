"""``genlab list``: models, data sets, metrics and what each model can do, from ``genlab.catalog`` (no torch)."""

from __future__ import annotations

from .. import catalog
from ..registry import METRICS, MODELS

#: the capabilities of ``genlab.models.capabilities``, in its order (tests/test_catalog.py checks it)
CAPABILITY_ORDER = ("Decodes", "Reconstructs", "Encodes", "LikelihoodBound", "ClassConditional", "CaptionConditional",
                    "ReadableCodes", "PredictsCodes", "NamedUnits", "Transforms", "Clusters", "Classifies",
                    "LearnsFromPartialLabels", "CodesToBits", "QualityLadder", "Adversarial")


def capability_table(capabilities: dict[str, tuple[str, ...]]) -> str:
    """A capability per row, a model per column, ``x`` where the model declares it."""
    models = sorted(capabilities)
    first = max(len(c) for c in CAPABILITY_ORDER) + 2
    widths = [max(len(m), 1) + 2 for m in models]
    lines = [" " * first + "".join(m.ljust(w) for m, w in zip(models, widths, strict=True))]
    for cap in CAPABILITY_ORDER:
        marks = "".join(("x" if cap in capabilities[m] else ".").ljust(w) for m, w in zip(models, widths, strict=True))
        lines.append(f"{cap:<{first}}{marks}")
    return "\n".join(line.rstrip() for line in lines)


def listing() -> str:
    """The text of ``genlab list``."""
    lines = ["models:", *(f"  {name:<12} {MODELS.help(name)}" for name in MODELS.names()), "data sets:",
             *(f"  {name}" for name in catalog.DATASET_NAMES), "metrics:",
             *(f"  {name:<12} {METRICS.help(name)}" for name in METRICS.names()),
             "capabilities (genlab.models.capabilities; x: the model declares it):"]
    table = {name: entry.capabilities for name, entry in catalog.MODELS.items()}
    for name in MODELS.loaded():  # a family registered outside the catalog (a plug-in) is shown as it declares
        if name not in table:
            from ..models.capabilities import declared

            table[name] = declared(MODELS.get(name))
    return "\n".join([*lines, *("  " + line for line in capability_table(table).splitlines())])
