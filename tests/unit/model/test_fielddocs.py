"""model/fielddocs.py: one description per field, read by the JSON Schema and the field reference."""

from __future__ import annotations

import json

from factoryctl.cli import run
from factoryctl.model import Factory
from factoryctl.model.fielddocs import FIELDS, UNITS


def model_fields() -> set[str]:
    """"<class>.<field>" of every model reachable from Factory."""
    import inspect
    import typing

    from pydantic import BaseModel

    seen: set[type] = set()
    out: set[str] = set()

    def walk(ann) -> None:
        if inspect.isclass(ann) and issubclass(ann, BaseModel):
            if ann in seen:
                return
            seen.add(ann)
            for name, info in ann.model_fields.items():
                out.add(f"{ann.__name__}.{name}")
                walk(info.annotation)
            return
        for a in typing.get_args(ann):
            walk(a)

    walk(Factory)
    return out


def test_every_field_has_a_description_and_every_entry_a_field():
    fields = model_fields()
    assert sorted(set(fields) - set(FIELDS)) == [], "give these fields a description in model/fielddocs.py"
    assert sorted(set(FIELDS) - set(fields)) == [], "model/fielddocs.py describes fields the model lacks"
    assert set(UNITS) <= set(FIELDS)


def test_schema_carries_the_descriptions_for_hover(capsys):
    assert run(["schema"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["properties"]["site"]["description"] == FIELDS["Factory.site"]
    rack = doc["$defs"]["Rack"]["properties"]["power_kw"]
    assert rack["description"] == "Usable IT power budget of the rack. Unit: kW."
    assert rack["maximum"] == 1000 and rack["exclusiveMinimum"] == 0  # the constraints are untouched
    for name, d in doc["$defs"].items():
        for field, prop in d.get("properties", {}).items():
            assert prop.get("description"), f"{name}.{field} has no description in the schema"


def test_descriptions_leave_the_fields_alone():
    # The schema gets them through Strict's json_schema_extra; no field's annotation or
    # FieldInfo changes, so validation and rendered output (tests/golden) cannot move.
    from factoryctl.model.common import Strict
    from factoryctl.model.fielddocs import add_descriptions

    assert Strict.model_config["json_schema_extra"] is add_descriptions
    assert Factory.model_fields["site"].description is None
