"""`economics:`: prices and assumptions behind `factoryctl cost` and the report's cost tables.

Every field is optional. A field left out takes the default below, and `cost` prints which
default it used and where the figure comes from (who published the price or figure, or
`assumed`).
Money is plain numbers in `currency`; the sourced money defaults are US dollars, so they apply
only while `currency` is USD (another currency must state its own prices, never a silent
conversion).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, Field

from . import limits
from .common import Fraction, Strict, Token

_CURRENCY = re.compile(r"^[A-Z]{3}$")


def _currency(v: str) -> str:
    if not _CURRENCY.fullmatch(v):
        raise ValueError(f"{v!r} is not an ISO 4217 currency code\nhint: three capital letters, e.g. USD, EUR, GBP")
    return v


Currency = Annotated[str, AfterValidator(_currency)]
Money = limits.amount(limits.MONEY, ge=0)

# Defaults and their sources. cost.py reads these (and names the source beside each figure).
DEFAULT_CURRENCY = "USD"
DEFAULT_AMORTISATION_YEARS = 4.0
DEFAULT_UTILISATION = 0.8
DEFAULT_AVERAGE_POWER_FRACTION = 0.78
DEFAULT_ELECTRICITY_USD_PER_KWH = 0.10
# Catalog GPU name -> capex per GPU in USD for a whole system (server, NICs, share of chassis).
DEFAULT_CAPEX_USD_PER_GPU = {"H100-SXM-80GB": 25_000.0, "GB200": 42_000.0}
# Catalog GPU name -> cloud price per GPU-hour in USD.
DEFAULT_CLOUD_USD_PER_GPU_HOUR = {"H100-SXM-80GB": 2.35}

SOURCES = {
    "amortisation_years": "assumed: 4 years, the usual depreciation period for servers ($25k per GPU over 4 years)",
    "utilisation": "assumed: 80 % sustained (`cost` also reports the break-even utilisation against the cloud price)",
    "average_power_fraction": "DGX H100 at 8 kW average of 10.2 kW max (8 / 10.2 = 0.78): 10.2 kW from the DGX "
                              "SuperPOD H100 RA (RA-11333-001), typical draw 6.5-8.5 kW (supercluster.blog)",
    "electricity_price_per_kwh": "assumed: $0.10/kWh (IEA Electricity Mid-Year Update 2025: US wholesale "
                                 "~$0.048/kWh; Eurostat: EU non-household ~EUR 0.20/kWh)",
    "capex_per_gpu": "DGX H100 ~$199k list => ~$25k per GPU all-in (supercluster.blog); "
                     "GB200 NVL72 ~$3 M per rack => ~$42k per GPU (xatakaon.com)",
    "cloud_price_per_gpu_hour": "H100 rental index $2.35 per GPU-hour, March 2026 "
                                "(SemiAnalysis via compux.net); on-demand ranges $1.99-5.00 (mercatus-ai.com)",
    "support_opex_per_year": "not included unless stated; DGX support runs ~20 %/yr of list price "
                             "(supercluster.blog)",
    "staff_opex_per_year": "not included unless stated",
    "capex_other": "not included unless stated (racks, PDUs, storage, cabling, installation)",
    "capex_per_switch": "not included unless stated; network is 15-25 % of cluster capex (kshirol-dev.github.io)",
    "pue": "facility.pue of factory.yaml (Uptime Institute Global Data Center Survey: 1.55-1.58 global average, "
           "<=1.3 new large sites)",
}


class Economics(Strict):
    """Prices and assumptions for the cost model; every field has a documented default."""

    currency: Currency = DEFAULT_CURRENCY
    # Price of one node by node group name; the key `default` covers groups not named.
    # A GPU group with neither falls back to the sourced price per GPU (USD only).
    capex_per_node: dict[Token, Money] = Field(default_factory=dict)
    # Price of one switch by catalog model (QM9700, SN5600, ...); the key `default` covers others.
    capex_per_switch: dict[Token, Money] = Field(default_factory=dict)
    capex_other: Money = 0.0  # racks, PDUs, cabling, storage, installation: one sum
    amortisation_years: float = Field(default=DEFAULT_AMORTISATION_YEARS, gt=0, le=30)
    utilisation: Fraction = DEFAULT_UTILISATION  # share of GPU-hours sold or used
    electricity_price_per_kwh: Money | None = None  # None: the sourced default (USD only)
    average_power_fraction: Fraction = DEFAULT_AVERAGE_POWER_FRACTION  # average draw / max draw
    support_opex_per_year: Money = 0.0
    staff_opex_per_year: Money = 0.0
    cloud_price_per_gpu_hour: Money | None = None  # None: the sourced default where one exists
