"""`bench parse` command, tested on its own Typer app (the main CLI mounts it as `bench`)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from factoryctl.cli.bench import app

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "nccl"
OK_LOG = str(FIX / "a100-1n-all_reduce-oracle-japan.log")
runner = CliRunner()


def test_text_output_ok() -> None:
    res = runner.invoke(app, ["parse", OK_LOG])
    assert res.exit_code == 0, res.output
    out = res.output
    assert "collective=all_reduce" in out and "ranks=8" in out and "status=ok" in out
    for cell in ("10737418240", "2684354560", "80646.8", "133.14", "233.34"):
        assert cell in out
    assert "avg busbw: 233.168" in out and "10 GiB busbw: 233.34" in out


def test_text_output_every_row() -> None:
    res = runner.invoke(app, ["parse", str(FIX / "h100-2n-all_reduce-nvidia-i309.log")])
    assert res.exit_code == 0
    assert "17179869184" in res.output and "469.21" in res.output and "68.52" in res.output


def test_json_output_list_of_results() -> None:
    logs = [OK_LOG, str(FIX / "b200-2n-all_gather-google.log")]
    res = runner.invoke(app, ["parse", "--format", "json", *logs])
    assert res.exit_code == 0
    data = json.loads(res.stdout)
    assert [d["collective"] for d in data] == ["all_reduce", "all_gather"]
    assert data[1]["peak_busbw_gbps"] == 260.03 and len(data[1]["rows"]) == 24
    assert set(data[0]) >= {"status", "rows", "largest", "avg_busbw_gbps", "errors", "ranks"}


def test_exit_1_on_data_errors_and_crash() -> None:
    for name, status in [("gh200-2n-all_reduce-nvidia-i369-wrong.log", "data_errors"),
                         ("gh200-2n-all_reduce-nvidia-i369-cudafail.log", "crashed")]:
        res = runner.invoke(app, ["parse", str(FIX / name)])
        assert res.exit_code == 1 and f"status={status}" in res.output


def test_exit_1_when_any_log_fails() -> None:
    bad = str(FIX / "gh200-2n-all_reduce-nvidia-i369-wrong.log")
    res = runner.invoke(app, ["parse", "--format", "json", OK_LOG, bad])
    assert res.exit_code == 1
    assert [d["status"] for d in json.loads(res.stdout)] == ["ok", "data_errors"]


def test_no_rows_exit_1(tmp_path: Path) -> None:
    p = tmp_path / "empty.log"
    p.write_text("nothing to see\n")
    res = runner.invoke(app, ["parse", str(p)])
    assert res.exit_code == 1 and "status=no_rows" in res.output


def test_missing_file_one_line_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.log"
    res = runner.invoke(app, ["parse", OK_LOG, str(missing)])
    assert res.exit_code == 1
    assert res.exception is None or isinstance(res.exception, SystemExit)
    errs = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert errs == [f"error: cannot read {missing}: No such file or directory"]
    assert "Traceback" not in res.output


def test_directory_is_unreadable(tmp_path: Path) -> None:
    res = runner.invoke(app, ["parse", str(tmp_path)])
    assert res.exit_code == 1 and "error: cannot read" in res.stderr
