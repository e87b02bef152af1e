"""Per-metric linear calibration from the sensor's config, applied after unit conversion.

A technician checks a station against a reference (a staff gauge, a reference analyser) and writes
``scale`` and ``offset`` so that ``si = raw_si * scale + offset``; doing it after conversion means the
numbers are in the contract's unit (m, ug/m3) whatever the vendor sends.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Calibration(BaseModel):
    """``si = raw_si * scale + offset`` for one metric, in the metric's contract unit."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scale: float = Field(default=1.0, allow_inf_nan=False, description="Multiplies the converted value (1 = as is).")
    offset: float = Field(
        default=0.0, allow_inf_nan=False, description="Added after scaling, in the metric's unit (m, ug/m3, degC...)."
    )

    @field_validator("scale")
    @classmethod
    def _not_zero(cls, value: float) -> float:
        if value == 0 or math.isclose(value, 0.0, abs_tol=1e-12):
            raise ValueError("scale 0 would turn every reading into the offset")
        return value

    @property
    def is_identity(self) -> bool:
        """True when it changes nothing (skipped, so values keep their exact float)."""
        return self.scale == 1.0 and self.offset == 0.0

    def apply(self, value: float) -> float:
        """The calibrated value."""
        return value if self.is_identity else value * self.scale + self.offset
