"""Component versions come from factoryctl/data/versions.yaml: the render reads them there and
every version the Ansible roles pin is a copy of it (no stray pinned literal)."""

from __future__ import annotations

import re

import yaml

from factoryctl.model.kubernetes import Kubernetes
from factoryctl.render import kube, kube_bench, versions
from factoryctl.render.versions import VERSIONS_FILE, components, pin_problems
from factoryctl.resources import templates_dir

ROLES = templates_dir() / "ansible" / "project" / "roles"
# a three-part release (v2.18.3, 25.7.0) or an image tag (/pause:3.10)
RELEASE = re.compile(r"(?<![\w.])v?\d+\.\d+\.\d+(?![\w.])|(?<=:)v?\d+\.\d+(?:[.-][\w.-]+)?(?=['\"\s)]|$)")
VERSION_KEY = re.compile(r"_(version|branch)$")


def _role_files():
    for p in sorted(ROLES.rglob("*")):
        if p.is_file() and not (p.parent.name == "meta" and p.name == "main.yml"):
            yield p  # not meta/main.yml: galaxy_info (min_ansible_version, licence)


def _code(text: str) -> str:
    """The text without YAML/Jinja comment lines (comments may name releases they explain)."""
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith(("#", "{#")))


def test_every_component_has_a_version_and_a_source():
    for c in components().values():
        assert c.version and c.source.startswith("https://"), c.name
        assert c.image or c.chart or c.repo or c.pins or c.name in ("cuda", "nvidia_driver", "kubernetes"), c.name


def test_every_pin_matches_versions_yaml():
    assert pin_problems() == []


def test_role_defaults_pin_no_version_that_versions_yaml_does_not_list():
    pinned = {(pin.path, c.version) for c in components().values() for pin in c.pins}
    for defaults in sorted(ROLES.glob("*/defaults/main.yml")):
        rel = defaults.relative_to(ROLES.parent).as_posix()
        for key, value in (yaml.safe_load(defaults.read_text()) or {}).items():
            if VERSION_KEY.search(key) and value not in ("", None):
                assert (rel, str(value)) in pinned, f"{rel}: {key}: {value} is not a pin of versions.yaml"


def test_no_stray_release_literal_in_the_roles():
    known = {c.version for c in components().values()}
    stray = []
    for p in _role_files():
        for m in RELEASE.finditer(_code(p.read_text())):
            if m.group(0) not in known:
                stray.append(f"{p.relative_to(ROLES)}: {m.group(0)}")
    assert stray == []


def test_the_render_reads_versions_yaml():
    assert kube.NETWORK_OPERATOR_RELEASE == versions.version("network_operator")
    assert kube.DOCA_DRIVER_VERSION == versions.version("doca_driver")
    assert kube.DEFAULT_IMAGES["vllm"] == "docker.io/vllm/vllm-openai:" + versions.version("vllm")
    assert kube.SYNC_IMAGE == versions.image("aws_cli")
    assert kube_bench.NCCL_TESTS_IMAGE == versions.image("nccl_tests_image")
    assert kube_bench.PYTORCH_IMAGE == versions.image("pytorch")
    assert Kubernetes.model_fields["version"].default == versions.version("kubernetes")


def test_no_python_module_keeps_its_own_copy_of_an_image_tag():
    refs = {c.image_ref for c in components().values() if c.image}
    for path in sorted((VERSIONS_FILE.parent.parent).rglob("*.py")):
        code = _code(path.read_text())  # docstrings and comments may quote an example
        for ref in refs:
            assert f'"{ref}"' not in code, f"{path.name} pins {ref}: read it from versions.yaml"


def test_write_pins_restores_a_changed_pin(tmp_path, monkeypatch):
    project = tmp_path / "ansible" / "project"
    defaults = project / "roles" / "cuda_nccl" / "defaults" / "main.yml"
    defaults.parent.mkdir(parents=True)
    defaults.write_text("---\ncuda_nccl_cuda_version: \"12-8\"\ncuda_nccl_tests_version: v0.0.1\n")
    monkeypatch.setattr(versions, "_project", lambda: project)
    assert any("cuda_nccl_tests_version: v0.0.1" in p for p in versions.pin_problems())
    assert "roles/cuda_nccl/defaults/main.yml" in versions.write_pins()
    assert defaults.read_text() == f"---\ncuda_nccl_cuda_version: \"12-8\"\ncuda_nccl_tests_version: {versions.version('nccl_tests')}\n"
