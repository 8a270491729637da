"""Rules: sovereignty."""

from __future__ import annotations

from ..findings import Severity
from .base import Issue, rule
