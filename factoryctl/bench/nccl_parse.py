"""Parse nccl-tests / rccl-tests output (stdout log or ``-J`` JSON) into one typed result.

Pure: no I/O except :func:`parse_file`, and never raises on bad input (a log from a
broken cluster is exactly what we must still read). Layout facts come from
NVIDIA/nccl-tests README.md, doc/PERFORMANCE.md and src/common.cu (v2.19.6); judging bandwidth is left to the caller.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..files import read_text

Status = Literal["ok", "data_errors", "crashed", "no_rows"]

# An nccl-tests log is a few kB per run; a day of runs concatenated stays far below this.
MAX_LOG_BYTES = 64 * 1024 * 1024

COLLECTIVES = (
    "all_reduce", "all_gather", "reduce_scatter", "alltoall", "alltoallv", "sendrecv",
    "broadcast", "reduce", "gather", "scatter", "hypercube",
)
# Spellings seen in binary names / docs, compared without "_" or "-".
_ALIASES = {c.replace("_", ""): c for c in COLLECTIVES} | {"bcast": "broadcast"}

# Element sizes for the -d types, used to tell collectives apart from size/count.
_TYPE_SIZE = {
    "int8": 1, "uint8": 1, "char": 1, "f8e4m3": 1, "f8e5m2": 1, "half": 2, "bfloat16": 2,
    "int32": 4, "uint32": 4, "int": 4, "float": 4, "int64": 8, "uint64": 8, "double": 8,
}


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


class Device(_Model):
    """One ``#  Rank N ... device D [busid] NAME`` line."""

    rank: int
    group: int | None = None
    pid: int | None = None
    host: str
    device: int
    busid: str
    gpu: str


class Half(_Model):
    """One half of a row (out-of-place or in-place); ``None`` where the log printed N/A."""

    time_us: float | None = None
    algbw_gbps: float | None = None
    busbw_gbps: float | None = None
    wrong: int | None = None
    max_error: float | None = None  # pre-v2.13 "error" column (max delta), not a count
    iter_min_us: float | None = None  # -I 1 per-iteration columns
    iter_max_us: float | None = None
    iter_p99_us: float | None = None
    iter_cv_pct: float | None = None


class Row(_Model):
    size_bytes: int
    count: int
    type: str | None = None
    redop: str | None = None
    root: int | None = None
    out_of_place: Half | None = None
    in_place: Half | None = None
    timestamp: str | None = None

    @property
    def halves(self) -> list[Half]:
        return [h for h in (self.out_of_place, self.in_place) if h is not None]

    @property
    def busbw_max(self) -> float | None:
        vals = [h.busbw_gbps for h in self.halves if h.busbw_gbps is not None]
        return max(vals) if vals else None


class NcclResult(_Model):
    source: str
    format: Literal["text", "json"] = "text"
    tool: str | None = None  # "nccl-tests" or "rccl-tests" when the log says so
    collective: str | None = None
    collective_from: str | None = None  # log | binary | table | source
    version: str | None = None  # nccl-tests version
    nccl_version: str | None = None  # NCCL/RCCL library version
    ranks: int | None = None
    devices: list[Device] = Field(default_factory=list)
    config: dict[str, int | str] = Field(default_factory=dict)
    rows: list[Row] = Field(default_factory=list)
    out_of_bounds: int | None = None
    avg_busbw_gbps: float | None = None
    avg_busbw_check: Literal["OK", "FAILED"] | None = None  # only with NCCL_TESTS_MIN_BW
    concluded: bool = False  # the footer (Avg bus bandwidth) was reached
    largest: Row | None = None
    peak_busbw_gbps: float | None = None
    wrong_total: int = 0
    errors: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    status: Status = "no_rows"


# ---------------------------------------------------------------- small helpers

def _num(tok: str) -> float | None:
    """A printed number; N/A and nan become None, anything else non-numeric raises."""
    tok = tok.rstrip("*")
    if tok.upper() in ("N/A", "NA", "NAN", "-NAN", "INF", "-INF"):
        return None
    val = float(tok)
    return None if math.isnan(val) or math.isinf(val) else val


def _int_or_none(tok: Any) -> int | None:
    if tok is None:
        return None
    val = _num(str(tok))
    return None if val is None else int(round(val))


def _decode_nccl_code(code: int) -> str:
    # NCCL_VERSION_CODE: major*10000+minor*100+patch since 2.9, major*1000+minor*100+patch before.
    if code >= 20900:
        return f"{code // 10000}.{code % 10000 // 100}.{code % 100}"
    return f"{code // 1000}.{code % 1000 // 100}.{code % 100}"


