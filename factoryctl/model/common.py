"""Shared field types. Names that become hostnames, groups, racks, partitions or file names are
RFC 1123 labels, refused otherwise, so nothing hostile ever reaches a template."""

from __future__ import annotations

import ipaddress
import re
from functools import cache
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from ruamel.yaml import YAML

from .limits import BENCH_BYTES, as_whole

_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_DNS_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")


class Strict(BaseModel):
    """Base for every section: unknown keys are errors; YAML types are taken as written."""

    # allow_inf_nan: .inf and .nan are YAML floats, but no quantity of a site is infinite.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


def _label(v: str) -> str:
    if not _LABEL.match(v):
        raise ValueError(
            f"{v!r} is not a valid name: use 1-63 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit (RFC 1123 label)"
            "\nhint: rename it, e.g. gpu, head-01, r01 (names become hostnames, groups and file names)"
        )
    return v


def _dns_name(v: str) -> str:
    if not _DNS_NAME.match(v):
        raise ValueError(f"{v!r} is not a valid DNS name\nhint: use dot-separated lowercase labels, e.g. fra1.example.internal")
    return v


@cache
def countries() -> dict:
    data = YAML(typ="safe").load((Path(__file__).parent.parent / "data" / "countries.yaml").read_text())
    return {
        "iso": frozenset(data["iso_alpha2"].split()),
        "groups": {k: frozenset(v.split()) for k, v in data["groups"].items()},
        "export_license_required": frozenset(data["export_license_required"].split()),
    }


def _country(v: str) -> str:
    if v not in countries()["iso"]:
        raise ValueError(f"{v!r} is not an ISO 3166-1 alpha-2 country code\nhint: use the two-letter code in capitals, e.g. DE, FR, NL, US")
    return v


def _cidr(v: str) -> str:
    try:
        net = ipaddress.ip_network(v, strict=True)
    except ValueError as e:
        raise ValueError(f"{v!r} is not a network in CIDR form ({e})\nhint: write the network address and prefix, e.g. 10.20.0.0/24") from None
    if net.version != 4:
        raise ValueError(f"{v!r}: only IPv4 networks are supported for now\nhint: use an IPv4 network, e.g. 10.20.0.0/24")
    return v


def _ip(v: str) -> str:
    try:
        ipaddress.IPv4Address(v)
    except ValueError:
        raise ValueError(f"{v!r} is not an IPv4 address\nhint: write four dotted numbers, e.g. 10.20.0.1") from None
    return v


_SIZE = re.compile(r"^(\d{1,16})([KMGT]?)$")


def parse_size(v: str | int) -> int:
    """'8M' -> 8 MiB in bytes, as nccl-tests reads sizes (binary suffixes)."""
    if isinstance(v, int):
        return v
    m = _SIZE.match(v.strip())
    if not m:
        raise ValueError(f"{v!r} is not a size\nhint: a number with an optional K, M, G or T suffix, e.g. 8M or 8G")
    return int(m.group(1)) * 1024 ** "_KMGT".index(m.group(2) or "_")


def _size(v: str | int) -> str | int:
    if parse_size(v) > BENCH_BYTES.most:
        raise ValueError(f"{v!r} is more than {BENCH_BYTES.most:,} {BENCH_BYTES.what} ({BENCH_BYTES.why})\nhint: e.g. 8G")
    return v


Name = Annotated[str, AfterValidator(_label)]
DnsName = Annotated[str, AfterValidator(_dns_name)]
Country = Annotated[str, AfterValidator(_country)]
Cidr = Annotated[str, AfterValidator(_cidr)]
IPv4 = Annotated[str, AfterValidator(_ip)]
Size = Annotated[str | int, BeforeValidator(as_whole), AfterValidator(_size)]
PositiveInt = Annotated[int, Field(ge=1), BeforeValidator(as_whole)]
Fraction = Annotated[float, Field(gt=0, le=1)]
Text = Annotated[str, Field(max_length=2000)]


class Location(Strict):
    """Where a thing physically is; sovereignty rules check the country."""

    country: Country
    city: Text | None = None
    datacenter: Name | None = None
