"""Bounds on the numbers a factory.yaml may hold: what a real site can have, with the reason.

Checked by the schema, before `resolve` expands anything, so a typo such as `count: 1000000000`
is refused in milliseconds instead of expanding a billion hosts. Each bound is generous (several
times the largest site or part known in 2026) so a real design never meets one. docs/security.md
lists them; keep that table in step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field


@dataclass(frozen=True)
class Limit:
    most: int | float
    what: str  # "nodes in one group": read as "<value> <what>"
    why: str


# The largest AI sites announced by 2026 hold ~200,000 GPUs (~25,000 8-GPU nodes); 100,000 hosts
# leaves 4x headroom and keeps resolve/render under a few seconds.
NODES_PER_GROUP = Limit(100_000, "nodes in one group", "the largest GPU sites have ~25,000 nodes")
TOTAL_HOSTS = Limit(100_000, "hosts in the site", "the largest GPU sites have ~25,000 nodes")
START_INDEX = Limit(1_000_000, "as the first index", "indexes are written into 63-character host names")
# The largest scale-up domain in the catalog: GB200/GB300 NVL72, one rack as one node
# (catalog/gpus.yaml nvlink_domain: GB200/GB300 NVL72).
GPUS_PER_NODE = Limit(72, "GPUs in one node", "the largest NVLink domain in the catalog is NVL72")
# DGX H100/B200: 8 ConnectX-7 + 2 BlueField-3 (DGX H100 and DGX B200 user guides); 32 covers any chassis.
NICS_PER_NODE = Limit(32, "network cards in one node", "a DGX-class node has 10 network cards")
PORTS_PER_NIC = Limit(8, "ports per card", "network cards have 1, 2 or 4 ports")
# IEEE 802.3dj (1.6 Tb/s Ethernet) is the fastest link standardised or in draft.
LINK_GBPS = Limit(3_200, "Gb/s on one link", "the fastest link in draft (IEEE 802.3dj) is 1,600 Gb/s")
RAILS = Limit(64, "rails", "a rail-optimised fabric has one rail per GPU (8, or 72 split into planes)")
PLANES = Limit(16, "planes", "multi-plane fabrics use 2-8 planes")
# HPE Superdome Flex: 32 sockets, 48 TB, the largest single-image server.
SOCKETS = Limit(32, "CPU sockets", "the largest single-image servers have 32 sockets")
CORES_PER_SOCKET = Limit(1_024, "cores per socket", "the largest server CPUs have 192-288 cores")
MEMORY_GB = Limit(65_536, "GB of memory in one node", "the largest single-image servers hold 48 TB")
NVME_TB = Limit(10_000, "TB of local NVMe", "a 24-bay server of 122 TB drives holds ~3,000 TB")
# NVIDIA Kyber racks (Vera Rubin Ultra, 2027) are announced at 600 kW.
NODE_KW = Limit(1_000, "kW for one node", "the densest racks announced draw 600 kW")
RACK_KW = Limit(1_000, "kW for one rack", "the densest racks announced draw 600 kW")
SITE_KW = Limit(10_000_000, "kW of site power", "the largest campuses planned draw ~5 GW")
PDUS = Limit(64, "PDUs in one rack", "a rack holds 2-8 PDUs")
STORAGE_TB = Limit(10_000_000, "TB in one filesystem", "the largest filesystems hold ~1 EB (1,000,000 TB)")
STORAGE_GBPS = Limit(1_000_000, "GB/s of storage bandwidth", "the fastest filesystems reach ~10-20 TB/s")
RESERVED_ADDRESSES = Limit(65_536, "reserved addresses", "a /16 holds 65,536 addresses")
WATCHDOG_MS = Limit(3_600_000, "ms", "an hour; switches take 100-1,000 ms")
# Inference: the largest models are ~2 trillion parameters with ~1 M tokens of context.
PARAMS_B = Limit(100_000, "billion parameters", "the largest models have ~2,000 billion")
LAYERS = Limit(10_000, "layers", "the largest models have ~100-200 layers")
HEADS = Limit(16_384, "heads", "the largest models have ~128 heads")
HEAD_DIM = Limit(16_384, "as head dimension", "models use 64-256")
CONTEXT = Limit(100_000_000, "tokens of context", "the longest contexts are ~10 M tokens")
SEQUENCES = Limit(1_000_000, "concurrent sequences", "an engine batches hundreds to thousands")
PARALLEL = Limit(4_096, "ways of parallelism", "more than every GPU of a large domain")
REPLICAS = Limit(1_000_000, "replicas", "more than the GPUs of any site")
LATENCY_MS = Limit(86_400_000, "ms", "a day; serving SLOs are tens to thousands of ms")
TOKENS_PER_SECOND = Limit(10**12, "tokens per second", "far above any deployment")
QUOTA = Limit(100_000_000, "in one quota", "more than the GPUs or cores of any site")
MONEY = Limit(10**15, "in one price", "a quadrillion is beyond any site's budget")
STEP_FACTOR = Limit(1_024, "as step factor", "nccl-tests steps by 2")
GEMM_SIZE = Limit(65_536, "as GEMM size", "a 65,536-square bf16 matrix is 8 GiB")
BENCH_BYTES = Limit(1 << 40, "bytes", "one NCCL message of 1 TiB exceeds any GPU's memory")


def as_whole(v):
    # YAML 1.2 reads 2e6 as a float; a float that is a whole number is that number. Others
    # (2.5, inf, nan) stay floats and the strict int check refuses them with their value.
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def check(limit: Limit):
    """An after-validator refusing values above `limit`, saying why."""

    def _check(v):
        if v is not None and v > limit.most:
            raise ValueError(
                f"{v:,} {limit.what} is more than a site can have: at most {limit.most:,} ({limit.why})"
                "\nhint: check the value for a typo (an extra digit or a wrong unit)"
            )
        return v

    _check.limit = limit  # docs/factory-yaml.md (docsgen_fields) states the bound with its reason
    return AfterValidator(_check)


def whole(limit: Limit, ge: int = 1):
    """A whole number from `ge` to `limit`; 2e6 or 8.0 are accepted as whole numbers."""
    # Field before the validators: its constraints stay JSON Schema's minimum/maximum; a
    # BeforeValidator wraps what precedes it, so it still runs first.
    return Annotated[int, Field(ge=ge, json_schema_extra={"maximum": limit.most}), BeforeValidator(as_whole),
                     check(limit)]


def amount(limit: Limit, *, gt: float | None = None, ge: float | None = None):
    """A finite number (Strict refuses inf and nan) up to `limit`."""
    # The bound is in the JSON Schema (`factoryctl schema`) too; check() gives the reason.
    return Annotated[float, Field(gt=gt, ge=ge, json_schema_extra={"maximum": limit.most}), check(limit)]


def ranged(ge: int, le: int):
    """A whole number in a range fixed by a standard (VLAN ids, DSCP); 8.0 reads as 8."""
    return Annotated[int, Field(ge=ge, le=le), BeforeValidator(as_whole)]
