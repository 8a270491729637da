"""nccl-tests parser: real fixture logs (values read by hand), older layouts, JSON, garbage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from factoryctl.bench.nccl_parse import (
    NcclResult,
    normalize_collective,
    parse_file,
    parse_json,
    parse_text,
)

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "nccl"
GiB = 1 << 30


def load(name: str) -> NcclResult:
    return parse_file(FIX / name)


# ------------------------------------------------------------ the eight real fixtures

def test_a100_oracle_newest_layout() -> None:
    r = load("a100-1n-all_reduce-oracle-japan.log")
    assert (r.collective, r.collective_from) == ("all_reduce", "log")
    assert (r.tool, r.version, r.nccl_version) == ("nccl-tests", "2.17.6", "2.25.1")
    assert r.ranks == 8 and len(r.rows) == 1
    d = r.devices[5]
    assert (d.rank, d.host, d.device, d.busid, d.gpu) == (
        5, "inst-gpu-master", 5, "0000:92:00", "NVIDIA A100-SXM4-40GB")
    row = r.rows[0]
    assert row.size_bytes == 10 * GiB and row.count == 2684354560
    assert (row.type, row.redop, row.root) == ("float", "sum", -1)
    assert row.out_of_place.time_us == 80646.8 and row.out_of_place.algbw_gbps == 133.14
    assert row.out_of_place.busbw_gbps == 233.00 and row.in_place.busbw_gbps == 233.34
    assert row.in_place.wrong == 0
    assert r.largest == row and r.peak_busbw_gbps == 233.34
    assert r.avg_busbw_gbps == 233.168 and r.out_of_bounds == 0 and r.concluded
    assert r.status == "ok" and r.errors == [] and r.wrong_total == 0
    assert r.config["iters"] == 20 and r.config["step_bytes"] == 1048576


def test_h100_single_node_i290_older_layout() -> None:
    r = load("h100-1n-all_reduce-nvidia-i290.log")
    assert r.collective == "all_reduce" and r.collective_from == "table"  # no starting line
    assert r.version is None and r.ranks == 8 and len(r.rows) == 6
    assert r.devices[0].busid == "0x18" and r.devices[7].gpu == "NVIDIA H100 80GB HBM3"
    assert r.rows[0].size_bytes == 134217728 and r.rows[0].out_of_place.busbw_gbps == 382.99
    assert r.largest.size_bytes == 4 * GiB
    assert r.largest.out_of_place.busbw_gbps == 473.60
    assert r.largest.out_of_place.time_us == 15870
    assert r.largest.in_place.busbw_gbps == 476.53
    assert r.peak_busbw_gbps == 476.53 and r.avg_busbw_gbps == 439.369
    assert r.config["ngpus"] == 8 and r.config["iters"] == 2 and r.config["warmup_iters"] == 5
    assert r.status == "ok"


def test_h100_two_node_i309_mpi_noise() -> None:
    r = load("h100-2n-all_reduce-nvidia-i309.log")
    assert r.collective == "all_reduce" and r.ranks == 16 and len(r.rows) == 32
    assert r.nccl_version == "2.26.2+cuda12.8"
    assert {d.host for d in r.devices} == {"bm-h100-01", "bm-h100-02"}
    assert r.rows[0].size_bytes == 8 and r.rows[0].out_of_place.time_us == 68.52
    assert r.largest.size_bytes == 16 * GiB
    assert r.largest.out_of_place.busbw_gbps == 469.21 and r.largest.in_place.busbw_gbps == 469.10
    assert r.peak_busbw_gbps == 469.21 and r.avg_busbw_gbps == 139.56
    assert r.status == "ok" and r.errors == [] and r.notes == []


def test_h100_two_node_i290_lowbw_srun_prefix() -> None:
    r = load("h100-2n-all_reduce-nvidia-i290-lowbw.log")
    assert r.collective == "all_reduce" and r.ranks == 16 and len(r.rows) == 11
    assert r.config["validation"] == 0
    assert r.rows[0].size_bytes == 8388608 and r.rows[0].in_place.busbw_gbps == 87.38
    assert all(h.wrong is None for row in r.rows for h in row.halves)  # -c 0: N/A
    assert r.largest.size_bytes == 8 * GiB
    assert r.largest.out_of_place.busbw_gbps == 155.57 and r.largest.in_place.busbw_gbps == 155.56
    assert r.largest.out_of_place.time_us == 103530
    assert r.peak_busbw_gbps == 155.57
    assert max(row.busbw_max for row in r.rows) == 167.87
    assert r.avg_busbw_gbps == 142.735
    assert r.status == "ok"  # low but well-formed: judging bandwidth is not the parser's job


def test_gh200_i369_wrong_is_data_errors() -> None:
    r = load("gh200-2n-all_reduce-nvidia-i369-wrong.log")
    assert (r.collective, r.version, r.nccl_version) == ("all_reduce", "2.17.8", "2.29.2")
    assert r.ranks == 2 and len(r.rows) == 25
    assert r.rows[0].size_bytes == 8 and r.largest.size_bytes == 134217728
    bad = next(row for row in r.rows if row.size_bytes == 1048576)
    assert (bad.out_of_place.wrong, bad.in_place.wrong) == (96, 32)
    assert bad.out_of_place.busbw_gbps == 2.20 and bad.in_place.busbw_gbps == 2.13
    assert r.wrong_total == 128 and r.out_of_bounds == 4
    assert r.largest.out_of_place.busbw_gbps == 22.87 and r.largest.in_place.busbw_gbps == 22.80
    assert r.peak_busbw_gbps == 22.87 and r.avg_busbw_gbps == 4.79995
    assert r.status == "data_errors"
    assert len(r.errors) == 2 and all("Test failure common.cu:1189" in e for e in r.errors)


def test_gh200_i369_cudafail_is_crashed() -> None:
    r = load("gh200-2n-all_reduce-nvidia-i369-cudafail.log")
    assert r.collective == "all_reduce" and r.ranks == 8 and r.rows == []
    assert r.largest is None and r.peak_busbw_gbps is None and r.avg_busbw_gbps is None
    assert r.status == "crashed" and not r.concluded
    cuda = [e for e in r.errors if "Test CUDA failure" in e]
    assert len(cuda) == 6 and "busy or unavailable" in cuda[0]
    assert sum("Test failure" in e for e in r.errors) == 6


def test_b200_all_gather_wrapper_noise() -> None:
    r = load("b200-2n-all_gather-google.log")
    assert r.collective == "all_gather" and r.ranks == 16 and len(r.rows) == 24
    assert r.nccl_version == "2.26.6+cuda12.8" and r.config["warmup_iters"] == 50
    first = r.rows[0]
    assert (first.size_bytes, first.count, first.redop, first.root) == (1024, 16, "none", -1)
    assert r.largest.size_bytes == 8 * GiB and r.largest.count == 134217728
    assert r.largest.out_of_place.busbw_gbps == 260.03 and r.largest.in_place.busbw_gbps == 259.25
    assert max(row.busbw_max for row in r.rows) == 268.59
    assert r.peak_busbw_gbps == 260.03 and r.avg_busbw_gbps == 59.3638
    assert r.status == "ok"


def test_b200_collective_inferred_from_table_without_file_name() -> None:
    # No "starting" line and no binary name: the table alone says all_gather
    # (count x 4 B x 16 ranks == size, busbw/algbw == 15/16, in-place validated).
    text = (FIX / "b200-2n-all_gather-google.log").read_text()
    r = parse_text(text)
    assert (r.collective, r.collective_from) == ("all_gather", "table")


def test_mi355x_rccl_alltoall() -> None:
    r = load("mi355x-1n-alltoall-prasad-nair-amd.log")
    assert (r.tool, r.collective) == ("rccl-tests", "alltoall")
    assert r.version == "2.17.9-develop:2596ca5f71" and r.nccl_version == "2.27.7"
    assert r.ranks == 8 and len(r.rows) == 25
    assert [row.size_bytes for row in r.rows[:5]] == [0, 0, 0, 0, 128]
    assert all(row.in_place.wrong is None and row.out_of_place.wrong == 0 for row in r.rows)
    assert r.largest.size_bytes == 134217728
    assert r.largest.out_of_place.busbw_gbps == 322.22 and r.largest.in_place.busbw_gbps == 316.42
    assert r.peak_busbw_gbps == 322.22 and r.avg_busbw_gbps == 58.3947
    assert r.status == "ok"
    assert parse_text((FIX / "mi355x-1n-alltoall-prasad-nair-amd.log").read_text()).collective_from == "log"


def test_fixture_averages_match_rows() -> None:
    # The parser notes a footer/rows mismatch; none of the real logs lost rows.
    for path in FIX.glob("*.log"):
        assert not any("differs" in n for n in parse_file(path).notes), path.name


def test_to_dict_is_json_and_stable() -> None:
    d = load("a100-1n-all_reduce-oracle-japan.log").to_dict()
    json.dumps(d)
    assert list(d)[:4] == ["source", "format", "tool", "collective"]
    assert d["rows"][0]["out_of_place"] == {
        "time_us": 80646.8, "algbw_gbps": 133.14, "busbw_gbps": 233.0, "wrong": 0,
        "max_error": None, "iter_min_us": None, "iter_max_us": None, "iter_p99_us": None,
        "iter_cv_pct": None}


# ------------------------------------------------------------ other layouts (older nccl-tests)

OLD_BCAST = """\
# nThread 1 nGpus 4 minBytes 1024 maxBytes 2048 step: 2(factor) warmup iters: 5 iters: 20 validation: 1
#
# Using devices
#   Rank  0 Pid  12345 on      hostA device  0 [0x07] Tesla V100-SXM2-16GB
#   Rank  1 Pid  12345 on      hostA device  1 [0x0a] Tesla V100-SXM2-16GB
#   Rank  2 Pid  12345 on      hostA device  2 [0x85] Tesla V100-SXM2-16GB
#   Rank  3 Pid  12345 on      hostA device  3 [0x86] Tesla V100-SXM2-16GB
#
#                                                     out-of-place                       in-place
#       size         count    type    root     time   algbw   busbw  error     time   algbw   busbw  error
#        (B)    (elements)                     (us)  (GB/s)  (GB/s)            (us)  (GB/s)  (GB/s)
        1024           256   float       0    10.00    0.10    0.10  0e+00    10.00    0.10    0.10  0e+00
        2048           512   float       0    11.00    0.19    0.19  0e+00    11.00    0.19    0.19  1e+00
 Out of bounds values : 0 OK