def normalize_collective(name: str | None) -> str | None:
    """Map a binary/program name (``/x/all_reduce_perf_mpi``) to a collective id."""
    if not name:
        return None
    base = re.split(r"[\\/]", name.strip())[-1].lower()
    base = re.sub(r"_perf.*$", "", base)
    return _ALIASES.get(base.replace("_", "").replace("-", ""))


def _collective_from_source(source: str) -> str | None:
    # File names like "b200-2n-all_gather-google.log": look for a whole token.
    base = re.split(r"[\\/]", source)[-1].lower()
    for tok in re.split(r"[-.\s]+", base):
        hit = normalize_collective(tok)
        if hit:
            return hit
    return None


def _close(a: float, b: float, tol: float = 0.03) -> bool:
    return abs(a - b) <= tol * max(abs(b), 1e-9)


def _infer_collective(rows: list[Row], ranks: int | None) -> str | None:
    """Tell the collective from sizes, counts and the busbw/algbw factor (nccl-tests doc/PERFORMANCE.md)."""
    cands = [r for r in rows if r.size_bytes > 0 and r.count > 0 and r.type in _TYPE_SIZE]
    if not cands:
        return None
    row = max(cands, key=lambda r: (r.busbw_max or 0.0, r.size_bytes))
    per = row.count * _TYPE_SIZE[row.type or ""]
    n = ranks or (round(row.size_bytes / per) if per < row.size_bytes else None)
    half = row.out_of_place or row.in_place
    factor = None
    if half and half.algbw_gbps and half.busbw_gbps and half.algbw_gbps >= 1.0:
        factor = half.busbw_gbps / half.algbw_gbps
    rooted = row.root is not None and row.root >= 0
    reduces = row.redop not in (None, "none")
    if per == row.size_bytes:
        if rooted:
            return "reduce" if reduces else "broadcast"
        if n and n > 1 and factor is not None:
            if _close(factor, 2 * (n - 1) / n):
                return "all_reduce"
            if _close(factor, 1.0):
                return "sendrecv"
        return "all_reduce" if reduces and factor is None else None
    if not n or n < 2:
        return None
    if per * (n - 1) == row.size_bytes:
        return "hypercube"
    if per * n <= row.size_bytes < per * n + 16 * n:  # per-rank count rounded down to 16 B
        if rooted:
            return None  # gather vs scatter: the table cannot tell
        if reduces:
            return "reduce_scatter"
        oop, ip = row.out_of_place, row.in_place
        if oop and ip and oop.wrong is not None:
            # alltoall never validates in-place (#wrong N/A), all_gather does.
            return "alltoall" if ip.wrong is None else "all_gather"
    return None


# ---------------------------------------------------------------- text layout

_PREFIX = re.compile(r"^\s*\d+:(?: |$)|^\[\d+,\d+\]<std(?:out|err)>:\s?")  # srun -l, --tag-output
_VERSION = re.compile(r"^#\s*(nccl|rccl)-tests version\s+(\S+)(?:.*?-library=(\d+))?")
_STARTING = re.compile(r"^#\s*Collective test starting:\s*(\S+)")
_CONCLUDED = re.compile(r"^#\s*Collective test concluded:\s*(\S+)")
_NTHREAD = re.compile(r"^#\s*nThread\s+\d+")
_CFG_NUM = re.compile(r"\b(nThread|nGpus|minBytes|maxBytes)\s+(\d+)")
_CFG_KV = re.compile(r"(warmup iters|agg iters|iters|validation|graph|unalign|step):\s*(\d+)(?:\((\w+)\))?")
_RANK = re.compile(
    r"^#\s*Rank\s+(\d+)(?:\s+Group\s+(\d+))?\s+Pid\s+(\d+)\s+on\s+(\S+)\s+device\s+(\d+)"
    r"\s+\[([^\]]*)\]\s*(.*?)\s*$"
)
_OOB = re.compile(r"^#\s*Out of bounds values\s*:\s*(\d+)\s*(OK|FAILED)?")
_AVG = re.compile(r"^#\s*Avg bus bandwidth\s*:\s*(\S+)\s*(OK|FAILED)?")
_NCCL_VER = re.compile(r"(?<![\w-])NCCL version\s+(\S+)")
_RCCL_VER = re.compile(r"RCCL version\s*:\s*(\S+)")
_BINARY = re.compile(r"\b([a-z_]+)_perf(?:_\w+)?\b")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_CLOCK = re.compile(r"^\d{2}:\d{2}:\d{2}$")

