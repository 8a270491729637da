"""inference[].engine_options: environment variables and extra flags, typed and checked."""

from __future__ import annotations

import pytest

from tests.helpers import check_doc, reference_doc


def _with(options: dict) -> dict:
    doc = reference_doc()
    doc["inference"][0]["engine_options"] = options
    return doc


def _schema_errors(checked) -> list[str]:
    return [f"{f.path}: {f.message} ({f.hint})" for f in checked.findings if f.severity.value == "error"]


def test_env_and_flags_are_accepted(tmp_path):
    c = check_doc(_with({"env": {"VLLM_CPU_KVCACHE_SPACE": 4, "VLLM_LOGGING_LEVEL": "DEBUG"},
                         "flags": {"enforce-eager": True, "swap-space": 4, "block-size": 16}}), tmp_path)
    assert not _schema_errors(c)
    assert c.factory.inference[0].engine_options.env["VLLM_CPU_KVCACHE_SPACE"] == 4


@pytest.mark.parametrize("options, says", [
    ({"env": {"1BAD": "x"}}, "not an environment variable name"),
    ({"env": {"A": "two words"}}, "is not one word"),
    ({"env": {"A": "$(id)"}}, "is not one word"),
    ({"flags": {"--enforce-eager": True}}, "not a long flag name"),
    ({"flags": {"Enforce": True}}, "not a long flag name"),
    ({"flags": {"tensor-parallel-size": 2}}, "inference[].tensor_parallel"),
    ({"flags": {"max-model-len": 2}}, "inference[].max_context"),
    ({"flags": {"enforce-eager": False}}, "is false"),
    ({"flags": {"x": "a;b"}}, "is not one word"),
    ({"other": {}}, ""),
])
def test_bad_options_are_refused_with_the_place_and_the_fix(tmp_path, options, says):
    errors = _schema_errors(check_doc(_with(options), tmp_path))
    assert errors and any("engine_options" in e for e in errors), errors
    assert any(says in e for e in errors), errors
