"""`factoryctl schema`: the JSON Schema of factory.yaml."""

from __future__ import annotations

import json
import sys

from .app import app


@app.command()
def schema() -> None:
    """Print the JSON Schema of factory.yaml (for editors via yaml-language-server)."""
    from ..model import Factory

    doc = Factory.model_json_schema()
    doc["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    doc["title"] = "factoryctl factory.yaml"
    sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")
