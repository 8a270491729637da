"""Rules: sovereignty. Residency of machines, data, keys, telemetry and operators; air-gap;
encryption; export control; operator jurisdiction (GDPR, NIS2, BSI C5, SecNumCloud 3.2, US EAR and CLOUD Act).

"Allowed countries" are `sovereignty.allowed_countries`, else the countries of
`sovereignty.jurisdiction` (EU, EEA or an ISO code); with neither, residency rules are silent.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from ..findings import Severity
from ..model import Factory
from ..model.common import countries
from ..resolve import EAR_3A090_TPP, Site, gpu_tpp, jurisdiction_countries, sovereign_countries
from ..resolve.airgap import MIRROR_HINT, external_reference, missing_provider_mirror
from .base import Issue, Loc, rule


def _strings(value: object, loc: Loc) -> Iterator[tuple[Loc, str]]:
    if isinstance(value, str):
        yield loc, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, (*loc, k))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            yield from _strings(v, (*loc, i))


def _is_image_field(loc: Loc) -> bool:
    return loc[:3] == ("slurm", "containers", "images") or (loc[:1] == ("inference",) and loc[-1:] == ("image",))


def _is_address_field(loc: Loc) -> bool:
    return loc[:2] in (("site", "ntp_servers"), ("site", "dns_servers"))


def _outside(country: str, allowed: frozenset[str]) -> bool:
    return country not in allowed


def _allowed_text(allowed: frozenset[str]) -> str:
    return ", ".join(sorted(allowed))


@rule("SOV001", Severity.error, "site outside the allowed countries")
def site_country(f: Factory, site: Site) -> Iterable[Issue]:
    """`site.country` must be an allowed country (GDPR Ch. V transfers; SecNumCloud and C5
    location of processing)."""
    allowed = sovereign_countries(f)
    if allowed is not None and _outside(f.site.country, allowed):
        yield Issue(
            ("site", "country"),
            f"the site is in {f.site.country}, outside the allowed countries ({_allowed_text(allowed)})",
            "move the site, or add its country to sovereignty.allowed_countries if that is lawful",
        )


@rule("SOV002", Severity.error, "node group or rack outside the allowed countries")
def node_country(f: Factory, site: Site) -> Iterable[Issue]:
    """Every `nodes[].location.country` and `facility.racks[].location.country` must be an
    allowed country (GDPR Ch. V, Art. 44-49; BSI C5 location disclosure)."""
    allowed = sovereign_countries(f)
    if allowed is None:
        return
    for i, ng in enumerate(f.nodes):
        if ng.location is not None and _outside(ng.location.country, allowed):
            yield Issue(
                ("nodes", i, "location", "country"),
                f"node group {ng.group!r} is in {ng.location.country}, outside the allowed countries "
                f"({_allowed_text(allowed)})",
                "place the group in an allowed country",
            )
    for i, r in enumerate(f.facility.racks):
        if r.location is not None and _outside(r.location.country, allowed):
            yield Issue(
                ("facility", "racks", i, "location", "country"),
                f"rack {r.name!r} is in {r.location.country}, outside the allowed countries ({_allowed_text(allowed)})",
                "place the rack in an allowed country",
            )


@rule("SOV003", Severity.error, "storage or backup outside the allowed countries")
def storage_country(f: Factory, site: Site) -> Iterable[Issue]:
    """Every storage system's `location` and its `backup.location` must be an allowed
    country (GDPR Ch. V, Art. 44-49). Storage without a location
    stands at the site."""
    allowed = sovereign_countries(f)
    if allowed is None:
        return
    for i, s in enumerate(f.storage):
        if s.location is not None and _outside(s.location.country, allowed):
            yield Issue(
                ("storage", i, "location", "country"),
                f"storage {s.name!r} is in {s.location.country}, outside the allowed countries ({_allowed_text(allowed)})",
                "keep the data in an allowed country",
            )
        if s.backup is not None and _outside(s.backup.location.country, allowed):
            yield Issue(
                ("storage", i, "backup", "location", "country"),
                f"backups of storage {s.name!r} go to {s.backup.location.country}, outside the allowed "
                f"countries ({_allowed_text(allowed)})",
                "send backups to a target in an allowed country",
            )


@rule("SOV004", Severity.warning, "allowed countries inconsistent with the jurisdiction")
def jurisdiction_consistent(f: Factory, site: Site) -> Iterable[Issue]:
    """`allowed_countries` should lie inside `jurisdiction` (EU and EEA member lists,
    countries.yaml), and the jurisdiction must be EU, EEA or an ISO country code to be checked."""
    s = f.sovereignty
    if not s.jurisdiction:
        return
    covered = jurisdiction_countries(s.jurisdiction)
    if covered is None:
        yield Issue(
            ("sovereignty", "jurisdiction"),
            f"jurisdiction {s.jurisdiction!r} is not EU, EEA or an ISO 3166 country code, so it is not checked",
            "write EU, EEA, or a country code such as DE",
        )
        return
    for j, c in enumerate(s.allowed_countries):
        if c not in covered:
            yield Issue(
                ("sovereignty", "allowed_countries", j),
                f"allowed country {c} lies outside the {s.jurisdiction} jurisdiction",
                f"remove {c}, or widen the jurisdiction if transfers there are lawful (GDPR Ch. V adequacy/SCCs)",
            )


@rule("SOV005", Severity.error, "model source outside the declared model stores")
def model_source_declared(f: Factory, site: Site) -> Iterable[Issue]:
    """Each `inference[].model_source` must start with one of `sovereignty.model_sources`
    (internal, pinned model stores; NIS2 Art. 21(2)(d), supply-chain security).
    An error when air-gapped (an air-gapped site with no model store declared is one too),
    else a warning."""
    s = f.sovereignty
    severity = None if s.air_gapped else Severity.warning
    for i, inf in enumerate(f.inference):
        src = inf.model_source.strip()
        if not s.model_sources:
            if s.air_gapped:
                yield Issue(
                    ("inference", i, "model_source"),
                    f"the site is air-gapped but declares no sovereignty.model_sources, so {src!r} cannot be shown internal",
                    "list the internal model store under sovereignty.model_sources",
                )
            continue
        if not any(src == p.rstrip("/") or src.startswith(p.rstrip("/") + "/") for p in s.model_sources):
            yield Issue(
                ("inference", i, "model_source"),
                f"model_source {src!r} is not under a declared model store ({', '.join(s.model_sources)})",
                "load the model from a sovereignty.model_sources store, or declare the store there",
                severity,
            )


_AIRGAP_HINTS = {
    "public container registry": "pull from an internal registry mirror listed under sovereignty.registries "
                                 "(write the registry host in the image reference)",
    "external container registry": "pull from an internal registry mirror listed under sovereignty.registries",
    "public model hub": "copy the weights into an internal store listed under sovereignty.model_sources",
    "public time server": "use internal NTP servers (a GNSS or PTP grandmaster appliance)",
    "public address": "use addresses of internal servers",
    "default": "point it at an internal mirror and list that under sovereignty.registries, "
               "sovereignty.model_sources or site.mirrors",
}


@rule("SOV006", Severity.error, "air-gapped site reaches a public endpoint")
def airgap_public_endpoints(f: Factory, site: Site) -> Iterable[Issue]:
    """With `air_gapped: true`, no value may point at a public registry, model hub, package
    mirror, source host or time server (nvcr.io, docker.io, huggingface.co, pypi.org,
    deb.debian.org, github.com, pool.ntp.org ...), at a URL host (http, https, oci ...) outside the site's
    registries, model stores, mirrors and dns_domain, or at a public IP; image references
    without a registry pull from docker.io (Docker reference format). Every string of the
    document is scanned except `metadata`."""
    if not f.sovereignty.air_gapped:
        return
    doc = f.model_dump(exclude_unset=True, exclude={"metadata"})
    for loc, text in _strings(doc, ()):
        found = external_reference(f, text, image=_is_image_field(loc), address=_is_address_field(loc))
        if found:
            host, kind = found
            yield Issue(
                loc,
                f"{text!r} reaches {host} ({kind}), but the site is air-gapped",
                _AIRGAP_HINTS.get(kind.split(";")[0], _AIRGAP_HINTS["default"]),
            )


@rule("SOV007", Severity.error, "storage without encryption at rest where it is required")
def encryption_at_rest(f: Factory, site: Site) -> Iterable[Issue]:
    """With `encryption.at_rest: required`, every storage system needs `encryption.at_rest:
    true` (error when declared false, warning when not declared) and backups
    `encrypted: true` (GDPR Art. 32; BSI C5 CRY; NIS2 Art. 21(2)(h)). `preferred` gives info."""
    policy = f.sovereignty.encryption.at_rest
    if policy == "none":
        return
    soft = Severity.info if policy == "preferred" else None
    for i, s in enumerate(f.storage):
        enc = s.encryption
        declared = enc is not None and "at_rest" in enc.model_fields_set
        if declared and not enc.at_rest:
            yield Issue(
                ("storage", i, "encryption", "at_rest"),
                f"storage {s.name!r} is declared unencrypted at rest, but the policy is {policy}",
                "set encryption.at_rest: true (and name the kms)",
                soft,
            )
        elif not declared:
            yield Issue(
                ("storage", i, "encryption") if enc is not None else ("storage", i),
                f"storage {s.name!r} does not declare encryption at rest, which the policy makes {policy}",
                "add encryption: {at_rest: true, kms: <key service>} to the storage entry",
                soft or Severity.warning,
            )
        if s.backup is not None and not s.backup.encrypted:
            yield Issue(
                ("storage", i, "backup", "encrypted"),
                f"backups of storage {s.name!r} are unencrypted, but encryption at rest is {policy}",
                "set backup.encrypted: true",
                soft,
            )


@rule("SOV008", Severity.error, "HSM key custody outside the allowed countries")
def hsm_location(f: Factory, site: Site) -> Iterable[Issue]:
    """`key_custody: in-jurisdiction-hsm` needs `hsm_location` in an allowed country (error
    when outside; warning when missing, since custody cannot be shown) (BSI C5 CRY;
    SecNumCloud 3.2)."""
    enc = f.sovereignty.encryption
    if enc.key_custody != "in-jurisdiction-hsm":
        return
    allowed = sovereign_countries(f)
    if enc.hsm_location is None:
        yield Issue(
            ("sovereignty", "encryption", "key_custody"),
            "key_custody is in-jurisdiction-hsm but no hsm_location says where the HSM stands",
            "add sovereignty.encryption.hsm_location: {country: <ISO code>, city: ...}",
            Severity.warning,
        )
    elif allowed is not None and _outside(enc.hsm_location.country, allowed):
        yield Issue(
            ("sovereignty", "encryption", "hsm_location", "country"),
            f"the HSM holding the keys is in {enc.hsm_location.country}, outside the allowed countries "
            f"({_allowed_text(allowed)})",
            "keep the HSM in an allowed country",
        )


@rule("SOV009", Severity.error, "operator access from outside the allowed countries")
def operator_access(f: Factory, site: Site) -> Iterable[Issue]:
    """Each `operator_access` country (where people with admin access sit) must be allowed
    (SecNumCloud 3.2: EU administration and support)."""
    allowed = sovereign_countries(f)
    if allowed is None:
        return
    for j, c in enumerate(f.sovereignty.operator_access):
        if _outside(c, allowed):
            yield Issue(
                ("sovereignty", "operator_access", j),
                f"operators may work from {c}, outside the allowed countries ({_allowed_text(allowed)})",
                f"remove {c} from operator_access, or restrict remote administration to allowed countries",
            )


@rule("SOV010", Severity.error, "advanced GPUs in an export-licence country without a licence")
def export_licence(f: Factory, site: Site) -> Iterable[Issue]:
    """US EAR: GPUs of ECCN 3A090.a class (total processing performance = dense TOPS x bit
    length >= 4800: A100, H100, H200, B200, GB200, MI300X ...) need an export licence for
    China, Macau and Country Group D:5 destinations (countries.yaml; EAR 15 CFR 744.23, 740 Supp. 1). A GPU
    group there needs `sovereignty.export_license_ref`."""
    if f.sovereignty.export_license_ref:
        return
    restricted = countries()["export_license_required"]
    for i, ng in enumerate(f.nodes):
        g = site.groups.get(ng.group)
        if ng.hardware.gpu is None or g is None or g.country not in restricted:
            continue
        tpp = gpu_tpp(ng.hardware.gpu.model)
        if tpp is not None and tpp >= EAR_3A090_TPP:
            yield Issue(
                ("nodes", i, "hardware", "gpu", "model"),
                f"node group {ng.group!r} puts {ng.hardware.gpu.model} GPUs (TPP {tpp:,.0f}, 3A090 class) in "
                f"{g.country}, where US export rules require a licence",
                "record the licence under sovereignty.export_license_ref, or choose a GPU below the 3A090 threshold",
            )


@rule("SOV011", Severity.error, "observability sink outside the allowed countries")
def telemetry_country(f: Factory, site: Site) -> Iterable[Issue]:
    """Metrics, logs, traces and support bundles carry personal and operational data: each
    `observability[].location.country` must be allowed (GDPR Ch. V;
    NIS2 Art. 21)."""
    allowed = sovereign_countries(f)
    if allowed is None:
        return
    for j, sink in enumerate(f.sovereignty.observability):
        if _outside(sink.location.country, allowed):
            yield Issue(
                ("sovereignty", "observability", j, "location", "country"),
                f"{sink.kind} go to {sink.endpoint!r} in {sink.location.country}, outside the allowed countries "
                f"({_allowed_text(allowed)})",
                "send telemetry to a sink in an allowed country",
            )


@rule("SOV012", Severity.warning, "air-gapped without internal mirrors or time servers")
def airgap_mirrors_ntp(f: Factory, site: Site) -> Iterable[Issue]:
    """An air-gapped site installs packages, images and charts from internal mirrors
    (`site.mirrors`) and keeps time from internal NTP servers (`site.ntp_servers`): Slurm
    (munge), Kerberos, TLS and etcd all fail on skewed clocks."""
    if not f.sovereignty.air_gapped:
        return
    m = f.site.mirrors
    if m is None or not (m.apt or m.pypi or m.containers or m.helm):
        yield Issue(
            ("site", "mirrors"),
            "the site is air-gapped but declares no internal package, container or chart mirrors",
            "add site.mirrors: {apt: [...], pypi: [...], containers: [...], helm: [...]} with internal URLs",
        )
    if not f.site.ntp_servers:
        yield Issue(
            ("site", "ntp_servers"),
            "the site is air-gapped but declares no NTP servers, so clocks have no reachable source",
            "add site.ntp_servers with internal time sources (e.g. a GNSS-backed appliance)",
        )


@rule("SOV013", Severity.warning, "operating entity's parent outside the jurisdiction")
def operator_parent(f: Factory, site: Site) -> Iterable[Issue]:
    """On a sovereign profile, an operator whose parent company sits outside the allowed
    countries can be compelled by its home state (US CLOUD Act reaches EU subsidiaries of US
    parents; SCCs do not neutralise it). SecNumCloud 3.2 requires EU headquarters (ANSSI SecNumCloud referentiel v3.2, cyber.gouv.fr)."""
    parent = f.sovereignty.operator_parent_country
    allowed = sovereign_countries(f)
    if parent and allowed is not None and _outside(parent, allowed):
        yield Issue(
            ("sovereignty", "operator_parent_country"),
            f"the operating entity's parent is in {parent}, outside the allowed countries ({_allowed_text(allowed)}); "
            "its home state's laws may compel access to the data",
            "choose an operator controlled from an allowed country, or document the legal assessment",
        )


@rule("SOV014", Severity.error, "storage without encryption in transit where it is required")
def encryption_in_transit(f: Factory, site: Site) -> Iterable[Issue]:
    """With `encryption.in_transit: required`, a storage system declaring `encryption.in_transit:
    false` is an error; one that does not declare it is reported as info (GDPR Art. 32; BSI C5
    CRY; NIS2 Art. 21(2)(h))."""
    if f.sovereignty.encryption.in_transit != "required":
        return
    for i, s in enumerate(f.storage):
        enc = s.encryption
        if enc is not None and "in_transit" in enc.model_fields_set:
            if not enc.in_transit:
                yield Issue(
                    ("storage", i, "encryption", "in_transit"),
                    f"storage {s.name!r} is declared unencrypted in transit, but the policy requires it",
                    "set encryption.in_transit: true (NFS krb5p, Lustre SSK, TLS for object stores)",
                )
        else:
            yield Issue(
                ("storage", i, "encryption") if enc is not None else ("storage", i),
                f"storage {s.name!r} does not declare encryption in transit, which the policy requires",
                "add encryption.in_transit: true, or state false with the network isolation that justifies it",
                Severity.info,
            )


US_HYPERSCALERS = {"aws": "Amazon", "gcp": "Google", "azure": "Microsoft"}


@rule("SOV015", Severity.warning, "US hyperscaler on a non-US sovereign profile")
def hyperscaler_jurisdiction(f: Factory, site: Site) -> Iterable[Issue]:
    """AWS, Google Cloud and Azure are US-controlled: under the US CLOUD Act their data may be
    compelled wherever it is stored (18 U.S.C. 2713). A site with allowed countries that
    exclude the US warns on these providers."""
    allowed = sovereign_countries(f)
    owner = US_HYPERSCALERS.get(f.site.provider)
    if owner and allowed is not None and "US" not in allowed:
        yield Issue(
            ("site", "provider"),
            f"provider {f.site.provider} is run by {owner}, a US company subject to the CLOUD Act, "
            f"while the data must stay under {_allowed_text(allowed)}",
            "use an operator controlled from an allowed country, or document why the exposure is acceptable",
        )


@rule("SOV016", Severity.error, "air-gapped site without a Terraform provider mirror")
def airgap_terraform_mirror(f: Factory, site: Site) -> Iterable[Issue]:
    """An air-gapped site whose Terraform stacks need a provider (maas, aws, openstack) must
    declare where it comes from: `site.mirrors.terraform`, a filesystem mirror folder or an
    https network mirror. factoryctl then writes a Terraform CLI config that installs from the
    mirrors only and excludes the public registry, so `plan` never reaches out; without a
    mirror, `plan` refuses with this message instead of trying (Terraform CLI
    config, provider_installation)."""
    problem = missing_provider_mirror(f)
    if problem:
        loc = ("site", "mirrors") if f.site.mirrors is not None else ("sovereignty", "air_gapped")
        yield Issue(loc, problem, MIRROR_HINT)