# (pattern, kind): "fatal" = the run died; "exit" = failure trace/exit notice, a crash only
# when the table never finished (nccl-tests prints it after data/MIN_BW check failures too);
# "warn" = listed but not by itself a failure.
_ERROR_PATTERNS = [
    (re.compile(r"Test (?:CUDA|NCCL) failure|Test timeout"), "fatal"),
    (re.compile(r"MPI_ABORT was invoked|exited on signal|Segmentation fault|core dumped|"
                r"\*\*\* Process received signal|terminate called|CANCELLED AT|DUE TO TIME LIMIT|"
                r"Bus error|Invalid number of GPUs"), "fatal"),
    (re.compile(r"Test failure|returned a non-zero exit code|srun: error:"), "exit"),
    (re.compile(r"NCCL WARN|^#\s*error:\s*\S"), "warn"),
]
_MAX_ERRORS = 200  # keep memory bounded on pathological logs


class _Layout:
    """Column names from the table header; default = current (v2.13+) layout."""

    def __init__(self, pre: list[str], halves: list[list[str]], has_ts: bool) -> None:
        self.pre, self.halves, self.has_ts = pre, halves, has_ts

    @classmethod
    def default(cls) -> _Layout:
        half = ["time", "algbw", "busbw", "#wrong"]
        return cls(["size", "count", "type", "redop", "root"], [half, list(half)], False)

    @classmethod
    def from_header(cls, line: str) -> _Layout | None:
        toks = line.lstrip("#").split()
        if not toks or toks[0] != "size" or "busbw" not in toks:
            return None
        starts = [i for i, t in enumerate(toks) if t in ("time", "cputime")]
        if not starts:
            return None
        pre, halves, has_ts = toks[: starts[0]], [], False
        for tok in toks[starts[0]:]:
            if tok == "timestamp":
                has_ts = True
            elif tok in ("time", "cputime"):
                halves.append([tok])
            else:
                halves[-1].append(tok)
        if len({len(h) for h in halves}) != 1:
            return None
        return cls(pre, halves, has_ts)


_HALF_FIELDS = {
    "time": "time_us", "cputime": "time_us", "algbw": "algbw_gbps", "busbw": "busbw_gbps",
    "i_min": "iter_min_us", "i_max": "iter_max_us", "i_p99": "iter_p99_us", "i_cv%": "iter_cv_pct",
}


def _half(names: list[str], toks: list[str]) -> tuple[Half, bool]:
    """Build one half; returns (half, flagged) where flagged = an rccl '*' error marker."""
    vals: dict[str, Any] = {}
    flagged = False
    for name, tok in zip(names, toks, strict=True):
        flagged |= tok.endswith("*")
        if name in ("#wrong", "wrong"):
            vals["wrong"] = _int_or_none(tok)
        elif name == "error":
            vals["max_error"] = _num(tok)
        elif name in _HALF_FIELDS:
            vals[_HALF_FIELDS[name]] = _num(tok)
        else:
            _num(tok)  # unknown column: still must be numeric for the row to be trusted
    if vals.get("time_us") is None and vals.get("busbw_gbps") is None:
        raise ValueError("half without numbers")
    return Half(**vals), flagged


def _row(toks: list[str], lay: _Layout) -> tuple[Row, bool] | None:
    """Parse a data row from the right (its last columns are fixed; the leading ones vary by version); None if it does not fit."""
    stamp = None
    if len(toks) >= 2 and _DATE.match(toks[-2]) and _CLOCK.match(toks[-1]):
        stamp, toks = f"{toks[-2]} {toks[-1]}", toks[:-2]
    width = sum(len(h) for h in lay.halves)
    pre = toks[: len(toks) - width]
    if len(pre) < 2 or len(pre) > 5:
        return None
    try:
        halves, flagged, pos = [], False, len(pre)
        for names in lay.halves:
            half, flag = _half(names, toks[pos: pos + len(names)])
            halves.append(half)
            flagged |= flag
            pos += len(names)
        size, count = int(pre[0]), int(pre[1])
    except ValueError:
        return None
    fields: dict[str, Any] = {"type": pre[2] if len(pre) > 2 else None}
    names = lay.pre if len(pre) == len(lay.pre) else []
    for i, tok in enumerate(pre[3:], start=3):
        name = names[i] if names else ("root" if re.fullmatch(r"-?\d+", tok) else "redop")
        if name == "root" and re.fullmatch(r"-?\d+", tok):
            fields["root"] = int(tok)
        elif name == "redop":
            fields["redop"] = tok
    row = Row(size_bytes=size, count=count, out_of_place=halves[0],
              in_place=halves[1] if len(halves) > 1 else None, timestamp=stamp, **fields)
    return row, flagged


