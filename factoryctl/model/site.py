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


# An OpenSSH public key line (type, base64 body, optional comment): it lands in an HCL string
# and a cloud-config list, so nothing but these characters.
_SSH_KEY = re.compile(r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh.com) "
                      r"[A-Za-z0-9+/]{16,8192}={0,3}( [A-Za-z0-9._@+-]{1,100})?$")
_AWS_ID = {"vpc": re.compile(r"^vpc-[0-9a-f]{8,17}$"), "subnet": re.compile(r"^subnet-[0-9a-f]{8,17}$"),
           "cr": re.compile(r"^cr-[0-9a-f]{8,17}$")}


def _ssh_key(v: str) -> str:
    if not _SSH_KEY.match(v):
        raise ValueError("not an OpenSSH public key line\nhint: paste the .pub file's one line, e.g. "
                         "ssh-ed25519 AAAAC3Nza... admin@example")
    return v


def _aws_id(kind: str, example: str):
    def check(v: str) -> str:
        if not _AWS_ID[kind].match(v):
            raise ValueError(f"{v!r} is not an AWS {kind} id\nhint: e.g. {example}")
        return v
    return AfterValidator(check)


class AwsSettings(Strict):
    region: Token
    availability_zone: Token | None = None  # AWS001: required (placement group, subnet, reservations)
    instance_type: Token = "p5.48xlarge"
    cpu_instance_type: Token = "m7i.8xlarge"  # controllers, login, services
    ami: Token | None = None
    efa: bool = True
    vpc_id: Annotated[str, _aws_id("vpc", "vpc-0a1b2c3d4e5f60718")] | None = None
    subnet_id: Annotated[str, _aws_id("subnet", "subnet-0a1b2c3d4e5f60718")] | None = None
    key_name: Token | None = None  # an existing EC2 key pair
    public_key: Annotated[str, AfterValidator(_ssh_key)] | None = None  # or the admin's key, imported
    admin_cidrs: list[Cidr] = Field(default_factory=list, max_length=16)  # SSH from here
    capacity_reservation_id: Annotated[str, _aws_id("cr", "cr-0a1b2c3d4e5f60718")] | None = None
    capacity_block: bool = False  # the reservation is an EC2 Capacity Block for ML
    placement_group: bool = True  # GPU instances in one cluster placement group


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
