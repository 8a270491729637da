"""`factoryctl usage`: exit codes and messages without a running site (the metering itself:
tests/unit/report/test_usage.py)."""

from __future__ import annotations

import json

from factoryctl.cli.usage import usage_csv
from factoryctl.report import usage as U
from tests.helpers import ROOT, check_doc, cli, reference_doc, write_doc


def test_since_after_until_is_a_usage_error():
    r = cli("usage", ROOT / "examples" / "lab.yaml", "--since", "now", "--until", "now-1h")
    assert r.code == 64 and "is not before --until" in r.err


def test_bad_time_is_a_usage_error():
    r = cli("usage", ROOT / "examples" / "lab.yaml", "--until", "tomorrow")
    assert r.code == 64 and "--until 'tomorrow' is not a time" in r.err


def test_no_accounting_no_prometheus_says_what_is_missing(tmp_path):
    r = cli("usage", ROOT / "blueprints" / "lab" / "factory.yaml")  # the Slurm site without either
    assert r.code == 1
    assert "Slurm accounting" in r.err and "Prometheus" in r.err


def test_never_applied(tmp_path):
    doc = reference_doc()
    doc["nodes"][0]["roles"] = [*doc["nodes"][0]["roles"], "monitoring"]
    r = cli("usage", write_doc(doc, tmp_path / "factory.yaml"))
    assert r.code == 1 and "was never applied" in r.err


def test_csv_and_json_rows(tmp_path):
    from datetime import UTC, datetime

    from tests.unit.report.test_usage import SACCT, _doc

    site = check_doc(_doc(), tmp_path).site
    u = U.meter(site, U.parse_sacct(SACCT), {}, datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 2, tzinfo=UTC),
                1.5, "USD", by="job")
    lines = usage_csv(u).splitlines()
    assert lines[0].startswith("since,until,name,tenant,jobs,cpu_seconds,gpu_seconds")
    assert lines[1].startswith("2026-12-01T00:00:00Z,2026-12-02T00:00:00Z,101,physics,1,7200,7200,")
    assert len(lines) == 1 + 5
    assert json.loads(json.dumps(u.to_dict()))["jobs"][0]["name"] == "101"


def test_text_view_per_tenant_and_deployment(tmp_path):
    import io
    from datetime import UTC, datetime

    from rich.console import Console

    from factoryctl.cli.usage import usage_table
    from tests.unit.report.test_usage import SACCT, _doc

    site = check_doc(_doc(), tmp_path).site
    since, until = datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 2, tzinfo=UTC)
    for by, price in (("tenant", 2.0), ("deployment", None)):
        u = U.meter(site, U.parse_sacct(SACCT), {"chat": {"prompt": 5, "generation": 4000}}, since, until, price, "USD", by)
        buf = io.StringIO()
        usage_table(u, Console(file=buf, width=200))
        text = buf.getvalue()
        if by == "tenant":
            assert "physics" in text and "idle" in text and "= 1,536.00 USD" in text
        else:
            assert "chat" in text and "platform" in text and "cost not computed" in text
