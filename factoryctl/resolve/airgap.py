"""Air-gap: which hosts a string reaches, and whether the site owns them.

Shared by the SOV006 rule (over factory.yaml) and the render check (over every rendered file).
"""

from __future__ import annotations

import ipaddress
import re

from ..errors import FactoryctlError
from ..model import Factory

# Public endpoints an air-gapped site must not reach, by what they serve (registries, model
# hubs, package mirrors, source hosts, time servers). A host matches itself and its subdomains.
PUBLIC_HOSTS: dict[str, str] = {
    **dict.fromkeys(
        ["nvcr.io", "docker.io", "registry-1.docker.io", "index.docker.io", "ghcr.io", "quay.io",
         "registry.k8s.io", "k8s.gcr.io", "gcr.io", "pkg.dev", "public.ecr.aws", "mcr.microsoft.com",
         "registry.gitlab.com", "docker.elastic.co"],
        "public container registry"),
    **dict.fromkeys(
        ["huggingface.co", "hf.co", "ngc.nvidia.com", "api.ngc.nvidia.com", "modelscope.cn",
         "ollama.com", "registry.ollama.ai", "kaggle.com"],
        "public model hub"),
    **dict.fromkeys(
        ["pypi.org", "files.pythonhosted.org", "pypi.python.org", "download.pytorch.org",
         "conda.anaconda.org", "repo.anaconda.com", "deb.debian.org", "security.debian.org",
         "archive.ubuntu.com", "security.ubuntu.com", "ports.ubuntu.com", "ppa.launchpadcontent.net",
         "download.nvidia.com", "developer.download.nvidia.com", "nvidia.github.io",
         "repo.radeon.com", "download.docker.com", "pkgs.k8s.io", "get.helm.sh", "charts.helm.sh",
         "helm.ngc.nvidia.com", "dl.fedoraproject.org", "mirrors.fedoraproject.org",
         "dl.rockylinux.org", "mirror.centos.org", "registry.npmjs.org", "proxy.golang.org",
         "galaxy.ansible.com"],
        "public package mirror"),
    **dict.fromkeys(
        ["github.com", "raw.githubusercontent.com", "objects.githubusercontent.com",
         "codeload.github.com", "gitlab.com", "bitbucket.org"],
        "public source host"),
    **dict.fromkeys(
        ["pool.ntp.org", "time.google.com", "time.cloudflare.com", "time.windows.com",
         "time.apple.com", "time.aws.com", "ntp.ubuntu.com"],
        "public time server"),
}
# Names that never resolve on the public internet (RFC 6761, RFC 8375, ICANN .internal).
PRIVATE_SUFFIXES = (".internal", ".local", ".localhost", ".lan", ".home.arpa", ".intranet", ".corp", ".private")
# Schemes whose authority names a bucket or share, not a host to reach.
_STORE_SCHEMES = {"s3", "gs", "gcs", "az", "abfs", "abfss", "wasb", "wasbs", "file", "nfs", "lustre", "pvc"}
_URL = re.compile(r"\b([a-z][a-z0-9+.-]*)://([^/\s?#'\"]*)", re.IGNORECASE)
_HOSTNAME = re.compile(r"(?<![a-z0-9.@-])((?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,})(?![a-z0-9-])", re.IGNORECASE)
REGISTRY_DEFAULT = "docker.io"  # an image reference without a registry host pulls from Docker Hub


def _under(host: str, domain: str) -> bool:
    domain = domain.lower().strip(".")
    return bool(domain) and (host == domain or host.endswith("." + domain))


def _host_of(ref: str) -> str:
    """Host of a URL, `host[:port][/path]` or an enroot `host#image` reference, lowercased."""
    ref = ref.strip()
    if "://" in ref:
        # Split by hand: urlsplit raises on text such as "http://host]" found in prose.
        netloc = re.split(r"[/?#\s]", ref.split("://", 1)[1], maxsplit=1)[0]
    else:
        netloc = re.split(r"[/#]", ref, maxsplit=1)[0]
    netloc = netloc.rsplit("@", 1)[-1]
    if not netloc.startswith("["):
        netloc = re.split(r"[\]\[)(<>,;'\"]", netloc, maxsplit=1)[0]  # prose around a URL
    if netloc.startswith("["):
        return netloc[1:].split("]")[0].lower()
    return netloc.split(":")[0].lower()