# Out of bounds values : 0 OK
# Avg bus bandwidth    : 0.145
#
"""


def test_pre_2_13_layout_error_column_and_root_only() -> None:
    r = parse_text(OLD_BCAST, source="bcast.log")
    assert r.collective == "broadcast"  # rooted, count x 4 == size
    assert r.ranks == 4 and r.devices[0].group is None and r.devices[0].busid == "0x07"
    assert [row.root for row in r.rows] == [0, 0] and r.rows[0].redop is None
    assert r.rows[1].in_place.max_error == 1.0 and r.rows[1].in_place.wrong is None
    assert r.config.get("agg_iters") is None and r.config["validation"] == 1
    assert r.status == "ok"


def test_tag_output_prefix_timestamps_and_interleaved_noise() -> None:
    text = "\n".join([
        "[1,0]<stdout>:# nccl-tests version 2.19.6 nccl-headers=22903 nccl-library=22903",
        "[1,0]<stdout>:# Collective test starting: reduce_scatter_perf_mpi",
        "[1,0]<stdout>:#  Rank  0 Group  0 Pid   11 on      n1 device  0 [0000:19:00] NVIDIA H200",
        "[1,0]<stdout>:#  Rank  1 Group  0 Pid   12 on      n1 device  1 [0000:3b:00] NVIDIA H200",
        "[1,0]<stdout>:#       size         count      type   redop    root     time   algbw   busbw"
        "  #wrong     time   algbw   busbw  #wrong            timestamp",
        "[1,1]<stderr>:n1:12:12 [1] NCCL INFO comm 0x1 rank 1 nranks 2 - Init COMPLETE",
        "[1,0]<stdout>:     1048576        131072     float     sum      -1    20.10   52.17   26.08"
        "       0    20.00   52.43   26.21       0  2025-01-02 03:04:05",
        "[1,0]<stdout>:# Out of bounds values : 0 OK",
        "[1,0]<stdout>:# Avg bus bandwidth    : 26.145 OK",
        "[1,0]<stdout>:# Collective test concluded: reduce_scatter_perf_mpi",
    ])
    r = parse_text(text)
    assert r.collective == "reduce_scatter" and r.version == "2.19.6" and r.nccl_version == "2.29.3"
    assert r.ranks == 2 and len(r.rows) == 1
    assert r.rows[0].timestamp == "2025-01-02 03:04:05" and r.rows[0].in_place.busbw_gbps == 26.21
    assert r.avg_busbw_check == "OK" and r.status == "ok"


def test_per_iteration_columns() -> None:
    text = """\