class _State:
    """Facts collected while reading; turned into an NcclResult by _finish."""

    def __init__(self, source: str, fmt: str) -> None:
        self.source, self.fmt = source, fmt
        self.meta: dict[str, Any] = {}
        self.config: dict[str, int | str] = {}
        self.devices: dict[int, Device] = {}
        self.ranks: int | None = None
        self.rows: list[Row] = []
        self.errors: list[str] = []
        self.notes: list[str] = []
        self.kinds: set[str] = set()
        self.flagged = False
        self.oob: int | None = None
        self.avg: float | None = None
        self.avg_check: str | None = None
        self.footers = 0
        self.concluded = False

    def error(self, text: str, kind: str = "parse") -> None:
        self.kinds.add(kind)
        if len(self.errors) < _MAX_ERRORS:
            self.errors.append(text)


def _read_lines(st: _State, text: str) -> None:
    layout: _Layout | None = None
    skipped = 0
    for raw in text.splitlines():
        line = _PREFIX.sub("", raw, count=1).strip()
        if not line:
            continue
        for pat, kind in _ERROR_PATTERNS:
            if pat.search(line):
                st.error(line, kind)
                break
        if line.startswith("#"):
            if lay := _Layout.from_header(line):
                layout = lay
            else:
                _meta_line(st, line)
            continue
        if m := _NCCL_VER.search(line):
            st.meta.setdefault("nccl_version", m.group(1))
        elif m := _RCCL_VER.search(line):
            st.meta.setdefault("nccl_version", m.group(1))
        elif (m := _BINARY.search(line)) and normalize_collective(m.group(0)):
            st.meta.setdefault("binary", m.group(0))  # e.g. an echoed mpirun command line
        toks = line.split()
        if len(toks) < 2 or not (toks[0].isdigit() and toks[1].isdigit()):
            continue
        if layout is None:
            layout = _Layout.default()
            st.notes.append("no table header before the first row; assumed the current layout")
        parsed = _row(toks, layout)
        if parsed is None:
            skipped += 1
            if skipped <= 5:
                st.notes.append(f"skipped a malformed row: {line[:120]!r}")
            continue
        st.rows.append(parsed[0])
        st.flagged |= parsed[1]
    if skipped > 5:
        st.notes.append(f"skipped {skipped} malformed rows in total")


def _meta_line(st: _State, line: str) -> None:
    if m := _VERSION.match(line):
        st.meta["tool"], st.meta["version"] = f"{m.group(1)}-tests", m.group(2)
        if m.group(3):
            st.meta.setdefault("library_code", int(m.group(3)))
    elif m := _STARTING.match(line):
        st.meta.setdefault("program", m.group(1))
    elif m := _CONCLUDED.match(line):
        st.meta.setdefault("program", m.group(1))
        st.concluded = True
    elif _NTHREAD.match(line):
        _config_line(st, line)
    elif m := _RANK.match(line):
        rank = int(m.group(1))
        st.devices[rank] = Device(
            rank=rank, group=_int_or_none(m.group(2)), pid=int(m.group(3)), host=m.group(4),
            device=int(m.group(5)), busid=m.group(6), gpu=m.group(7))
    elif m := _OOB.match(line):
        st.oob = (st.oob or 0) + int(m.group(1))
        if m.group(2) == "FAILED" and int(m.group(1)) == 0:
            st.flagged = True
    elif m := _AVG.match(line):
        st.footers += 1
        st.concluded = True
        try:
            st.avg = _num(m.group(1))
        except ValueError:
            st.notes.append(f"unreadable average: {line!r}")
        st.avg_check = m.group(2) or st.avg_check


def _config_line(st: _State, line: str) -> None:
    keys = {"nThread": "nthreads", "nGpus": "ngpus", "minBytes": "min_bytes", "maxBytes": "max_bytes"}
    for m in _CFG_NUM.finditer(line):
        st.config[keys[m.group(1)]] = int(m.group(2))
    for m in _CFG_KV.finditer(line):
        key = m.group(1).replace(" ", "_")
        if key == "step":
            key = "step_factor" if m.group(3) == "factor" else "step_bytes"
        st.config[key] = int(m.group(2))


