"""`facility:`: racks, their power budgets and cooling."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from . import limits
from .common import Location, Name, Strict

Cooling = Literal["air", "rear-door", "liquid"]


class Rack(Strict):
    name: Name
    power_kw: limits.amount(limits.RACK_KW, gt=0)  # usable power budget of the rack
    cooling: Cooling
    height_u: limits.ranged(1, 60) = 42
    pdus: limits.whole(limits.PDUS, ge=0) = 2
    location: Location | None = None


class Facility(Strict):
    pue: float = Field(default=1.5, ge=1.0, le=4.0)
    air_cooling_limit_kw: limits.amount(limits.RACK_KW, gt=0) = 40  # containment-aided air (coolnetpower.com, dcxps.com: ~20-40 kW)
    rear_door_limit_kw: limits.amount(limits.RACK_KW, gt=0) = 60
    racks: list[Rack] = Field(default_factory=list)
