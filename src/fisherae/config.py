"""Loading and validating the YAML configuration against the package's JSON schema.

Numbers are taken as numbers wherever the schema asks for one, however they reached the
config: PyYAML reads YAML 1.1, in which ``1e-3`` (no dot) is a string, and Snakemake's
``--config key=[0,1]`` yields the list's items as strings. ``coerce_config`` converts such
strings where (and only where) the schema says integer, number, boolean or null; what
cannot be converted is refused by ``validate_config`` with a message naming the key, where
the value came from and how to write it."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
from collections.abc import Mapping
from importlib import resources
from pathlib import Path

import jsonschema
import yaml

from fisherae.errors import ConfigError


# YAML 1.2 (core schema) numbers: ``1e-3``, ``1E5``, ``-2e-4`` as well as ``0.001``, ``+3``.
_INT = re.compile(r"[-+]?[0-9]+")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_BOOLS = {"true": True, "false": False}
_NULLS = {"null", "~", ""}


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


def _resolve(node: dict, root: dict) -> dict:
    """``node`` with a local ``$ref`` (``#/$defs/...``) followed."""
    while isinstance(node, dict) and isinstance(node.get("$ref"), str) and node["$ref"].startswith("#/"):
        target = root
        for part in node["$ref"][2:].split("/"):
            target = target[part]
        node = target
    return node if isinstance(node, dict) else {}


def _types(node: dict) -> set[str]:
    kind = node.get("type", ())
    return {kind} if isinstance(kind, str) else set(kind)


def _coerce_scalar(value, node: dict):
    """``value`` converted to the scalar type ``node`` asks for, where that is unambiguous."""
    types = _types(node)
    if isinstance(value, str):
        text = value.strip()
        if "integer" in types and _INT.fullmatch(text):
            return int(text)
        if "integer" in types and _FLOAT.fullmatch(text) and float(text).is_integer():
            return int(float(text))  # 1e4 where a count is asked for
        if "number" in types and _INT.fullmatch(text):
            return int(text)
        if "number" in types and _FLOAT.fullmatch(text):
            return float(text)
        if "boolean" in types and text.lower() in _BOOLS:
            return _BOOLS[text.lower()]
        if "null" in types and text.lower() in _NULLS:
            return None
    elif isinstance(value, float) and "integer" in types and "number" not in types and value.is_integer():
        return int(value)  # 1.0e4 where a count is asked for: range() and friends need an int
    return value


def coerce_config(config, schema_: dict | None = None):
    """A copy of ``config`` with strings (and integral floats) converted where the schema
    expects an integer, number, boolean or null; everything else is left as it is (a string
    where the schema wants a string is never touched), so that validation reports it."""
    root = schema() if schema_ is None else schema_
    return _coerce(copy.deepcopy(config), root, root)


def _coerce(value, node: dict, root: dict):
    node = _resolve(node, root)
    if isinstance(value, dict):
        properties = node.get("properties", {})
        extra = node.get("additionalProperties")
        for key in list(value):
            sub = properties.get(key, extra if isinstance(extra, dict) else None)
            if sub is not None:
                value[key] = _coerce(value[key], sub, root)
        return value
    if isinstance(value, list):
        items = node.get("items")
        if isinstance(items, dict):
            return [_coerce(item, items, root) for item in value]
        return value
    return _coerce_scalar(value, node)


def validate_config(config: dict, source: str = "config", command_line: Mapping | None = None) -> dict:
    """A validated copy of ``config`` with defaults filled in; ConfigError names the bad key.

    ``source`` names where ``config`` came from (a file, or files joined by " + "); the keys
    of ``command_line`` (Snakemake's ``--config`` values) are reported as coming from there."""
    if not isinstance(config, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level, got {type(config).__name__}")
    schema_ = schema()
    config = coerce_config(config, schema_)
    validator = _with_defaults(jsonschema.Draft202012Validator)(schema_)
    errors = sorted(validator.iter_errors(config), key=lambda e: list(e.absolute_path))
    if errors:
        command_line = command_line or {}
        from_cli = [bool(e.absolute_path) and _from_command_line(list(e.absolute_path), command_line)
                    for e in errors]
        lines = [_describe(e, source, cli) for e, cli in zip(errors, from_cli)]
        if all(from_cli):
            head = f"invalid configuration given with --config (on top of {source})"
        elif any(from_cli):
            head = f"{source} + --config: invalid configuration"
        else:
            head = f"{source}: invalid configuration"
        raise ConfigError(f"{head}:\n" + "\n".join(lines))
    _check_run_models(config, "--config" if "run_models" in (command_line or {}) else source)
    return config


def _check_run_models(config: dict, source: str) -> None:
    """ConfigError where ``run_models`` names a model that ``models`` does not configure."""
    unknown = [name for name in config.get("run_models", []) if name not in config["models"]]
    if unknown:
        raise ConfigError(f"{source}: run_models names {', '.join(unknown)}, not an entry of models "
                          f"({', '.join(config['models'])}); name models that the config defines")


def load_config(path: str | Path) -> dict:
    """Read, validate and default-fill a YAML configuration file."""
    path = Path(path)
    if not path.is_file():
        problem = "is not a file" if path.exists() else "does not exist"
        raise ConfigError(f"config file {path} {problem}; pass --config with one of config/*.yaml")
    try:
        config = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from err
    return validate_config(config, str(path))


def model_setting(config: dict, model: str, key: str):
    """``models.<model>.<key>`` where the model's entry sets it, else ``training.<key>`` (the
    prior's ``poly_order`` and ``poly_normalisable``)."""
    return config["models"][model].get(key, config["training"][key])


def freeze_config(config: dict, results: str | Path) -> Path:
    """``config`` written once to ``<results>/configs/<hash>.yaml``, named by the sha256 of its
    text, and that path: the file a Snakemake DAG's jobs read. A file of that name is never
    rewritten, so no other invocation (dry or real, with any config) changes what a job reads."""
    text = ("# The configuration of a Snakemake DAG, named by its hash; every job of that DAG reads it.\n"
            + yaml.safe_dump(json.loads(json.dumps(config)), sort_keys=False))
    path = Path(results, "configs", f"{hashlib.sha256(text.encode()).hexdigest()[:16]}.yaml")
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(text)
            os.link(tmp, path)  # appears complete, and only if no other invocation made it first
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    return path


def config_line(command: str, path: str | Path) -> str:
    """The line each command first writes to stderr (under Snakemake, its log's first line): the
    config it read."""
    return f"fisherae {command}: config {path}"


def config_named_in(log: Path) -> str | None:
    """The config path a job's log names on its first line (``config_line``), if any."""
    first = log.read_text(errors="replace").partition("\n")[0] if log.is_file() else ""
    found = re.fullmatch(r"fisherae [\w-]+: config (.+)", first)
    return found and found.group(1)


def _from_command_line(path: list, command_line: Mapping) -> bool:
    """Whether the value at ``path`` was given (or overridden) by ``--config``."""
    node = command_line
    for part in path:
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return False
        if not isinstance(node, (Mapping, list)):
            return True  # a scalar replaces everything below it
    return True


def _example(error: jsonschema.ValidationError, expected: set[str]) -> str:
    """A valid value of the kind the schema asks for at ``error``'s key, as YAML flow text
    (a list where the bad value is a list's item)."""
    integer = "integer" in expected and "number" not in expected
    if isinstance(list(error.absolute_path)[-1], int):
        return "[0,1,2]" if integer else "[0.0,1.0e-3]"
    value = error.schema.get("default")
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        value = 1 if integer else 1e-3
    if isinstance(value, float) and value != 0 and abs(value) < 1e-2:
        return f"{value:.1e}".replace("e-0", "e-")  # 1.0e-3: a number in YAML 1.1 as well
    return str(value)


def _describe(error: jsonschema.ValidationError, source: str = "config", from_cli: bool = False) -> str:
    """One line naming the bad key (marked "(from --config)" where the value came from there)."""
    path = list(error.absolute_path)
    key = ".".join(str(p) for p in path) or "<top level>"
    if from_cli:
        key += " (from --config)"
    if error.validator == "additionalProperties":
        extra = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        allowed = ", ".join(sorted(error.schema.get("properties", {})))
        return f"  - {key}: unknown key(s) {', '.join(map(repr, extra))}; allowed here: {allowed}"
    expected = _types(error.schema) if error.validator == "type" else set()
    if isinstance(error.instance, str) and expected & {"integer", "number"}:
        what = "an integer" if "integer" in expected and "number" not in expected else "a number"
        example = _example(error, expected)
        # The top-level key and the value to write there, e.g. seeds=[0,1,2] for seeds.0.
        top = path[0] if path and not isinstance(path[0], int) else key
        leaf = next((p for p in reversed(path) if not isinstance(p, int)), key)
        if from_cli:
            sample = _cli_sample(path, example)
            how = f"give numbers unquoted, e.g. --config '{sample}', or set {top} in a --configfile"
        else:
            how = f"write it as a plain number without quotes, e.g. `{leaf}: {example}`"
        return f"  - {key}: {error.instance!r} is not {what}; {how}"
    return f"  - {key}: {error.message}"


def _cli_sample(path: list, example: str) -> str:
    """``key=value`` for ``--config``, nesting dicts as YAML flow mappings."""
    names = [p for p in path if not isinstance(p, int)]
    value = example
    for name in reversed(names[1:]):
        value = f"{{{name}: {value}}}"
    return f"{names[0]}={value}".replace(", ", ",")
