"""`slurm:`: the cluster, partitions, containers and accounting."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator

from .common import EnrootImageRef, HttpUrl, Name, PathWord, Strict, Text, Version

# Slurm time: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS, or UNLIMITED.
_TIME = re.compile(r"^(UNLIMITED|infinite|\d+|\d+:\d{2}|\d+:\d{2}:\d{2}|\d+-\d+|\d+-\d+:\d{2}|\d+-\d+:\d{2}:\d{2})$")


class Partition(Strict):
    name: Name
    nodes: Name | Annotated[list[Name], Field(min_length=1)]  # node group name(s)
    default: bool = False
    max_time: Text = "UNLIMITED"

    @field_validator("max_time")
    @classmethod
    def _time(cls, v: str) -> str:
        if not _TIME.fullmatch(v):
            raise ValueError(f"{v!r} is not a Slurm time\nhint: use D-HH:MM:SS, HH:MM:SS, minutes or UNLIMITED, e.g. \"2-00:00:00\"")
        return v


class Containers(Strict):
    pyxis: bool = False
    enroot: bool = False
    images: list[EnrootImageRef] = Field(default_factory=list)
    pyxis_repo: HttpUrl | None = None  # git mirror of NVIDIA/pyxis (air-gapped sites; SLM016)


class Slurm(Strict):
    enabled: bool = False
    cluster_name: Name = "cluster"
    version: Version | None = None
    state_save_location: PathWord | None = None  # StateSaveLocation; shared storage with HA controllers (SLM014)
    partitions: list[Partition] = Field(default_factory=list)
    containers: Containers | None = None
    accounting: bool = False
    mpi_default: Literal["pmix", "pmi2", "none"] = "pmix"
    topology: Literal["auto", "tree", "block", "none"] = "auto"
