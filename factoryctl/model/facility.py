"""`facility:`: racks, their power budgets and cooling."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .common import Location, Name, Strict

Cooling = Literal["air", "rear-door", "liquid"]


class Rack(Strict):
    name: Name
    power_kw: float = Field(gt=0)  # usable power budget of the rack
    cooling: Cooling
    height_u: int = Field(default=42, ge=1, le=60)
    pdus: int = Field(default=2, ge=0)
    location: Location | None = None


class Facility(Strict):
    pue: float = Field(default=1.5, ge=1.0, le=4.0)
    air_cooling_limit_kw: float = Field(default=40, gt=0)  # containment-aided air, refarch.md 1.5
    rear_door_limit_kw: float = Field(default=60, gt=0)
    racks: list[Rack] = Field(default_factory=list)
