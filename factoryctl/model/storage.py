"""`storage:`: filesystems and object stores the nodes mount or reach."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from . import limits
from .common import Location, Name, Strict, Text

StorageType = Literal["lustre", "weka", "vast", "gpfs", "nfs", "ceph", "s3", "beegfs"]


class Encryption(Strict):
    at_rest: bool = False
    in_transit: bool = False
    kms: Text | None = None


class Backup(Strict):
    target: Text
    location: Location
    schedule: Text | None = None
    encrypted: bool = True


class Storage(Strict):
    name: Name
    type: StorageType
    mount: Text | None = None  # absolute path on the clients; none for object stores
    capacity_tb: limits.amount(limits.STORAGE_TB, gt=0)
    read_gbps: limits.amount(limits.STORAGE_GBPS, gt=0) | None = None  # aggregate GB/s
    write_gbps: limits.amount(limits.STORAGE_GBPS, gt=0) | None = None
    servers: list[Text] = Field(default_factory=list)  # lustre MGS NIDs, gpfs/weka servers
    server: Text | None = None  # nfs host:/export
    endpoint: Text | None = None  # s3 URL
    options: list[Text] = Field(default_factory=list)
    clients: list[Name] = Field(default_factory=list)  # node groups; empty = all
    location: Location | None = None
    encryption: Encryption | None = None
    backup: Backup | None = None
