"""What every Terraform engine of a site is started with, shared by plan, apply, destroy and
drift: the provider's credentials under the names it reads, and where providers install from
(the declared mirrors; the public registry only when the site is not air-gapped)."""

from __future__ import annotations

import os

from ..engines.terraform import Terraform, make_engine
from ..resolve.airgap import provider_installation
from ..session import Checked
from ..workspace import Workspace

__all__ = ["provider_env", "provider_installation", "site_engine"]


def provider_env(checked: Checked) -> dict[str, str]:
    """Credentials the provider reads from the environment, under the names it expects."""
    site = checked.factory.site
    if site.provider == "maas" and site.maas and site.maas.api_key_env != "MAAS_API_KEY":
        value = os.environ.get(site.maas.api_key_env)
        if value:
            return {"MAAS_API_KEY": value}
    return {}


def site_engine(checked: Checked, ws: Workspace, binary: str | None, jobs: int | None = None) -> Terraform:
    """The Terraform engine for a site's stacks (embedded, or `binary`); workers start on
    first use."""
    return make_engine(binary, cli_config=ws.cli_config, plugin_cache=ws.plugin_cache, jobs=jobs,
                       env=provider_env(checked), **provider_installation(checked.factory))
