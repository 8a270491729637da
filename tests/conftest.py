import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `from tests.helpers import ...`
os.environ.setdefault("CHECKPOINT_DISABLE", "1")  # Terraform must never phone home
os.environ.setdefault("NO_COLOR", "1")
os.environ.setdefault("COLUMNS", "120")


def pytest_addoption(parser):
    parser.addoption("--update-goldens", action="store_true", default=False,
                     help="rewrite tests/golden/*/expected from the current render")


# --- markers: `lab` tests drive the whole pipeline on lab hosts, so they need everything ------------
# (pyproject.toml registers the markers; `-m "not lab"` is the fast lane without root,
# `-m "not lab and not terraform and not ansible and not root"` runs no engine at all).
LAB_NEEDS = ("root", "terraform", "ansible")


def pytest_collection_modifyitems(config, items):
    import pytest

    for item in items:
        if item.get_closest_marker("lab"):
            for name in LAB_NEEDS:
                if not item.get_closest_marker(name):
                    item.add_marker(getattr(pytest.mark, name))


# --- the fuzz campaign's figures (tests/unit/cli/test_fuzz_commands.py) ------------------------------
# Each process (every xdist worker) writes its counts into one folder; the controller sums them
# into one closing line the CI log keeps.
_FUZZ_ENV = "FACTORYCTL_FUZZ_STATS"


def pytest_configure(config):
    if not hasattr(config, "workerinput") and _FUZZ_ENV not in os.environ:
        import tempfile

        os.environ[_FUZZ_ENV] = tempfile.mkdtemp(prefix="factoryctl-fuzz-")
        config._fuzz_stats_owner = True


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    import json
    import shutil

    folder = os.environ.get(_FUZZ_ENV)
    if hasattr(config, "workerinput") or not folder or not Path(folder).is_dir():
        return
    total: dict[str, int] = {}
    for f in sorted(Path(folder).glob("*.json")):
        for k, v in json.loads(f.read_text()).items():
            total[k] = max(total.get(k, 0), v) if k.endswith("_ms") else total.get(k, 0) + v
    if getattr(config, "_fuzz_stats_owner", False):
        shutil.rmtree(folder, ignore_errors=True)
    if not total:
        return
    g = total.get
    terminalreporter.write_line(
        f"fuzz campaign: {g('inputs', 0)} inputs, {g('tried', 0)} command runs: {g('refused', 0)} refused cleanly "
        f"(exit 1), {g('accepted', 0)} accepted (exit 0), {g('usage', 0)} usage errors (64), {g('changes', 0)} "
        f"changes (2); {g('internal errors', 0)} internal errors, {g('hangs', 0)} hangs, "
        f"{g('odd exit', 0)} odd exits; slowest run {g('slowest_ms', 0) / 1000:.1f} s")
    per_command = sorted((k, v) for k, v in total.items() if ": " in k)
    if per_command:
        terminalreporter.write_line("  " + ", ".join(f"{k} {v}" for k, v in per_command))
