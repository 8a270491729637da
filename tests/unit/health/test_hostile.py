"""Hostile and damaged inputs: every recorded fixture cut at any point, with lines dropped or
repeated, bytes flipped, or two fixtures glued together, either parses and judges or is
refused with a HealthInputError that names the file. Never another exception."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from factoryctl.health import HealthInputError, judge, parse_text
from tests.helpers import ROOT

FIX = ROOT / "tests" / "fixtures" / "health"
TEXTS = {p.name: p.read_text(errors="replace") for p in sorted(FIX.rglob("*")) if p.is_file() and p.name != "SOURCES.md"}


def _judged_or_refused(text: str) -> None:
    try:
        parsed = parse_text(text, "input.txt")
    except HealthInputError as exc:
        assert str(exc).startswith("input.txt"), exc
        return
    for f in judge(parsed, expect_ib_rate=400):
        assert f.status in ("pass", "warn", "fail")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(TEXTS)), cut=st.floats(0, 1), flips=st.lists(
    st.tuples(st.floats(0, 1), st.sampled_from(["", "|", ":", "\n", "\x00", "-1", "N/A", "99999999999999999999",
                                               "<", "{", "]", "nan", " "])), max_size=6))
def test_damaged_fixtures(name, cut, flips):
    text = TEXTS[name]
    text = text[: max(1, int(len(text) * cut))] if cut < 1 else text
    for where, what in flips:
        i = int(len(text) * where)
        text = text[:i] + what + text[i + 1:]
    _judged_or_refused(text)


@settings(max_examples=60, deadline=None)
@given(a=st.sampled_from(sorted(TEXTS)), b=st.sampled_from(sorted(TEXTS)), drop=st.integers(0, 5))
def test_glued_and_thinned_fixtures(a, b, drop):
    lines = (TEXTS[a] + "\n" + TEXTS[b]).splitlines()
    _judged_or_refused("\n".join(line for i, line in enumerate(lines) if drop == 0 or i % (drop + 1)))


@pytest.mark.parametrize("text", ["\ufeff", "\r\n" * 50, "GPU 0: \n", "CA 'x'\n", "| Error | |", "[ 1.0] NVRM: Xid (PCI:",
                                  "index, name\n", "<nvidia_smi_log/>", '{"DCGM GPU Diagnostic": 5}', "x" * 1_000_000])
def test_degenerate_inputs(text):
    _judged_or_refused(text)
