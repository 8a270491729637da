"""Real nccl-tests logs (tests/fixtures/nccl) made into the logs of other hosts, scaled to
stand for a slow node, with the NCCL_DEBUG=INFO lines that name the NICs each rank uses."""

from __future__ import annotations

from pathlib import Path

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "nccl"
SINGLE = (FIX / "h100-1n-all_reduce-nvidia-i290.log").read_text()  # host node005
PAIR = (FIX / "h100-2n-all_reduce-nvidia-i309.log").read_text()  # hosts bm-h100-01, bm-h100-02


def scaled(text: str, factor: float) -> str:
    """A log's rows with algbw and busbw x factor (time / factor)."""
    out = []
    for line in text.splitlines():
        t = line.split()
        if len(t) == 13 and t[0].isdigit():
            for i in (5, 9):
                t[i] = f"{float(t[i]) / factor:.1f}"
            for i in (6, 7, 10, 11):
                t[i] = f"{float(t[i]) * factor:.2f}"
            line = "  ".join(t)
        out.append(line)
    return "\n".join(out) + "\n"


def net_lines(host: str, rails: int) -> str:
    devs = " ".join(f"[{i}]mlx5_{i}:1/IB" for i in range(rails))
    return "".join(f"{host}:4242:43{r:02d} [{r}] NCCL INFO NET/IB : Using {devs} ; OOB ib0:10.0.0.1<0>\n"
                   for r in range(8))


def node_log(host: str, factor: float = 1.0) -> str:
    return scaled(SINGLE.replace("node005", host), factor)


def pair_log(a: str, b: str, factor: float = 1.0, rails: dict[str, int] | None = None) -> str:
    rails = rails or {}
    return (net_lines(a, rails.get(a, 8)) + net_lines(b, rails.get(b, 8))
            + scaled(PAIR.replace("bm-h100-01", a).replace("bm-h100-02", b), factor))
