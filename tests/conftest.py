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
