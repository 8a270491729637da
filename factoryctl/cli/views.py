"""Rich console views of resolved facts (inspect)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from ..resolve import Site, quota_use

HOSTS_SHOWN = 24  # a 2,048-node table helps nobody; --all-hosts prints every one


def inspect_tables(site: Site, console: Console, all_hosts: bool = False) -> None:
    t = site.totals
    console.print(
        f"[bold]{site.factory.metadata.name}[/]: {t['nodes']} nodes, {t['gpus']} GPUs, "
        f"{t['racks']} racks, IT {t['it_kw']:.1f} kW, facility {t['facility_kw']:.1f} kW "
        f"(PUE {site.factory.facility.pue})"
    )

    g = Table(title="Node groups", title_justify="left")
    for col in ("group", "nodes", "GPUs/node", "GPU", "kW/node", "compute ports", "country"):
        g.add_column(col)
    for gf in site.groups.values():
        kw = f"{gf.power_kw:.2f}" + (" (est.)" if gf.power_estimated else "")
        g.add_row(gf.name, str(gf.count), str(gf.gpus_per_node), gf.gpu_model or "-", kw,
                  str(gf.compute_ports), gf.country)
    console.print(g)

    r = Table(title="Racks", title_justify="left")
    for col in ("rack", "hosts", "GPUs", "IT kW", "facility kW", "budget kW", "use", "cooling"):
        r.add_column(col)
    for rk in site.racks:
        use = f"{rk.utilisation:.0%}" if rk.budget_kw else "undeclared"
        r.add_row(rk.name, str(rk.hosts), str(rk.gpus), f"{rk.it_kw:.1f}", f"{rk.facility_kw:.1f}",
                  f"{rk.budget_kw:.1f}", use, rk.cooling)
    console.print(r)

    if site.fabric:
        f = Table(title="Fabrics", title_justify="left")
        for col in ("fabric", "endpoints", "Gb/s", "radix", "SUs", "leaves", "spines", "cores", "tiers",
                    "node-leaf", "leaf-spine"):
            f.add_column(col)
        for fs in site.fabric.values():
            f.add_row(fs.name, str(fs.endpoints), str(fs.port_gbps), str(fs.radix),
                      str(fs.scalable_units), str(fs.leaves), str(fs.spines), str(fs.cores),
                      str(fs.tiers), str(fs.node_leaf_cables), str(fs.leaf_spine_cables))
        console.print(f)

    n = site.management
    console.print(f"Management network {n.cidr}: {n.needed} of {n.capacity} addresses used")
    if site.oob:
        console.print(f"OOB network {site.oob.cidr}: {site.oob.needed} of {site.oob.capacity} addresses used")

    if site.inference:
        i = Table(title="Inference", title_justify="left")
        for col in ("name", "model", "GPU", "GPUs", "available", "weights GB/GPU", "KV GB/GPU",
                    "total GB/GPU", "usable GB/GPU", "fits"):
            i.add_column(col)
        for fit in site.inference:
            i.add_row(fit.name, fit.model, fit.gpu_model or "-", str(fit.gpus), str(fit.gpus_available),
                      f"{fit.weights_gb_per_gpu:.1f}", f"{fit.kv_gb_per_gpu:.1f}",
                      f"{fit.memory_gb_per_gpu:.1f}", f"{fit.usable_gb_per_gpu:.1f}",
                      ("yes" if fit.fits else "NO") if fit.known_model else "unknown model")
        console.print(i)

    quotas = quota_use(site)
    if quotas:
        q = Table(title="Tenant GPU quotas against capacity", title_justify="left")
        for col in ("GPU type", "GPUs", "quotas", "tenants", ""):
            q.add_column(col)
        for u in quotas:
            q.add_row("all (total)" if u.gpu_type == "*" else u.gpu_type, str(u.capacity), str(u.quota),
                      ", ".join(f"{k} {v}" for k, v in u.tenants.items()),
                      ("over" + (" (oversubscription declared)" if site.factory.tenancy.oversubscription else ""))
                      if u.over else "")
        console.print(q)

    h = Table(title="Hosts", title_justify="left")
    for col in ("host", "group", "rack", "address", "roles"):
        h.add_column(col)
    shown = site.hosts if all_hosts else site.hosts[:HOSTS_SHOWN]
    for host in shown:
        h.add_row(host.name, host.group, host.rack, host.address or "(none left)", ",".join(host.roles))
    console.print(h)
    if len(shown) < len(site.hosts):
        console.print(f"... and {len(site.hosts) - len(shown)} more hosts (--all-hosts lists them)")