# ---------------------------------------------------------------- finishing

def _finish(st: _State) -> NcclResult:
    devices = [st.devices[k] for k in sorted(st.devices)]
    ranks = st.ranks if st.ranks is not None else (len(devices) or None)
    code = st.meta.get("library_code")
    nccl_version = st.meta.get("nccl_version") or (_decode_nccl_code(code) if code else None)

    collective, origin = normalize_collective(st.meta.get("program")), "log"
    if collective is None:
        collective, origin = normalize_collective(st.meta.get("binary")), "binary"
    if collective is None:
        collective, origin = _infer_collective(st.rows, ranks), "table"
    if collective is None:
        collective, origin = _collective_from_source(st.source), "source"
    if collective is None:
        origin = None

    largest, peak = None, None
    if st.rows:
        top = max(r.size_bytes for r in st.rows)
        biggest = [r for r in st.rows if r.size_bytes == top]
        largest = max(biggest, key=lambda r: r.busbw_max or -1.0)
        peaks = [r.busbw_max for r in biggest if r.busbw_max is not None]
        peak = max(peaks) if peaks else None
    wrong_total = sum(h.wrong or 0 for r in st.rows for h in r.halves)
    if st.footers > 1:
        st.notes.append(f"log holds {st.footers} result footers; average is the last one")
    elif st.avg is not None and st.fmt == "text":
        _check_average(st)

    status: Status
    if not st.rows:
        status = "crashed" if st.kinds & {"fatal", "exit"} else "no_rows"
        if status == "no_rows":
            st.error("no nccl-tests result rows found")
    elif wrong_total > 0 or (st.oob or 0) > 0 or st.flagged:
        status = "data_errors"
    elif "fatal" in st.kinds or not st.concluded:
        status = "crashed"
        if not st.concluded:
            st.error("log ends without the '# Avg bus bandwidth' footer (run cut short)")
    else:
        status = "ok"

    return NcclResult(
        source=st.source, format=st.fmt, tool=st.meta.get("tool"), collective=collective,
        collective_from=origin, version=st.meta.get("version"), nccl_version=nccl_version,
        ranks=ranks, devices=devices, config=st.config, rows=st.rows, out_of_bounds=st.oob,
        avg_busbw_gbps=st.avg, avg_busbw_check=st.avg_check, concluded=st.concluded,
        largest=largest, peak_busbw_gbps=peak, wrong_total=wrong_total, errors=st.errors,
        notes=st.notes, status=status,
    )


def _check_average(st: _State) -> None:
    # The footer is the mean of every printed busbw; a mismatch means rows were lost
    # (e.g. table lines split by interleaved output from other ranks).
    vals = [h.busbw_gbps for r in st.rows for h in r.halves if h.busbw_gbps is not None]
    if vals and st.avg is not None:
        mean = sum(vals) / len(vals)
        if abs(mean - st.avg) > max(0.01, 0.01 * st.avg):
            st.notes.append(f"footer average {st.avg:g} differs from the rows' mean {mean:.4g}: "
                            "some rows may be missing or garbled")


def _guarded(source: str, fmt: str, work) -> NcclResult:
    st = _State(source, fmt)
    try:
        work(st)
        return _finish(st)
    except Exception as exc:  # last resort: a bad log must never crash the caller
        return NcclResult(source=source, format=fmt, status="no_rows",
                          errors=[f"parser error: {type(exc).__name__}: {exc}"])


def parse_text(text: str, source: str = "<log>") -> NcclResult:
    """Parse an nccl-tests/rccl-tests stdout log (every layout since v2.x; tests/fixtures/nccl)."""
    if isinstance(text, bytes | bytearray):
        text = bytes(text).decode("utf-8", errors="replace")
    return _guarded(source, "text", lambda st: _read_lines(st, text if isinstance(text, str) else ""))


# ---------------------------------------------------------------- JSON (-J)

def _jnum(val: Any) -> float | None:
    # JSON numbers, "nan" strings or junk: junk reads as "not reported".
    try:
        return None if val is None or isinstance(val, bool) else _num(str(val))
    except ValueError:
        return None


