"""`metadata:` and `site:`: what the factory is called and where it stands."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from . import limits
from .common import (
    Cidr,
    Country,
    DnsName,
    EnvName,
    HelmRepo,
    Host,
    HttpUrl,
    IPv4,
    Line,
    Name,
    Registry,
    Strict,
    Text,
    Token,
    Version,
)

Provider = Literal["existing", "lab", "maas", "aws", "gcp", "azure", "openstack"]


class BlueprintRef(Strict):
    name: Name
    version: Version


class Metadata(Strict):
    name: Name
    description: Text | None = None
    owner: Text | None = None  # prose: reaches only Terraform's tags, HCL-escaped
    labels: dict[Name, Text] = Field(default_factory=dict)
    blueprint: BlueprintRef | None = None  # recorded by `blueprint fork`


# A Terraform provider mirror: an https base URL (a network mirror, HashiCorp's provider
# network mirror protocol) or an absolute folder (a filesystem mirror, as `terraform providers
# mirror DIR` writes it). The value lands in a quoted HCL string of the CLI config, so quotes,
# whitespace, control characters and template sequences are refused here.
_TF_MIRROR_URL = re.compile(r"^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~%+@/-]*)?$")
_TF_MIRROR_DIR = re.compile(r"^/[A-Za-z0-9._~+@/-]*$")


def _terraform_mirror(v: str) -> str:
    if not (_TF_MIRROR_URL.match(v) or _TF_MIRROR_DIR.match(v)) or "/../" in v + "/":
        raise ValueError(f"{v!r} is not a Terraform provider mirror: give an https:// URL or an absolute folder "
                         "(letters, digits and . _ ~ + @ / - only)"
                         "\nhint: e.g. https://mirror.fra1.example.internal/terraform/providers/ or "
                         "/srv/terraform/providers")
    return v


TerraformMirror = Annotated[str, AfterValidator(_terraform_mirror)]


class Mirrors(Strict):
    """Internal sources an air-gapped site installs from (URLs or host names)."""

    apt: list[HttpUrl] = Field(default_factory=list)
    pypi: list[HttpUrl] = Field(default_factory=list)
    containers: list[Registry] = Field(default_factory=list)  # pulled as <registry>/<image>
    helm: list[HelmRepo] = Field(default_factory=list)
    terraform: list[TerraformMirror] = Field(default_factory=list)  # provider mirrors, tried in order


_IFNAME = re.compile(r"^[a-z][a-z0-9_]{0,14}$")


def _bridge(v: str) -> str:
    # A Linux interface name (15 bytes at most). No '-': the lab names each host's network
    # namespace <bridge>-<host>, which must split back unambiguously.
    if not _IFNAME.fullmatch(v):
        raise ValueError(f"{v!r} is not a usable bridge name: use 1-15 lowercase letters, digits or '_', "
                         "starting with a letter (no '-')\nhint: e.g. fctlbr0")
    return v


class LabSettings(Strict):
    """Local test hosts (network namespaces) for `provider: lab`."""

    subnet: Cidr = "10.77.0.0/24"
    bridge: Annotated[str, AfterValidator(_bridge)] = "fctlbr0"


class MaasSettings(Strict):
    url: HttpUrl
    api_key_env: EnvName = "MAAS_API_KEY"  # the key itself never lands in factory.yaml
    zone: Name | None = None


class AwsSettings(Strict):
    region: Token
    availability_zone: Token | None = None
    instance_type: Token = "p5.48xlarge"
    ami: Token | None = None
    efa: bool = True


class OpenStackSettings(Strict):
    cloud: Token  # entry in clouds.yaml; credentials stay there
    flavor: Token | None = None
    image: Line | None = None  # an id or a name; OpenStack image names may hold spaces


class Site(Strict):
    provider: Provider
    country: Country
    region: Token | None = None
    datacenter: Name | None = None
    dns_domain: DnsName | None = None
    power_capacity_kw: limits.amount(limits.SITE_KW, gt=0) | None = None  # facility feed for IT + cooling
    tier: Literal[1, 2, 3, 4] | None = None  # Uptime / EN 50600 class
    ntp_servers: list[Host] = Field(default_factory=list)
    dns_servers: list[IPv4] = Field(default_factory=list)
    mirrors: Mirrors | None = None
    lab: LabSettings | None = None
    maas: MaasSettings | None = None
    aws: AwsSettings | None = None
    openstack: OpenStackSettings | None = None
