"""Store keys. Every key carries the run's full 128-bit id and, for a step's data,
the step, phase, layer and unit: an output of one step can never be read as
another's, and a run's keys can be deleted by name without touching anything else.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    run: str  # uuid4 hex: 128 bits

    @functools.cached_property  # every key starts with it: made once
    def prefix(self) -> str:
        return f"snn:{self.run}"

    @property
    def stop(self) -> str:
        return f"{self.prefix}:stop"

    @property
    def ledger(self) -> str:
        return f"{self.prefix}:ledger"

    def data(self, name: str) -> str:
        return f"{self.prefix}:data:{name}"

    def batch(self, step: int, name: str) -> str:
        return f"{self.prefix}:{step}:batch:{name}"

    def param(self, step: int, layer: int, unit: int) -> str:
        """Parameters of a unit as they are at the start of ``step``."""
        return f"{self.prefix}:{step}:param:{layer}:{unit}"

    def state(self, step: int, layer: int, unit: int, name: str) -> str:
        return f"{self.prefix}:{step}:state:{layer}:{unit}:{name}"

    def out(self, step: int, phase: str, layer: int, unit: int, name: str) -> str:
        return f"{self.prefix}:{step}:{phase}:{layer}:{unit}:{name}"

    def done(self, step: int, phase: str, layer: int, unit: int) -> str:
        """Written last, set-if-absent: its presence means every output of the unit is there."""
        return self.out(step, phase, layer, unit, "done")
