"""`dcgmi diag -r N` in its table form and with `-j` (JSON). The table wraps long cells over
continuation rows with an empty first column; those are joined back to the row above.
JSON: DCGM 3 (`"DCGM GPU Diagnostic"`, results with `gpu_ids`/`gpu_id`) and DCGM 4
(`"DCGM Diagnostic"`, results with `entity_id`) (NVIDIA DCGM user guide, "dcgmi diag" JSON
output; NVIDIA/DCGM testing/python3 json schemas)."""

from __future__ import annotations

import json
import re

from .model import DiagResult, HealthInputError, ParsedSource, Versions
from .text import clean

_ROW = re.compile(r"^\|\s*(.*?)\s*\|\s*(.*?)\s*\|?\s*$")
_CATEGORY = re.compile(r"^[|+]-----\s+(\w+)\s+-")
_RESULT = re.compile(r"^(Pass|Fail|Skip|Warn)(?:\s*-\s*(?:All|GPUs?:\s*(.*)))?$", re.I)


def parse_table(text: str, name: str) -> ParsedSource:
    src = ParsedSource(name, "dcgmi-diag")
    category = None
    rows: list[list[str]] = []  # [name, value, category]
    for _, line in clean(text):
        if m := _CATEGORY.match(line):
            category = m.group(1)
            continue
        if line.startswith(("+", "|=")) or not line.startswith("|"):
            continue
        m = _ROW.match(line)
        if not m:
            continue
        key, value = m.group(1), m.group(2)
        if key == "Diagnostic" and value == "Result":
            continue
        if not key and rows:
            # a wrapped cell: DCGM cuts at the cell's width, inside words too, so a piece that
            # filled the cell joins the next without a space
            prev, full = rows[-1][1], rows[-1][3]
            cells = line.split("|")
            spaced = len(cells) > 2 and cells[2].startswith("  ")  # the wrap fell on a space
            if _RESULT.match(value):
                rows[-1][1] = prev + "\n" + value
            else:
                glued = full and not spaced and prev and not (prev[-1].islower() and value[:1].isupper())
                rows[-1][1] = prev + ("" if glued else " ") + value
            rows[-1][3] = _fills(line, value)
            continue
        rows.append([key, value, category or "", _fills(line, value)])
    meta = {k: v for k, v, c, _ in rows if c == "Metadata"}
    src.versions = Versions(driver=meta.get("Driver Version Detected"))
    last: DiagResult | None = None
    for key, value, cat, _ in rows:
        if cat == "Metadata":
            continue
        if key in ("Warning", "Error", "Info") and last is not None and key != "Error":
            last.detail = (last.detail + " " + value).strip()
            if key == "Warning" and last.result.lower() == "pass":
                last.result = "Warn"
            continue
        if key == "Error":
            last = DiagResult("Error", cat or None, "Fail", _gpus_in(value) or "All", value)
            src.facts.append(last)
            continue
        for part in value.split("\n"):
            m = _RESULT.match(part.strip())
            if not m:
                continue
            last = DiagResult(key, cat or None, m.group(1).capitalize(), (m.group(2) or "All").strip())
            src.facts.append(last)
    if not src.facts:
        raise HealthInputError(f"{name}: dcgmi diag table with no test result rows; truncated?")
    return src


def _fills(line: str, value: str) -> bool:
    """Whether `value` fills its cell (the second column of the table row `line`)."""
    cells = line.split("|")
    return len(cells) >= 3 and len(value) >= len(cells[2]) - 4


def _gpus_in(text: str) -> str:
    found = sorted({int(n) for n in re.findall(r"\bGPU\s*(\d+)", text)})
    return ", ".join(str(n) for n in found)


def parse_json(text: str, name: str) -> ParsedSource:
    start = text.find("{")
    try:
        doc = json.loads(text[start:])
    except ValueError as exc:
        raise HealthInputError(f"{name}: dcgmi diag -j output does not parse as JSON ({exc});"
                               " truncated? give the whole output") from None
    diag = doc.get("DCGM GPU Diagnostic") or doc.get("DCGM Diagnostic") if isinstance(doc, dict) else None
    if not isinstance(diag, dict) or not isinstance(diag.get("test_categories"), list):
        raise HealthInputError(f"{name}: JSON without \"DCGM GPU Diagnostic\".test_categories; not dcgmi diag -j output")
    src = ParsedSource(name, "dcgmi-diag-json")
    meta = doc.get("metadata") if isinstance(doc.get("metadata"), dict) else {}
    driver = doc.get("Driver Version Detected") or diag.get("Driver Version Detected") or \
        meta.get("Driver Version Detected")
    src.versions = Versions(driver=driver if isinstance(driver, str) else None)
    for cat in diag["test_categories"]:
        if not isinstance(cat, dict):
            continue
        for test in cat.get("tests") or []:
            if not isinstance(test, dict):
                continue
            results = [r for r in test.get("results") or [] if isinstance(r, dict)]
            if not results and isinstance(test.get("test_summary"), dict):
                results = [test["test_summary"]]  # DCGM 4: the summary stands for a test without entities
            for res in results:
                gpu = res.get("gpu_ids", res.get("gpu_id", res.get("entity_id", "All")))
                warnings = res.get("warnings") or res.get("errors") or []
                if isinstance(warnings, (str, dict)):
                    warnings = [warnings]
                texts = [w.get("warning") or w.get("error") or "" if isinstance(w, dict) else str(w) for w in warnings]
                info = res.get("info")
                if isinstance(info, list):
                    info = " ".join(str(i) for i in info)
                detail = " ".join(t for t in texts if t) or (str(info) if info else "")
                status = str(res.get("status", "")).capitalize() or "Skip"
                src.facts.append(DiagResult(str(test.get("name", "?")), cat.get("category"), status,
                                            str(gpu), detail, str(res.get("entity_group") or "GPU")))
    if not src.facts:
        raise HealthInputError(f"{name}: dcgmi diag -j output with no test results")
    return src