def _json_half(obj: Any, per_iter: Any) -> Half | None:
    if not isinstance(obj, dict):
        return None
    it = per_iter if isinstance(per_iter, dict) else {}

    def f(d: dict, key: str) -> float | None:
        return _jnum(d.get(key))

    return Half(time_us=f(obj, "time") if "time" in obj else f(obj, "cpu_time"),
                algbw_gbps=f(obj, "alg_bw"), busbw_gbps=f(obj, "bus_bw"),
                wrong=_int_or_none(obj.get("nwrong")), iter_min_us=f(it, "min_us"),
                iter_max_us=f(it, "max_us"), iter_p99_us=f(it, "p99_us"), iter_cv_pct=f(it, "cv_pct"))


def _okay(val: Any) -> bool | None:
    # nccl-tests writes booleans as the strings "true"/"false" (and "unchecked").
    if isinstance(val, bool):
        return val
    return {"true": True, "false": False}.get(str(val).lower())


def _read_json(st: _State, data: str | dict) -> None:
    if not isinstance(data, dict):
        try:
            data = json.loads(data)
        except (ValueError, TypeError) as exc:
            st.error(f"not valid JSON: {exc}")
            return
    if not isinstance(data, dict):
        st.error("JSON report is not an object")
        return
    args = data.get("args")
    if isinstance(args, list) and args:
        st.meta["binary"] = str(args[0])
    if isinstance(data.get("nccl_version"), int) and data["nccl_version"] > 0:
        st.meta["library_code"] = data["nccl_version"]
    if isinstance(data.get("version"), int):
        st.config["json_version"] = data["version"]
    cfg = data.get("config") if isinstance(data.get("config"), dict) else {}
    for key, val in cfg.items():
        if isinstance(val, int | str) and not isinstance(val, bool) and key != "devices":
            st.config[key] = val
    for dev in cfg.get("devices") or []:
        try:
            st.devices[int(dev["rank"])] = Device(
                rank=int(dev["rank"]), group=_int_or_none(dev.get("group")),
                pid=_int_or_none(dev.get("pid")), host=str(dev.get("hostname", "")),
                device=int(dev.get("device", 0)), busid=str(dev.get("device_hex", "")),
                gpu=str(dev.get("device_info", "")))
        except (KeyError, ValueError, TypeError):
            st.notes.append(f"skipped a malformed device entry: {str(dev)[:120]}")
    if st.devices:
        # Each MPI process reports only its first rank: scale by threads x GPUs per process.
        per_proc = int(cfg.get("nthreads") or 1) * int(cfg.get("ngpus") or 1)
        st.ranks = len(st.devices) * per_proc
    for res in data.get("results") or []:
        if not isinstance(res, dict):
            continue
        try:
            st.rows.append(Row(
                size_bytes=int(res["size"]), count=int(res["count"]), type=res.get("type"),
                redop=res.get("redop"), root=_int_or_none(str(res.get("root", "")).strip() or None),
                out_of_place=_json_half(res.get("out_of_place"), res.get("out_of_place_per_iter")),
                in_place=_json_half(res.get("in_place"), res.get("in_place_per_iter"))))
        except (KeyError, ValueError, TypeError):
            st.notes.append(f"skipped a malformed result: {str(res)[:120]}")
    oob = data.get("out_of_bounds")
    if isinstance(oob, dict):
        st.oob = _int_or_none(oob.get("count"))
        st.flagged |= _okay(oob.get("okay")) is False and not st.oob
    avg = data.get("average_bus_bandwidth")
    if isinstance(avg, dict):
        st.concluded = True
        st.footers = 1
        st.avg = _jnum(avg.get("bandwidth"))
        ok = _okay(avg.get("okay"))
        st.avg_check = None if ok is None else ("OK" if ok else "FAILED")
    for err in data.get("errors") or []:
        if str(err).strip():
            st.error(str(err), "warn")


def parse_json(data: str | dict, source: str = "<json>") -> NcclResult:
    """Parse the ``-J file.json`` report (nccl-tests src/common.cu, v2.19.6), as text or an already-loaded dict."""
    if isinstance(data, bytes | bytearray):
        data = bytes(data).decode("utf-8", errors="replace")
    return _guarded(source, "json", lambda st: _read_json(st, data))


def parse_file(path: str | Path) -> NcclResult:
    """Read a log or JSON report and pick the parser by content. Raises OSError (ReadRefused:
    the path and why) if it is missing, unreadable, not a regular file or over MAX_LOG_BYTES."""
    path = Path(path)
    text = read_text(path, MAX_LOG_BYTES)
    if text.lstrip().startswith("{"):
        return parse_json(text, source=str(path))
    return parse_text(text, source=str(path))
