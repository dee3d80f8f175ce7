"""Named latent units: the first units of a model bound to factors of the data (DC-IGN).

The mapping between a factor's value (data units, e.g. radians) and its unit's value is fixed, not fitted:
a factor uniform on its range (lo, hi) maps to [-sqrt 3, sqrt 3] (unit variance), a circular one (a period
> 0, rotation) to u = 2 (theta - lo) / (hi - lo), so that u = 2 is a whole turn. ``traverse``, ``transform``
and the unit metrics read a model through ``unit_names``, ``unit_value``, ``factor_value``, ``unit_range``
and ``unit_period``.
"""

from __future__ import annotations

import math

from ..config import DataInfo
from ..errors import GenlabError

SQRT3 = math.sqrt(3.0)  # a factor uniform on its range maps to [-sqrt 3, sqrt 3]: unit variance


def bound_units(config, info: DataInfo) -> dict[str, tuple[int, float, float, float]]:
    """{unit: (factor column, lo, hi, period)} for each named unit whose factor the data knows."""
    names = info.factor_names or ()
    ranges = info.factor_ranges or ((0.0, 1.0),) * len(names)
    periods = info.factor_periods or (0.0,) * len(names)
    return {u: (names.index(u), *ranges[names.index(u)], periods[names.index(u)]) for u in config.units if u in names}


class NamedUnitsMixin:
    """Mixin for a model whose ``config.units`` name its first latent units and whose ``bound`` is
    ``bound_units(config, data_info)``."""

    @property
    def unit_names(self) -> tuple[str, ...]:
        """Factors bound to the first latent units, in order."""
        return tuple(self.config.units)

    def _unit(self, name: str) -> int:
        if name not in self.config.units:
            raise GenlabError(f"this model has no unit {name!r}; its units are {', '.join(self.unit_names)}")
        return self.config.units.index(name)

    def unit_value(self, name: str, factor_value):
        """Factor value (data units, e.g. radians) -> the unit's value; affine, tensors or floats."""
        self._unit(name)
        if name not in self.bound:
            return factor_value  # no factor range known: the identity
        _, lo, hi, period = self.bound[name]
        t = (factor_value - lo) / (hi - lo)
        return 2 * t if period > 0 else SQRT3 * (2 * t - 1)

    def factor_value(self, name: str, unit):
        """The inverse of ``unit_value``: a unit's value -> the factor value (circular: not wrapped)."""
        self._unit(name)
        if name not in self.bound:
            return unit
        _, lo, hi, period = self.bound[name]
        t = unit / 2 if period > 0 else (unit / SQRT3 + 1) / 2
        return lo + t * (hi - lo)

    def unit_range(self, name: str) -> tuple[float, float]:
        """The unit values of the factor's range (for sweeping it); (-2, 2) when no range is known."""
        if name not in self.bound:
            self._unit(name)
            return (-2.0, 2.0)
        _, lo, hi, _ = self.bound[name]
        return float(self.unit_value(name, lo)), float(self.unit_value(name, hi))

    def unit_period(self, name: str) -> float | None:
        """The change of a circular unit after which every image looks the same (None: not circular)."""
        if name not in self.bound or self.bound[name][3] <= 0:
            return None
        _, lo, hi, period = self.bound[name]
        return 2 * period / (hi - lo)
