"""Loading and validating the YAML configuration against the package's JSON schema."""

from __future__ import annotations

import copy
import json
from importlib import resources
from pathlib import Path

import jsonschema
import yaml


class ConfigError(ValueError):
    """A configuration that does not match the schema; the message names the key."""


def schema() -> dict:
    """The JSON schema every configuration must satisfy (also used by the Snakefile)."""
    return json.loads(resources.files("fisherae").joinpath("schemas/config.schema.json").read_text())


def _with_defaults(validator_class):
    """A validator that fills in each property's schema default before validating it."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema_):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if "default" in sub and name not in instance:
                    instance[name] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, schema_)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def validate_config(config: dict, source: str = "config") -> dict:
    """A validated copy of ``config`` with defaults filled in; ConfigError names the bad key."""
    if not isinstance(config, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(config).__name__}")
    config = copy.deepcopy(config)
    schema_ = schema()
    validator = _with_defaults(jsonschema.Draft202012Validator)(schema_)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        raise ConfigError(f"{source}: invalid configuration:\n" + "\n".join(_describe(e) for e in errors))
    return config


def load_config(path: str | Path) -> dict:
    """Read, validate and default-fill a YAML configuration file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist; pass --config with one of config/*.yaml")
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    return validate_config(config, str(path))


def _describe(error: jsonschema.ValidationError) -> str:
    key = ".".join(str(p) for p in error.absolute_path) or "<top level>"
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        allowed = ", ".join(sorted(error.schema.get("properties", {})))
        return f"  - {key}: unknown key(s) {', '.join(map(repr, extra))}; allowed here: {allowed}"
    return f"  - {key}: {error.message}"