def _public(host: str) -> str | None:
    """What a public host serves, or None when it is not a known public endpoint."""
    return next((kind for h, kind in PUBLIC_HOSTS.items() if _under(host, h)), None)


def _global_ip(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_global
    except ValueError:
        return False


def _internal(host: str, f: Factory) -> bool:
    """Whether a host is one the site owns: a private address, a never-public name, a name
    under site.dns_domain, or a host of the declared registries, model stores or mirrors."""
    try:
        return not ipaddress.ip_address(host).is_global
    except ValueError:
        pass
    if host.endswith(PRIVATE_SUFFIXES) or "." not in host:
        return True
    if f.site.dns_domain and _under(host, f.site.dns_domain):
        return True
    s, m = f.sovereignty, f.site.mirrors
    declared = [*s.registries, *s.model_sources]
    if f.kubernetes.helm_mirror:  # where the Helm binary comes from
        declared.append(f.kubernetes.helm_mirror)
    if m is not None:
        declared += [*m.apt, *m.pypi, *m.containers, *m.helm, *getattr(m, "terraform", [])]
    return any(_under(host, _host_of(d)) for d in declared if _host_of(d))


def _image_registry(ref: str) -> str:
    """Registry host of a container image reference (`nvcr.io/nvidia/x:tag`, enroot
    `nvcr.io#nvidia/x`, or `ubuntu:24.04`, which means Docker Hub)."""
    ref = ref.strip().split("://", 1)[-1]
    if "#" in ref:
        return _host_of(ref.split("#", 1)[0])
    first, sep, _ = ref.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return _host_of(first)
    return REGISTRY_DEFAULT


def external_reference(f: Factory, text: str, image: bool = False, address: bool = False) -> tuple[str, str] | None:
    """(host, what it is) of the first public endpoint a string reaches, or None. `image`:
    the text is a container image reference; `address`: an NTP/DNS server address."""
    if image:
        host = _image_registry(text)
        kind = _public(host) or ("external container registry" if not _internal(host, f) else None)
        if kind and host == REGISTRY_DEFAULT and REGISTRY_DEFAULT not in text:
            kind += "; an image without a registry host pulls from Docker Hub"
        return (host, kind) if kind else None
    if address and _global_ip(text.strip()):
        return text.strip(), "public address"
    for m in _URL.finditer(text):
        scheme, host = m.group(1).lower(), _host_of(m.group(0))
        if scheme == "hf":
            return "huggingface.co", "public model hub"
        if not host:
            continue
        kind = _public(host)
        if kind:
            return host, kind
        if scheme not in _STORE_SCHEMES and not _internal(host, f):
            return host, "external endpoint"
    for m in _HOSTNAME.finditer(text):
        kind = _public(m.group(1).lower())
        if kind:
            return m.group(1).lower(), kind
    return None


# --- Terraform providers ----------------------------------------------------------------------

# The Terraform providers each site provider's rendered stacks require (templates/terraform/
# <provider>/units/__unit__/versions.tf); lab and existing use built-in resources only.
TERRAFORM_PROVIDERS: dict[str, str] = {
    "maas": "canonical/maas",
    "aws": "hashicorp/aws",
    "openstack": "terraform-provider-openstack/openstack",
}


class AirGapError(FactoryctlError):
    """A command would have to reach the internet for a site that says it must not."""


def terraform_mirrors(f: Factory) -> list[str]:
    m = f.site.mirrors
    return list(getattr(m, "terraform", None) or []) if m is not None else []


def provider_installation(f: Factory) -> dict:
    """Where Terraform may install providers from, as engine keyword arguments: the declared
    mirrors, and the public registry only when the site is not air-gapped."""
    return {"provider_mirrors": terraform_mirrors(f), "registry": not f.sovereignty.air_gapped}


def missing_provider_mirror(f: Factory) -> str | None:
    """Why Terraform cannot install this site's providers without the internet, or None."""
    source = TERRAFORM_PROVIDERS.get(f.site.provider)
    if not f.sovereignty.air_gapped or source is None or terraform_mirrors(f):
        return None
    return (f"the site is air-gapped and its {f.site.provider} stacks need the Terraform provider {source}, "
            "but site.mirrors.terraform declares no provider mirror: Terraform would have to reach the "
            "public registry")


MIRROR_HINT = ("add site.mirrors.terraform with a folder filled by `terraform providers mirror DIR` "
               "(e.g. /srv/terraform/providers) or an internal https network mirror")
