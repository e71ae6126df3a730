"""config.yaml is the commented, user-facing copy of the schema's defaults: the schema is the one
source of every default (Snakemake's ``validate`` fills them in), and this keeps the copy true."""
from __future__ import annotations

import pytest
import yaml

from conftest import REPO
from vacancy.common import config_defaults

SCHEMA = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
CONFIG = yaml.safe_load((REPO / "config.yaml").read_text())


def leaves(tree: dict, prefix: str = ""):
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            yield from leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def schema_leaves(node: dict, prefix: str = ""):
    for key, child in node.get("properties", {}).items():
        if child.get("type") == "object" and "properties" in child:
            yield from schema_leaves(child, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", child


@pytest.mark.parametrize("key, node", list(schema_leaves(SCHEMA)), ids=lambda v: str(v)[:40])
def test_every_schema_key_has_a_default(key, node):
    assert "default" in node, f"{key} has no default in the schema"


def test_config_yaml_holds_exactly_the_schema_defaults():
    expected = dict(leaves(config_defaults()))
    written = dict(leaves(CONFIG))
    assert sorted(written) == sorted(expected), "config.yaml and the schema list different keys"
    differ = {k: (written[k], expected[k]) for k in expected if written[k] != expected[k]}
    assert not differ, f"config.yaml value != schema default (config, schema): {differ}"


def test_a_config_with_only_one_key_gets_every_default_from_the_schema(tmp_path):
    """What users rely on: leave a key out of config.yaml and the schema's default applies."""
    from snakemake.utils import validate

    config = {"source": "folder"}
    validate(config, str(REPO / "workflow/schemas/config.schema.yaml"))
    assert config["triage"] == CONFIG["triage"] and config["tsne"] == CONFIG["tsne"]
    assert config["source"] == "folder" and config["results"] == CONFIG["results"]


@pytest.mark.parametrize("name, safe", [("a" * 64, True), ("a" * 65, False), ("new-york_2", True),
                                        ("../etc", False), ("SFBay", False), ("-x", False)])
def test_the_schema_and_the_demo_accept_the_same_location_names(name, safe):
    import jsonschema

    from vacancy.sources.demo import _check_locations

    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    config = {"demo": {"locations": [name]}}
    if safe:
        jsonschema.validate(config, schema)
        assert _check_locations([name]) == [name]
    else:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(config, schema)
        with pytest.raises(ValueError, match="unsafe location"):
            _check_locations([name])
