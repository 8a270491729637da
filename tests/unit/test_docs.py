from pathlib import Path

from factoryctl.docsgen import rules_markdown
from factoryctl.rules import REGISTRY

DOC = Path(__file__).resolve().parents[2] / "docs" / "rules.md"


def test_rules_md_is_generated_from_the_registry():
    assert DOC.read_text() == rules_markdown(), (
        "docs/rules.md is stale: run `python -m factoryctl.docsgen > docs/rules.md`"
    )


def test_every_rule_is_documented_with_a_title_and_a_reason():
    for code, r in REGISTRY.items():
        assert r.title, code
        assert len(r.doc) > 20, f"{code} needs a docstring saying what it checks and why"
        assert f"### {code}" in rules_markdown()


def test_registry_has_at_least_thirty_rules_across_every_area():
    assert len(REGISTRY) >= 30
    areas = {code[:3] for code in REGISTRY}
    assert {"NOD", "PWR", "FAB", "NET", "STO", "SLM", "K8S", "INF", "SOV"} <= areas


# --- docs/factory-yaml.md, the field reference (issue 17) ----------------------------------------

FIELDS_DOC = DOC.parent / "factory-yaml.md"


def test_factory_yaml_md_is_generated_from_the_model():
    from factoryctl.docsgen_fields import fields_markdown

    assert FIELDS_DOC.read_text() == fields_markdown(), (
        "docs/factory-yaml.md is stale: run `python -m factoryctl.docsgen_fields --write`"
    )


def _accepted_paths() -> list[str]:
    """Every field path factory.yaml accepts, walked from the pydantic model itself."""
    import inspect
    import typing

    from pydantic import BaseModel

    from factoryctl.model import Factory

    def models(ann):
        if inspect.isclass(ann) and issubclass(ann, BaseModel):
            return [(ann, False)]
        is_list = typing.get_origin(ann) is list
        return [(m, lst or is_list) for a in typing.get_args(ann) for m, lst in models(a)]

    out: list[str] = []

    def walk(cls, prefix: str) -> None:
        for name, info in cls.model_fields.items():
            path = f"{prefix}.{name}" if prefix else name
            out.append(path)
            for sub, is_list in models(info.annotation):
                walk(sub, path + ("[]" if is_list else ""))

    walk(Factory, "")
    return out


def test_factory_yaml_md_covers_every_field_the_model_accepts():
    text = FIELDS_DOC.read_text()
    paths = _accepted_paths()
    assert len(paths) > 250
    missing = [p for p in paths if (f"### `{p}`" if "." in p.replace("[]", "") else f"## {p}\n") not in text]
    assert missing == [], f"docs/factory-yaml.md does not document {missing[:10]}"
    for section in ("nodes[].hardware.power_kw", "facility.racks[].power_kw", "economics.capex_per_node"):
        block = text.split(f"### `{section}`", 1)[1].split("\n### ", 1)[0]
        for line in ("- type:", "- default:", "- read by:"):
            assert line in block, (section, line)


def test_field_reference_names_units_bounds_rules_and_examples():
    text = FIELDS_DOC.read_text()
    rack = text.split("### `facility.racks[].power_kw`", 1)[1].split("\n### ", 1)[0]
    assert "- unit: kW" in rack and "at most 1,000 kW for one rack (the densest racks" in rack
    assert "PWR001" in rack and "- example: `power_kw:" in rack
    tp = text.split("### `inference[].tensor_parallel`", 1)[1].split("\n### ", 1)[0]
    assert "INF002" in tp and "- default: `1`" in tp
    provider = text.split("### `site.provider`", 1)[1].split("\n### ", 1)[0]
    assert '`"lab"`' in provider and '`"maas"`' in provider  # the Literal's values
    assert "[docs/factory-yaml.md](docs/factory-yaml.md)" in (DOC.parents[1] / "README.md").read_text()
