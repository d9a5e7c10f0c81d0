"""config/README.md documents every config key, from the schema's descriptions (issue 11, item 6)."""

from __future__ import annotations

from pathlib import Path

from fisherae.config import schema
from fisherae.config_reference import MARKERS, reference_markdown, schema_entries, updated_readme

README = Path(__file__).resolve().parents[1] / "config/README.md"


def test_every_schema_entry_has_a_description():
    undescribed = [path for path, node, _ in schema_entries(schema()) if not node.get("description", "").strip()]
    assert not undescribed, f"add a description to these schema entries: {undescribed}"


def test_config_readme_is_the_one_generated_from_the_schema():
    text = README.read_text()
    assert text == updated_readme(text, schema()), "config/README.md is stale: run python -m fisherae.config_reference"


def test_every_schema_key_is_in_the_config_readme():
    """Key by key: the README's rows are exactly the schema's keys, each with its description."""
    text = README.read_text()
    generated = text[text.index(MARKERS[0]):text.index(MARKERS[1])]
    entries = schema_entries(schema())
    documented = [line.split(" | ")[0].removeprefix("| `").removesuffix("`")
                  for line in generated.splitlines() if line.startswith("| `")]
    assert documented == [path for path, _, _ in entries]
    assert {"training.lr", "models.<name>.method", "datasets.<dataset>.source", "jobs_per_gpu"} <= set(documented)
    for path, node, _ in entries:
        assert node["description"].replace("|", "\\|") in generated, path


def test_entries_walk_nested_named_and_shared_keys():
    tiny = {
        "$defs": {"part": {"type": "object", "required": ["a"], "properties": {"a": {"type": "integer"}}}},
        "properties": {
            "x": {"type": "object", "properties": {"y": {"type": "number", "default": 1}}},
            "p": {"$ref": "#/$defs/part"}, "q": {"$ref": "#/$defs/part"},
            "m": {"type": "object", "additionalProperties": {"type": "object", "properties": {"k": {"enum": [1]}}}},
        },
        "required": ["m"],
    }
    assert [(path, required) for path, _, required in schema_entries(tiny)] == [
        ("x", False), ("x.y", False), ("p", False), ("q", False), ("m", True), ("m.<name>", False),
        ("m.<name>.k", False), ("<part>.a", True)]
    table = reference_markdown({**tiny, "properties": {"x": tiny["properties"]["x"]}})
    assert "| `x.y` | number | `1` |  |" in table


def test_the_type_column_states_every_limit_the_schema_enforces():
    """Limits on a list's items, distinct items, a mapping's least entries and a pattern (its
    pipes escaped for the table) are shown, as a value out of them fails validation."""
    tiny = {"$defs": {}, "properties": {
        "s": {"type": "array", "items": {"type": "integer", "minimum": 0}, "minItems": 1, "uniqueItems": True},
        "b": {"type": "array", "items": {"type": "number", "minimum": 0, "exclusiveMaximum": 1}},
        "m": {"type": "object", "minProperties": 1},
        "d": {"type": "string", "pattern": "^(a|b)$"}}}
    table = reference_markdown(tiny)
    assert "| `s` | list of integers, each ≥ 0 (1+ items, distinct) |" in table
    assert "| `b` | list of numbers, each ≥ 0, each < 1 |" in table
    assert "| `m` | mapping (1+ entries) |" in table
    assert "| `d` | string (matching `^(a\\|b)$`) |" in table
