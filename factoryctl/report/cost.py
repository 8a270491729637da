"""Cost and power-to-token arithmetic: every figure a small record with its inputs and formula.

Pure: a resolved Site, its BOM and the measured throughputs in; Figures out. Inputs come from
factory.yaml (`economics:`, `facility.pue`, the resolved power), from the documented defaults
in model/economics.py (each with its source), or from a benchmark result in the workspace.
A figure that needs an input nobody gave has value None and says which input is missing;
nothing is invented (tokens/s in particular is measured or stated, never assumed).
A figure that adds up costs and leaves some out (no node prices, support not stated, switch
power not in the catalog) is a lower bound and says so in `basis` and `left_out`, so that the
report's summary card and `cost` never show a power-only number as the owned cost (issue 17).

Formulas:
  energy per year   = Σ node max kW x average_power_fraction x PUE x 8,760 h
  capex per year    = (node capex + switch capex + other capex) / amortisation_years
  owned cost per GPU-hour = (capex per year + energy cost + support + staff) / (GPUs x 8,760 x utilisation)
  break-even utilisation  = annual owned cost / (GPUs x 8,760 x cloud price per GPU-hour)
  cost per 1M tokens      = owned cost per GPU-hour x replica GPUs / (tokens/s x 3,600) x 1e6
  energy per 1M tokens    = replica GPUs x average kW per GPU at the meter / (tokens/s x 3,600) x 1e6
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ..model.economics import (
    DEFAULT_CAPEX_USD_PER_GPU,
    DEFAULT_CLOUD_USD_PER_GPU_HOUR,
    DEFAULT_ELECTRICITY_USD_PER_KWH,
    SOURCES,
    Economics,
)
from ..resolve import Site
from ..verify.results import Measured
from .bom import Bom

HOURS_PER_YEAR = 8760


@dataclass(frozen=True)
class Input:
    name: str
    value: Any
    unit: str
    origin: str  # factory.yaml path, "default: <source>", "resolved", or "measured: <file>"


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    value: float | None
    unit: str
    formula: str
    inputs: tuple[Input, ...] = ()
    note: str = ""  # why a value is missing, or what it leaves out
    # What a sum covers: "" (not a sum of costs), "complete", "power only", "lower bound",
    # "nodes only" (power without switches), "nothing priced"; left_out: "<part>: <why>" each.
    basis: str = ""
    left_out: tuple[str, ...] = ()
    # Per-token figures: where the tokens/s they divide by comes from, in one line ("measured:
    # run <id>, <date>, concurrency <c>, <tokens/s> ..." or "stated assumption: ..."); "" elsewhere.
    throughput_from: str = ""

    @property
    def complete(self) -> bool:
        return not self.left_out

    def caveat(self) -> str:
        """One short line for a headline: "" when complete, else what the figure leaves out."""
        if not self.left_out:
            return ""
        parts = [x.split(":", 1)[0] for x in self.left_out]
        if self.basis == "power only" and "node capex" in parts:
            return "power only: no node prices stated"
        return f"{self.basis}: leaves out {', '.join(parts)}"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["left_out"] = list(self.left_out)
        d["complete"] = self.complete
        return d


@dataclass
class Deployment:
    name: str
    model: str
    replica_gpus: int
    replicas: int
    tokens_per_second: Figure
    cost_per_million_tokens: Figure
    energy_per_million_tokens: Figure
    source: str  # measured | stated | missing
    run: Measured | None = None  # the measurement behind tokens/s, when source is "measured"

    def to_dict(self) -> dict:
        return {"name": self.name, "model": self.model, "replica_gpus": self.replica_gpus,
                "replicas": self.replicas, "source": self.source,
                "run": self.run.to_dict() if self.run else None,
                "tokens_per_second": self.tokens_per_second.to_dict(),
                "cost_per_million_tokens": self.cost_per_million_tokens.to_dict(),
                "energy_per_million_tokens": self.energy_per_million_tokens.to_dict()}


@dataclass
class Cost:
    name: str
    currency: str
    power: list[Figure] = field(default_factory=list)
    capex: list[Figure] = field(default_factory=list)
    opex: list[Figure] = field(default_factory=list)
    unit_cost: list[Figure] = field(default_factory=list)
    inference: list[Deployment] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # run records that could not be read

    def figures(self) -> list[Figure]:
        return [*self.power, *self.capex, *self.opex, *self.unit_cost]

    def get(self, key: str) -> Figure:
        for f in self.figures():
            if f.key == key:
                return f
        raise KeyError(key)

    def to_dict(self) -> dict:
        return {"name": self.name, "currency": self.currency,
                "power": [f.to_dict() for f in self.power], "capex": [f.to_dict() for f in self.capex],
                "opex": [f.to_dict() for f in self.opex], "unit_cost": [f.to_dict() for f in self.unit_cost],
                "inference": [d.to_dict() for d in self.inference], "problems": list(self.problems)}


def _default(key: str) -> str:
    return f"default: {SOURCES[key]}"


def _yaml(field_name: str) -> str:
    return f"factory.yaml economics.{field_name}"


def _div(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


# --- the pieces, each a pure function of plain numbers (tested by hand-computed values) --------


def energy_mwh_per_year(it_kw_max: float, average_power_fraction: float, pue: float) -> float:
    return it_kw_max * average_power_fraction * pue * HOURS_PER_YEAR / 1000


def capex_per_gpu_hour(capex_per_gpu: float, years: float, utilisation: float) -> float:
    return capex_per_gpu / (years * HOURS_PER_YEAR * utilisation)


def break_even_utilisation(annual_cost: float, gpus: int, cloud_price: float) -> float | None:
    return _div(annual_cost, gpus * HOURS_PER_YEAR * cloud_price)


def cost_per_million_tokens(gpu_hour_cost: float, gpus: int, tokens_per_second: float) -> float:
    return gpu_hour_cost * gpus / (tokens_per_second * 3600) * 1e6


# --- the site --------------------------------------------------------------------------------


class _Ctx:
    def __init__(self, site: Site, econ: Economics | None):
        self.site = site
        self.stated = econ is not None
        self.e = econ or Economics()
        self.usd = self.e.currency == "USD"
        self.cur = self.e.currency

    def origin(self, name: str, default_key: str | None = None) -> str:
        if self.stated and name in self.e.model_fields_set:
            return _yaml(name)
        return _default(default_key or name)


def _power(c: _Ctx) -> tuple[list[Figure], float | None]:
    s, e = c.site, c.e
    pue = s.factory.facility.pue
    it_max = float(s.totals["it_kw"])
    estimated = [g.name for g in s.groups.values() if g.power_estimated]
    it_in = Input("IT kW (sum of node max kW)", it_max, "kW",
                  "resolved from nodes[].hardware.power_kw" + (f" (estimated for {', '.join(estimated)})" if estimated else ""))
    pue_in = Input("PUE", pue, "", "factory.yaml facility.pue")
    frac_in = Input("average power fraction", e.average_power_fraction, "", c.origin("average_power_fraction"))
    avg_it = it_max * e.average_power_fraction
    mwh = energy_mwh_per_year(it_max, e.average_power_fraction, pue)
    price, price_origin = e.electricity_price_per_kwh, c.origin("electricity_price_per_kwh")
    if price is None and c.usd:
        price = DEFAULT_ELECTRICITY_USD_PER_KWH
    price_in = Input("electricity price", price, f"{c.cur}/kWh", price_origin)
    switches_note = "switch power is not included (the catalog has no switch power figures)"
    out = [
        Figure("it_kw", "IT power (max)", it_max, "kW", "sum of node max kW", (it_in,), switches_note),
        Figure("facility_kw", "Facility power (max)", round(it_max * pue, 3), "kW", "IT kW x PUE", (it_in, pue_in)),
        Figure("it_kw_average", "IT power (average)", round(avg_it, 3), "kW", "IT kW x average power fraction",
               (it_in, frac_in)),
        Figure("energy_mwh_per_year", "Energy per year", round(mwh, 3), "MWh/yr",
               "IT kW x average power fraction x PUE x 8,760 h / 1,000", (it_in, frac_in, pue_in)),
    ]
    energy_cost = mwh * 1000 * price if price is not None else None
    out.append(Figure("energy_cost_per_year", "Energy cost per year", _r(energy_cost), f"{c.cur}/yr",
                      "energy MWh/yr x 1,000 x price per kWh",
                      (Input("energy", round(mwh, 3), "MWh/yr", "above"), price_in),
                      "" if price is not None else "set economics.electricity_price_per_kwh (the sourced default is USD)"))
    return out, energy_cost


def _node_capex(c: _Ctx) -> tuple[float | None, list[Input], list[str]]:
    e, total, inputs, missing = c.e, 0.0, [], []
    for ng in c.site.factory.nodes:
        g = c.site.groups[ng.group]
        if ng.group in e.capex_per_node:
            price, origin = e.capex_per_node[ng.group], _yaml(f"capex_per_node.{ng.group}")
        elif "default" in e.capex_per_node:
            price, origin = e.capex_per_node["default"], _yaml("capex_per_node.default")
        elif c.usd and g.gpu_model in DEFAULT_CAPEX_USD_PER_GPU:
            per_gpu = DEFAULT_CAPEX_USD_PER_GPU[g.gpu_model]
            price, origin = per_gpu * g.gpus_per_node, f"default: {per_gpu:,.0f} USD per {g.gpu_model} x {g.gpus_per_node} ({SOURCES['capex_per_gpu']})"
        else:
            missing.append(ng.group)
            continue
        total += price * ng.count
        inputs.append(Input(f"node price ({ng.group}) x {ng.count}", price, c.cur, origin))
    return total, inputs, missing


def _switch_capex(c: _Ctx, bom: Bom) -> tuple[float, list[Input], list[str]]:
    prices = c.e.capex_per_switch
    total, inputs, missing = 0.0, [], []
    for model, n in sorted(bom.switches().items()):
        if model in prices:
            price, origin = prices[model], _yaml(f"capex_per_switch.{model}")
        elif "default" in prices:
            price, origin = prices["default"], _yaml("capex_per_switch.default")
        else:
            missing.append(f"{model} x {n}")
            continue
        total += price * n
        inputs.append(Input(f"switch price ({model}) x {n}", price, c.cur, origin))
    return total, inputs, missing


def _capex(c: _Ctx, bom: Bom) -> tuple[list[Figure], float | None]:
    e = c.e
    nodes, node_in, node_missing = _node_capex(c)
    sw, sw_in, sw_missing = _switch_capex(c, bom)
    other_in = Input("other capex", e.capex_other, c.cur, c.origin("capex_other"))
    notes = []
    if node_missing:
        notes.append(f"nodes not costed (no price stated and no sourced default): {', '.join(node_missing)}; "
                     "set economics.capex_per_node.<group>")
    sw_note = (f"switches not costed: {', '.join(sw_missing)} ({SOURCES['capex_per_switch']})" if sw_missing else "")
    total = nodes + sw + e.capex_other
    gaps = [*([f"nodes {', '.join(node_missing)}"] if node_missing else []),
            *([f"switches {', '.join(sw_missing)}"] if sw_missing else [])]
    years_in = Input("amortisation", e.amortisation_years, "years", c.origin("amortisation_years"))
    out = [
        Figure("capex_nodes", "Capex: nodes", _r(nodes), c.cur, "sum of node price x count", tuple(node_in),
               "; ".join(notes)),
        Figure("capex_switches", "Capex: switches", _r(sw), c.cur, "sum of switch price x BOM count", tuple(sw_in), sw_note),
        Figure("capex_other", "Capex: other", _r(e.capex_other), c.cur, "as stated", (other_in,)),
        Figure("capex_total", "Capex: total", _r(total), c.cur, "nodes + switches + other",
               (Input("nodes", _r(nodes), c.cur, "above"), Input("switches", _r(sw), c.cur, "above"), other_in),
               "incomplete, not priced: " + "; ".join(gaps) if gaps else ""),
        Figure("capex_per_year", "Capex per year (straight-line)", _r(total / e.amortisation_years), f"{c.cur}/yr",
               "capex total / amortisation years", (Input("capex total", _r(total), c.cur, "above"), years_in)),
    ]
    return out, total


def _opex(c: _Ctx, energy_cost: float | None) -> tuple[list[Figure], float]:
    e = c.e
    support = Input("support", e.support_opex_per_year, f"{c.cur}/yr", c.origin("support_opex_per_year"))
    staff = Input("staff", e.staff_opex_per_year, f"{c.cur}/yr", c.origin("staff_opex_per_year"))
    energy = Input("energy cost", _r(energy_cost), f"{c.cur}/yr", "above")
    total = (energy_cost or 0.0) + e.support_opex_per_year + e.staff_opex_per_year
    out = [
        Figure("opex_support", "Opex: support", e.support_opex_per_year, f"{c.cur}/yr", "as stated", (support,)),
        Figure("opex_staff", "Opex: staff", e.staff_opex_per_year, f"{c.cur}/yr", "as stated", (staff,)),
        Figure("opex_total", "Opex per year", _r(total), f"{c.cur}/yr", "energy + support + staff",
               (energy, support, staff), "" if energy_cost is not None else "energy not priced"),
    ]
    return out, total


def _gpu_model(site: Site) -> str | None:
    models = {g.gpu_model for g in site.groups.values() if g.gpu_model and g.gpus_per_node}
    return models.pop() if len(models) == 1 else None


def _unit_cost(c: _Ctx, capex_year: float, energy_cost: float | None, opex: float,
               gaps: str) -> tuple[list[Figure], float | None]:
    e, site = c.e, c.site
    gpus = int(site.totals["gpus"])
    if not gpus:
        return [Figure("gpu_hour_cost", "Owned cost per GPU-hour", None, f"{c.cur}/GPU-h", "", (),
                       "the site has no GPUs")], None
    util = Input("utilisation", e.utilisation, "", c.origin("utilisation"))
    gpus_in = Input("GPUs", gpus, "", "resolved")
    hours = gpus * HOURS_PER_YEAR * e.utilisation
    hours_in = Input("used GPU-hours per year", round(hours, 1), "GPU-h/yr", "GPUs x 8,760 x utilisation")
    annual = capex_year + opex
    per_hour = annual / hours
    out = [
        Figure("gpu_hours_per_year", "Used GPU-hours per year", round(hours, 1), "GPU-h/yr", "GPUs x 8,760 h x utilisation",
               (gpus_in, util)),
        Figure("gpu_hour_capex", "Capex per GPU-hour", _r(capex_year / hours, 4), f"{c.cur}/GPU-h",
               "capex per year / used GPU-hours", (Input("capex per year", _r(capex_year), f"{c.cur}/yr", "above"), hours_in)),
        Figure("gpu_hour_power", "Power per GPU-hour", _r(energy_cost / hours, 4) if energy_cost is not None else None,
               f"{c.cur}/GPU-h", "energy cost per year / used GPU-hours",
               (Input("energy cost", _r(energy_cost), f"{c.cur}/yr", "above"), hours_in),
               "" if energy_cost is not None else "energy not priced"),
        Figure("gpu_hour_opex", "Support and staff per GPU-hour",
               _r((e.support_opex_per_year + e.staff_opex_per_year) / hours, 4), f"{c.cur}/GPU-h",
               "(support + staff) / used GPU-hours", (hours_in,)),
        Figure("gpu_hour_cost", "Owned cost per GPU-hour", _r(per_hour, 4), f"{c.cur}/GPU-h",
               "(capex per year + opex per year) / (GPUs x 8,760 x utilisation)",
               (Input("capex per year", _r(capex_year), f"{c.cur}/yr", "above"),
                Input("opex per year", _r(opex), f"{c.cur}/yr", "above"), gpus_in, util), gaps),
    ]
    cloud, origin = e.cloud_price_per_gpu_hour, c.origin("cloud_price_per_gpu_hour")
    model = _gpu_model(site)
    if cloud is None and c.usd and model in DEFAULT_CLOUD_USD_PER_GPU_HOUR:
        cloud = DEFAULT_CLOUD_USD_PER_GPU_HOUR[model]
    cloud_in = Input("cloud price", cloud, f"{c.cur}/GPU-h", origin)
    if cloud is None:
        out.append(Figure("break_even_utilisation", "Break-even utilisation vs cloud", None, "", "", (cloud_in,),
                          "set economics.cloud_price_per_gpu_hour (a sourced default exists only for H100 SXM, in USD)"))
    else:
        be = break_even_utilisation(annual, gpus, cloud)
        out.append(Figure("cloud_price_per_gpu_hour", "Cloud price per GPU-hour", cloud, f"{c.cur}/GPU-h", "as stated",
                          (cloud_in,)))
        out.append(Figure("break_even_utilisation", "Break-even utilisation vs cloud", _r(be, 4), "",
                          "annual owned cost / (GPUs x 8,760 x cloud price)",
                          (Input("annual owned cost", _r(annual), f"{c.cur}/yr", "capex per year + opex per year"),
                           gpus_in, cloud_in),
                          "; ".join(x for x in ("above 1: owning never beats this cloud price" if be and be > 1 else "",
                                                gaps) if x)))
    return out, per_hour


def _deployments(c: _Ctx, per_hour: float | None, avg_kw_per_gpu: float | None,
                 measured: dict[str, Measured], gaps: str) -> list[Deployment]:
    out = []
    for inf in c.site.factory.inference:
        gpus = inf.tensor_parallel * inf.pipeline_parallel
        m = measured.get(inf.name)
        if m is not None:
            tps, source = m.tokens_per_second, "measured"
            tin = Input("tokens/s per replica", tps, "tokens/s", f"measured: {m.file} (run {m.run})")
            origin = f"measured: {m.label()}"
            if m.gpus and m.gpus != gpus:
                gpus = m.gpus
        elif inf.tokens_per_second is not None:
            tps, source = inf.tokens_per_second, "stated"
            where = f"factory.yaml inference[{inf.name}].tokens_per_second"
            tin = Input("tokens/s per replica", tps, "tokens/s", f"{where} (stated assumption)")
            origin = f"stated assumption: {where} = {tps:,.1f} tokens/s (no measured run for {inf.name})"
        else:
            tps, source, tin, origin = None, "missing", None, ""
        tfig = Figure("tokens_per_second", "Throughput per replica", tps, "tokens/s", source, (tin,) if tin else (),
                      "" if tin else "no benchmark result in the workspace and no inference[].tokens_per_second stated")
        gpus_in = Input("GPUs per replica", gpus, "", "measured" if m and m.gpus else "tensor_parallel x pipeline_parallel")
        cost = cost_per_million_tokens(per_hour, gpus, tps) if tps and per_hour is not None else None
        cfig = Figure("cost_per_million_tokens", "Cost per 1M tokens", _r(cost, 4), f"{c.cur}/1M tokens",
                      "owned cost per GPU-hour x GPUs per replica / (tokens/s x 3,600) x 1e6",
                      tuple(x for x in (Input("owned cost per GPU-hour", _r(per_hour, 4), f"{c.cur}/GPU-h", "above"),
                                        gpus_in, tin) if x), gaps if cost is not None else "needs tokens/s",
                      throughput_from=origin)
        kwh = (gpus * avg_kw_per_gpu / (tps * 3600) * 1e6) if tps and avg_kw_per_gpu else None
        efig = Figure("energy_per_million_tokens", "Energy per 1M tokens", _r(kwh, 3), "kWh/1M tokens",
                      "GPUs per replica x average kW per GPU at the meter / (tokens/s x 3,600) x 1e6",
                      tuple(x for x in (Input("average kW per GPU at the meter", _r(avg_kw_per_gpu, 4), "kW",
                                              "IT kW x average power fraction x PUE / GPUs"), gpus_in, tin) if x),
                      "" if kwh is not None else "needs tokens/s", throughput_from=origin)
        out.append(Deployment(inf.name, inf.model, gpus, inf.replicas, tfig, cfig, efig, source, m))
    return out


def _r(v: float | None, nd: int = 2) -> float | None:
    return None if v is None else round(v, nd)


# Switch power is in no catalog entry, so every power and energy figure is the nodes' alone.
SWITCH_POWER = "switch power: the catalog has no switch power figures"
ENERGY_KEYS = ("it_kw", "facility_kw", "it_kw_average", "energy_mwh_per_year")


def _left_out(c: _Ctx, bom: Bom, energy_cost: float | None) -> tuple[list[str], list[str]]:
    """The costs an owned-cost sum leaves out, capex and opex apart, each "<part>: <why>".

    A part counts as priced when factory.yaml states it (0 included: a stated 0 is a decision)
    or a sourced default prices it; the defaults of 0 ("not included unless stated",
    model/economics.py SOURCES) are gaps, not prices.
    """
    _, _, node_missing = _node_capex(c)
    _, _, sw_missing = _switch_capex(c, bom)
    stated = c.e.model_fields_set if c.stated else set()
    capex = [*([f"node capex: no price stated for {', '.join(node_missing)}"] if node_missing else []),
             *([f"switch capex: no price stated for {', '.join(sw_missing)}"] if sw_missing else []),
             *(["other capex: not stated (racks, PDUs, storage, cabling, installation)"]
               if "capex_other" not in stated else [])]
    opex = [*(["energy: no electricity price stated"] if energy_cost is None else []),
            *([f"{part}: not stated" for part in ("support", "staff") if f"{part}_opex_per_year" not in stated])]
    return capex, opex


def _basis(left_out: list[str], included: set[str]) -> str:
    if not left_out:
        return "complete"
    if not included:
        return "nothing priced"
    return "power only" if included == {"power"} else "lower bound"


def _mark(figs: list[Figure], keys: tuple[str, ...], basis: str, left_out: list[str]) -> list[Figure]:
    return [replace(f, basis=basis, left_out=tuple(left_out)) if f.key in keys else f for f in figs]


def cost(site: Site, bom: Bom, measured: dict[str, Measured] | None = None) -> Cost:
    c = _Ctx(site, site.factory.economics)
    out = Cost(site.factory.metadata.name, c.cur)
    out.power, energy_cost = _power(c)
    out.capex, capex_total = _capex(c, bom)
    out.opex, opex = _opex(c, energy_cost)
    capex_year = capex_total / c.e.amortisation_years
    gaps = [f.key.removeprefix("capex_") for f in out.capex if f.note.startswith(("nodes not", "switches not"))]
    if energy_cost is None:
        gaps.append("energy")
    gap_note = f"a lower bound: {', '.join(gaps)} not priced" if gaps else ""
    out.unit_cost, per_hour = _unit_cost(c, capex_year, energy_cost, opex, gap_note)
    capex_left, opex_left = _left_out(c, bom, energy_cost)
    included = {name for name, v in (("power", energy_cost), ("capex", capex_total),
                                     ("support and staff", c.e.support_opex_per_year + c.e.staff_opex_per_year)) if v}
    every = [*capex_left, *opex_left]
    basis = _basis(every, included)
    out.power = _mark(out.power, ENERGY_KEYS, "nodes only", [SWITCH_POWER])
    out.capex = _mark(out.capex, ("capex_total", "capex_per_year"), _basis(capex_left, included & {"capex"}), capex_left)
    out.opex = _mark(out.opex, ("opex_total",), _basis(opex_left, included - {"capex"}), opex_left)
    out.unit_cost = _mark(out.unit_cost, ("gpu_hour_capex",), _basis(capex_left, included & {"capex"}), capex_left)
    out.unit_cost = _mark(out.unit_cost, ("gpu_hour_cost", "break_even_utilisation"), basis, every)
    if basis == "nothing priced":  # a 0 owned cost would read as free, not as unknown
        per_hour = None
        out.unit_cost = [replace(f, value=None, note="nothing priced: " + "; ".join(every))
                         if f.key in ("gpu_hour_cost", "break_even_utilisation") else f for f in out.unit_cost]
    gpus = int(site.totals["gpus"])
    avg_kw_gpu = (site.totals["it_kw"] * c.e.average_power_fraction * site.factory.facility.pue / gpus) if gpus else None
    out.inference = [replace(d, cost_per_million_tokens=replace(d.cost_per_million_tokens, basis=basis, left_out=tuple(every)),
                             energy_per_million_tokens=replace(d.energy_per_million_tokens, basis="nodes only",
                                                               left_out=(SWITCH_POWER,)))
                     for d in _deployments(c, per_hour, avg_kw_gpu, measured or {}, gap_note)]
    return out