#       size         count      type   redop    root     time   algbw   busbw  #wrong    i_min    i_max    i_p99    i_cv%     time   algbw   busbw  #wrong    i_min    i_max    i_p99    i_cv%
     4194304       1048576     float     sum      -1    40.00  104.86  183.50       0    39.00    45.00    44.00     2.10    41.00  102.30  179.03       0    40.00    46.00    45.00     1.90
# Out of bounds values : 0 OK
# Avg bus bandwidth    : 181.265
"""
    r = parse_text(text)
    h = r.rows[0].out_of_place
    assert (h.iter_min_us, h.iter_max_us, h.iter_p99_us, h.iter_cv_pct) == (39.0, 45.0, 44.0, 2.1)
    assert r.rows[0].in_place.busbw_gbps == 179.03 and r.status == "ok"


HEADER = ("#       size         count      type   redop    root     time   algbw   busbw  #wrong"
          "     time   algbw   busbw  #wrong\n")
ROW = ("   134217728      33554432     float     sum      -1    613.3  218.85  382.99"
       "      0    614.3  218.48  382.34      0\n")


def test_truncated_log_is_crashed() -> None:
    r = parse_text(HEADER + ROW)
    assert len(r.rows) == 1 and r.status == "crashed" and "footer" in r.errors[-1]


def test_nccl_failure_mid_table_is_crashed() -> None:
    text = HEADER + ROW + "n1: Test NCCL failure common.cu:1005 'unhandled system error'\n"
    assert parse_text(text).status == "crashed"


def test_warn_lines_listed_but_complete_run_ok() -> None:
    text = ("n1:1:1 [0] NCCL WARN NET/IB : Got async event : port error\n" + HEADER + ROW
            + "# Out of bounds values : 0 OK\n# Avg bus bandwidth    : 382.665 \n")
    r = parse_text(text)
    assert r.status == "ok" and len(r.errors) == 1 and "NCCL WARN" in r.errors[0]


def test_min_bw_failure_kept_apart_from_status() -> None:
    text = (HEADER + ROW + "# Out of bounds values : 0 OK\n# Avg bus bandwidth    : 382.665 FAILED\n"
            " .. n1 pid 7: Test failure common.cu:1189\n")
    r = parse_text(text)
    assert r.avg_busbw_check == "FAILED" and r.status == "ok"


def test_wide_wrong_counts_in_exponent_form() -> None:
    row = ROW.replace("      0    614.3", " 2.09715e+06    614.3")
    r = parse_text(HEADER + row + "# Out of bounds values : 2 FAILED\n# Avg bus bandwidth : 1\n")
    assert r.rows[0].out_of_place.wrong == 2097150 and r.status == "data_errors"


def test_normalize_collective() -> None:
    assert normalize_collective("/opt/nccl-tests/build/all_reduce_perf_mpi") == "all_reduce"
    assert normalize_collective("alltoall_perf") == "alltoall"
    assert normalize_collective("sendrecv") == "sendrecv"
    assert normalize_collective("hypercube_perf") == "hypercube"
    assert normalize_collective("cat") is None


# ------------------------------------------------------------ JSON (-J), nccl-tests src/common.cu

def _json_report() -> dict:
    def half(t: float, alg: float, bus: float, wrong: float | None) -> dict:
        return {"time": t, "alg_bw": alg, "bus_bw": bus, "nwrong": wrong}

    return {
        "version": 2, "start_time": "2025-06-01 10:00:00",
        "args": ["/opt/nccl-tests/build/all_reduce_perf", "-b", "1G", "-e", "2G", "-g", "8"],
        "env": ["NCCL_DEBUG=WARN"], "nccl_version": 22703,
        "config": {
            "nthreads": 1, "ngpus": 8, "minimum_bytes": GiB, "maximum_bytes": 2 * GiB,
            "step_factor": 2, "warmup_iters": 1, "iterations": 20, "aggregated_iterations": 1,
            "validation": 1, "graph": 0, "blocking_collectives": "false",
            "per_iter_timing": "false", "parallel_init": "false",
            "devices": [{"rank": 0, "group": 0, "pid": 4242, "hostname": "gpu-a",
                         "device": 0, "device_hex": "0000:19:00", "device_info": "NVIDIA H100 80GB HBM3"}],
        },
        "results": [
            {"size": GiB, "count": GiB // 4, "type": "float", "redop": "sum", "root": "    -1",
             "out_of_place": half(4038.8, 265.85, 465.25, 0), "in_place": half(4043.6, 265.54, 464.70, 0),
             "actual_iterations": 20, "experiment_name": ""},
            {"size": 2 * GiB, "count": GiB // 2, "type": "float", "redop": "sum", "root": "    -1",
             "out_of_place": half(8020.3, 267.76, 468.57, 0), "in_place": half(8002.1, 268.36, "nan", None),
             "actual_iterations": 20, "experiment_name": ""},
        ],
        "out_of_bounds": {"count": 0, "okay": "true"},
        "average_bus_bandwidth": {"bandwidth": 466.82, "okay": "unchecked"},
        "errors": [],
        "end_time": "2025-06-01 10:00:05",
    }


def test_json_report_dict_and_string() -> None:
    for data in (_json_report(), json.dumps(_json_report())):
        r = parse_json(data, source="r.json")
        assert r.format == "json" and (r.collective, r.collective_from) == ("all_reduce", "binary")
        assert r.nccl_version == "2.27.3" and r.ranks == 8 and r.devices[0].host == "gpu-a"
        assert len(r.rows) == 2 and r.rows[0].root == -1 and r.rows[0].out_of_place.busbw_gbps == 465.25
        assert r.largest.size_bytes == 2 * GiB and r.largest.in_place.busbw_gbps is None
        assert r.largest.in_place.wrong is None and r.peak_busbw_gbps == 468.57
        assert r.avg_busbw_gbps == 466.82 and r.avg_busbw_check is None and r.out_of_bounds == 0
        assert r.status == "ok"


def test_json_data_errors_and_file_sniffing(tmp_path: Path) -> None:
    rep = _json_report()
    rep["results"][0]["out_of_place"]["nwrong"] = 12.0
    rep["out_of_bounds"] = {"count": 1, "okay": "false"}
    p = tmp_path / "report.json"
    p.write_text(json.dumps(rep))
    r = parse_file(p)
    assert r.format == "json" and r.wrong_total == 12 and r.status == "data_errors"


def test_json_without_footer_or_garbage() -> None:
    rep = _json_report()
    del rep["average_bus_bandwidth"]
    assert parse_json(rep).status == "crashed"
    bad = parse_json("{not json")
    assert bad.status == "no_rows" and bad.errors
    assert parse_json("[1, 2]").status == "no_rows"
    assert parse_json({"results": [{"size": "x"}, 5]}).status == "no_rows"


# ------------------------------------------------------------ garbage never raises

STATUSES = {"ok", "data_errors", "crashed", "no_rows"}


@pytest.mark.parametrize("text", ["", "\n\n", "hello world", "# size count busbw", "1 2 3 4 5 6 7 8 9"])
def test_garbage_is_no_rows(text: str) -> None:
    r = parse_text(text)
    assert r.status == "no_rows" and r.errors and r.rows == []


def test_bytes_and_none_inputs() -> None:
    assert parse_text(b"\xff\xfe garbage").status == "no_rows"
    assert parse_text(None).status == "no_rows"  # type: ignore[arg-type]
    assert parse_json(None).status == "no_rows"  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_random_text_never_raises(text: str) -> None:
    r = parse_text(text)
    assert r.status in STATUSES
    json.dumps(r.to_dict())


_LINES = [line for p in sorted(FIX.glob("*.log")) for line in p.read_text().splitlines()]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(_LINES), max_size=60), st.lists(st.text(max_size=40), max_size=5))
def test_shuffled_fixture_lines_never_raise(lines: list[str], noise: list[str]) -> None:
    r = parse_text("\n".join(lines + noise))
    assert r.status in STATUSES
    json.dumps(r.to_dict())


@settings(max_examples=100, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                    lambda kids: st.lists(kids, max_size=4)
                    | st.dictionaries(st.sampled_from(
                        ["results", "size", "count", "out_of_place", "in_place", "config",
                         "devices", "rank", "args", "average_bus_bandwidth", "bandwidth",
                         "out_of_bounds", "errors", "nccl_version", "root", "type"]), kids, max_size=5),
                    max_leaves=20))
def test_random_json_never_raises(data: object) -> None:
    r = parse_json(data if isinstance(data, dict) else json.dumps(data, default=str))
    assert r.status in STATUSES
