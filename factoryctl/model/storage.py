"""`storage:`: filesystems and object stores the nodes mount or reach."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from . import limits
from .common import (
    ExportWord,
    Host,
    HttpUrl,
    Line,
    Location,
    MountOption,
    Name,
    PathWord,
    StorageServer,
    Strict,
    Token,
    UrlWord,
)

StorageType = Literal["lustre", "weka", "vast", "gpfs", "nfs", "ceph", "s3", "beegfs"]


class Encryption(Strict):
    at_rest: bool = False
    in_transit: bool = False
    kms: Host | HttpUrl | None = None  # KMS/HSM endpoint


class Backup(Strict):
    target: Token  # a URL (s3://...) or the name of a backup system; read by rules only
    location: Location
    schedule: Line | None = None  # daily, weekly or a cron line; read by people and rules only
    encrypted: bool = True


class Storage(Strict):
    name: Name
    type: StorageType
    mount: PathWord | None = None  # STO004: absolute, no '..'  # absolute path on the clients; none for object stores
    capacity_tb: limits.amount(limits.STORAGE_TB, gt=0)
    read_gbps: limits.amount(limits.STORAGE_GBPS, gt=0) | None = None  # aggregate GB/s
    write_gbps: limits.amount(limits.STORAGE_GBPS, gt=0) | None = None
    servers: list[StorageServer] = Field(default_factory=list)  # lustre MGS NIDs, gpfs/weka servers
    server: ExportWord | None = None  # STO003: host:/export  # nfs host:/export
    endpoint: UrlWord | None = None  # STO003: an http(s) URL  # s3 URL
    options: list[MountOption] = Field(default_factory=list)
    clients: list[Name] = Field(default_factory=list)  # node groups; empty = all
    rdma: bool | None = None  # RDMA transport; default: the storage fabric's (lustre: its NIDs' network)
    location: Location | None = None
    encryption: Encryption | None = None
    backup: Backup | None = None
