"""`sovereignty:`: where data and machines may be, air-gap, encryption, who may operate."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .common import Country, HttpUrl, Line, Location, ModelSource, Registry, Strict, Token

Requirement = Literal["required", "preferred", "none"]


class EncryptionPolicy(Strict):
    at_rest: Requirement = "none"
    in_transit: Requirement = "none"
    key_custody: Literal["in-jurisdiction-hsm", "customer-kms", "provider-kms", "none"] = "none"
    hsm_location: Location | None = None


class ObservabilitySink(Strict):
    kind: Literal["metrics", "logs", "traces", "support"]
    endpoint: HttpUrl
    location: Location


class Sovereignty(Strict):
    jurisdiction: Token | None = None  # EU, EEA, or a country code
    allowed_countries: list[Country] = Field(default_factory=list)
    air_gapped: bool = False
    registries: list[Registry] = Field(default_factory=list)  # internal container registries
    model_sources: list[ModelSource] = Field(default_factory=list)  # internal model stores (URL prefixes)
    encryption: EncryptionPolicy = Field(default_factory=EncryptionPolicy)
    operator_access: list[Country] = Field(default_factory=list)  # where admins may sit
    operator_parent_country: Country | None = None  # legal home of the operating entity
    export_license_ref: Line | None = None
    observability: list[ObservabilitySink] = Field(default_factory=list)
