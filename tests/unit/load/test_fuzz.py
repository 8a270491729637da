"""Thousands of mutated and garbage documents: validate and inspect never raise."""

from __future__ import annotations

import copy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from factoryctl.cli import run
from factoryctl.load import load_text
from factoryctl.session import check
from tests.helpers import reference_doc, write_doc

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=True),
    st.text(max_size=40), st.sampled_from(["", "0", "-1", "1e999", "H100", "$(rm -rf /)", "{{ x }}", "a\nb", "..", "r01"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)),
    max_leaves=12,
)


def _paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, prefix + (i,))


REF_PATHS = [p for p in _paths(reference_doc()) if p]


def _mutate(doc, path, value, mode):
    cur = doc
    for part in path[:-1]:
        cur = cur[part]
    last = path[-1]
    if mode == "delete":
        del cur[last]
    elif mode == "rename" and isinstance(cur, dict):
        cur[str(last) + "x"] = cur.pop(last)
    else:
        cur[last] = value


def _check_never_raises(doc, tmp_path):
    c = check(write_doc(doc, tmp_path / "f.yaml"))
    for f in c.findings:
        assert f.code and f.message, f
        assert not f.code.startswith("INT"), f"internal failure: {f.message}"
    return c


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    muts=st.lists(st.tuples(st.sampled_from(REF_PATHS), values, st.sampled_from(["set", "delete", "rename"])), min_size=1, max_size=4)
)
def test_mutated_reference_never_raises(tmp_path, muts):
    doc = reference_doc()
    for path, value, mode in muts:
        try:
            _mutate(doc, path, copy.deepcopy(value), mode)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation removed this path
    _check_never_raises(doc, tmp_path)


@settings(max_examples=1500, deadline=None)
@given(text=st.text(max_size=300))
def test_garbage_text_never_raises(text):
    from factoryctl.load import LoadError

    try:
        load_text(text)
    except LoadError as e:
        assert e.findings and all(f.code.startswith("SCH") for f in e.findings)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=values)
def test_garbage_documents_through_the_cli_exit_cleanly(tmp_path, doc, capsys):
    p = write_doc(doc, tmp_path / "g.yaml")
    for cmd in (["validate", str(p)], ["inspect", str(p), "--format", "json"]):
        rc = run(cmd)
        assert rc in (0, 1), (cmd, rc)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    assert "internal error" not in captured.err


@settings(max_examples=500, deadline=None)
@given(text=st.text(max_size=80), scheme=st.sampled_from(["http", "https", "oci", "s3", "hf", "git+ssh"]))
def test_airgap_scan_never_raises_on_any_text(text, scheme):
    from factoryctl.resolve.airgap import external_reference
    from tests.helpers import REFERENCE

    f = check(REFERENCE).factory
    for candidate in (text, f"{scheme}://{text}", f"[{scheme}://{text}]", f"{text} {scheme}://x]{text}"):
        external_reference(f, candidate)
        external_reference(f, candidate, image=True)
