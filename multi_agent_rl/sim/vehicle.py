"""Vehicle parameters of the single-track model (CommonRoad, as used by the F1TENTH gym).

Two presets follow design.md §2: ``F1TENTH`` (the 1:10 race car) and ``LIMO`` (the small indoor robot of the
gaplock experiments: same tyres and mass, slower and with a wider steering range).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from types import MappingProxyType
from typing import NamedTuple


class VehicleArgs(NamedTuple):
    """The parameters as a flat tuple of floats, the form the numba kernels take."""

    mu: float
    C_Sf: float
    C_Sr: float
    lf: float
    lr: float
    h: float
    m: float
    I: float
    s_min: float
    s_max: float
    sv_min: float
    sv_max: float
    v_switch: float
    a_max: float
    v_min: float
    v_max: float
    length: float
    width: float


@dataclass(frozen=True)
class VehicleParams:
    """Physical parameters of one car. SI units throughout.

    Attributes:
        mu: tyre-road friction coefficient (-).
        C_Sf, C_Sr: cornering stiffness coefficients of the front and rear axle (1/rad).
        lf, lr: distance from the centre of gravity to the front and rear axle (m).
        h: height of the centre of gravity (m).
        m: mass (kg).
        I: yaw moment of inertia (kg m^2).
        s_min, s_max: steering angle limits (rad).
        sv_min, sv_max: steering velocity limits (rad/s).
        v_switch: speed above which the positive acceleration is power-limited (m/s).
        a_max: maximum acceleration magnitude (m/s^2).
        v_min, v_max: speed limits (m/s); v_min is negative (reverse).
        length, width: footprint rectangle, centred on the reference point (m).
    """

    mu: float = 1.0489
    C_Sf: float = 4.718
    C_Sr: float = 5.4562
    lf: float = 0.15875
    lr: float = 0.17145
    h: float = 0.074
    m: float = 3.74
    I: float = 0.04712
    s_min: float = -0.4189
    s_max: float = 0.4189
    sv_min: float = -3.2
    sv_max: float = 3.2
    v_switch: float = 7.319
    a_max: float = 9.51
    v_min: float = -5.0
    v_max: float = 20.0
    length: float = 0.58
    width: float = 0.31

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"vehicle parameter '{f.name}' must be a finite number, got {value!r}")
        positive = ("mu", "C_Sf", "C_Sr", "lf", "lr", "m", "I", "sv_max", "v_switch", "a_max", "v_max",
                    "length", "width", "s_max")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"vehicle parameter '{name}' must be > 0, got {getattr(self, name)}")
        if self.h < 0:
            raise ValueError(f"vehicle parameter 'h' must be >= 0, got {self.h}")
        for name in ("s_min", "sv_min", "v_min"):
            if getattr(self, name) >= 0:
                raise ValueError(f"vehicle parameter '{name}' must be < 0, got {getattr(self, name)}")

    @property
    def wheelbase(self) -> float:
        """Distance between the axles (m)."""
        return self.lf + self.lr

    def with_overrides(self, **changes: float) -> VehicleParams:
        """A copy with some parameters changed (the preset stays untouched)."""
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            allowed = ", ".join(f.name for f in fields(self))
            raise ValueError(f"unknown vehicle parameter(s) {sorted(unknown)}; allowed: {allowed}")
        return replace(self, **changes)

    def as_args(self) -> VehicleArgs:
        """The parameters as the flat tuple the numba kernels take."""
        return VehicleArgs(**{k: float(v) for k, v in asdict(self).items()})


F1TENTH = VehicleParams()
"""The F1TENTH race car (design.md §2)."""

LIMO = VehicleParams(
    s_min=-0.46,
    s_max=0.46,
    v_min=-1.0,
    v_max=1.0,
    a_max=2.0,
    v_switch=0.8,
    length=0.32,
    width=0.225,
)
"""The AgileX LIMO robot of the gaplock experiments: F1TENTH tyres and mass, slower, wider steering."""

PRESETS = MappingProxyType({"f1tenth": F1TENTH, "limo": LIMO})
"""Read-only name -> preset table."""
