"""The configuration keys each command reads: one declaration, from which come the Snakemake
rules' rerun triggers (``rerun_settings``), the training fingerprint (``TRAINED``) and the view
through which every command reads its config (``ConfigView``, which refuses an undeclared key).

A key is a dotted path into the validated config and stands for its whole subtree; ``{dataset}``
and ``{model}`` stand for the job's data set and model, ``*`` for every entry at that level.
A command's keys are of three kinds:

- ``determines``: their values shape the command's outputs, so its rule reruns when one changes;
- ``checks``: the training settings, read only to refuse a model file trained under others (the
  model file, an input of the rule, carries them: a change reruns ``train`` and so the rule);
- ``INERT``: keys no output depends on, which any command may read and none reruns for."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from fisherae.paper import TABLE1

# Keys that cannot change any output, and why: where things live, and how fast they run.
INERT = {
    "device": "which device runs a job, not what it computes (training.tf32 says how a GPU trains)",
    "jobs_per_gpu": "how many jobs share a GPU, not what any of them computes",
    "training.threads": "CPU threads per job: speed only",
    "training.num_workers": "no longer used; accepted so that older configs validate",
    "training.step_mode": "eager and CUDA-graph steps do the same arithmetic",
    "datasets.*.root": "where the data lives; source, n_train and n_test say which data it is",
    "datasets.*.download": "whether missing data may be fetched, not which data it is",
}
_INERT_PATHS = [tuple(key.split(".")) for key in INERT]
# Keys added (or taken out of INERT) after outputs were made without them, with the value those
# outputs were made with: a job's rerun params leave such a key out while it holds that value, so
# that its arrival reruns nothing (a model file without it counts as trained with it:
# fisherae.training). Keys added before this list (validation_size, the WAE-GAN cost_scale) are in
# existing jobs' params already.
ADDED = {"training.tf32": True, "evaluation.fid.inception_weights": None}
# The keys in which the parts of one reproduction (REPRODUCTION.md) may differ: which runs each
# made (its seeds, a model's own seeds, its models), and where it wrote them.
PART_KEYS = ("seeds", "models.*.seeds", "run_models", "results")

_DATA = ("datasets.{dataset}.source", "datasets.{dataset}.n_train", "datasets.{dataset}.n_test")
_TEST_SPLIT = ("datasets.{dataset}.source", "datasets.{dataset}.n_test")
# What the weights `train` writes depend on: the training fingerprint (a checkpoint resumes only
# under these values) and what every command that reads a model file checks it against.
# training.epochs is not part of it: a checkpoint at epoch e resumes under any epochs >= e.
TRAINED = (*_DATA, "datasets.{dataset}.validation_size", "datasets.{dataset}.latent_dim", "datasets.{dataset}.width", "datasets.{dataset}.wae_lambda",
           "models.{model}.method", "models.{model}.prior", "models.{model}.fisher_variant",
           "models.{model}.poly_order", "models.{model}.poly_normalisable",
           "training.batch_size", "training.lr", "training.betas", "training.n_samples", "training.decoder_var",
           "training.poly_order", "training.poly_normalisable", "training.wae_gan", "training.tf32")
_MODEL_FILE = (*TRAINED, "training.epochs")
# The t-SNE settings; not evaluation.latent.full_test_set_seeds, which only the Snakefile reads: it says
# whether the DAG also runs `latent --all-test-points`, not what any job computes.
_LATENT = tuple(f"evaluation.latent.{key}" for key in ("sigma2", "n_points", "seeds", "n_clusters", "tsne_perplexity"))
_ROLES = ("models.*.method", "models.*.prior", "models.*.fisher_variant", "models.*.poly_normalisable",
          "training.poly_normalisable")  # a model's role (fisherae.paper.ROLES)


@dataclass(frozen=True)
class Reads:
    """The keys one command reads (see the module docstring)."""

    determines: tuple[str, ...]
    checks: tuple[str, ...] = ()


READS = {
    "data": Reads(_DATA),
    "train": Reads((*TRAINED, "training.epochs", "training.snapshot_epochs")),
    "sample": Reads(("evaluation.sampling", "evaluation.fid.n_draws", "evaluation.fid.n_samples"), _MODEL_FILE),
    "noise-sweep": Reads((*_TEST_SPLIT, "evaluation.noise_sweep.sigma2.{dataset}", "evaluation.noise_sweep.batch_size",
                          "evaluation.noise_sweep.noise_seed"), _MODEL_FILE),
    "grids": Reads((*_TEST_SPLIT, "evaluation.grids.noise_sigma2.{dataset}", "evaluation.grids.n_images",
                    "evaluation.grids.n_samples", "evaluation.noise_sweep.noise_seed"), _MODEL_FILE),
    "latent": Reads((*_TEST_SPLIT, *_LATENT, "evaluation.noise_sweep.noise_seed",
                     "evaluation.noise_sweep.batch_size"), _MODEL_FILE),
    "diagnose": Reads((*_DATA, "evaluation.noise_sweep.batch_size"), _MODEL_FILE),
    "train-classifier": Reads((*_DATA, "training.batch_size", "evaluation.fid.classifier_epochs")),
    # inception_weights: without the file a fid job writes "unavailable" rows; setting the path reruns it
    "fid": Reads((*_TEST_SPLIT, "evaluation.fid.features", "evaluation.fid.batch_size",
                  "evaluation.fid.inception_weights"), _MODEL_FILE),
    "figure": Reads(("models.*.label", "training.epochs", "datasets.{dataset}.source", "datasets.{dataset}.width")),
    "table1": Reads(("models.*.label", *_ROLES, *(f"datasets.{TABLE1.dataset}.{key}" for key in TABLE1.data),
                     *(f"training.{key}" for key in TABLE1.training), "models.*.poly_order", "training.poly_order",
                     "training.poly_normalisable")),  # the paper's setting (fisherae.table1.paper_setting_gaps)
    "claims": Reads(("results", "seeds", "models.*.label", *_ROLES, "evaluation.grids.noise_sigma2.mnist")),
}


class UndeclaredConfigKey(RuntimeError):
    """A command read a config key that ``READS`` does not declare for it (a bug in the command or
    the declaration, never in the user's config)."""


def _parts(key: str, wildcards: Mapping[str, str]) -> tuple[str, ...]:
    return tuple(key.format(**wildcards).split("."))


def _matches(pattern: tuple[str, ...], path: tuple[str, ...]) -> bool:
    return all(p in ("*", part) for p, part in zip(pattern, path))


def _under(path: tuple[str, ...], patterns) -> bool:
    """Whether ``path`` is at or below one of ``patterns``."""
    return any(len(path) >= len(p) and _matches(p, path) for p in patterns)


class ConfigView(Mapping):
    """A read-only view of a validated config that lets ``command`` read only the keys it
    declares (and the INERT ones); any other key raises UndeclaredConfigKey. Listing the
    entries of a level (iteration, ``in``, ``len``) is always allowed."""

    def __init__(self, config: Mapping, command: str, path: tuple[str, ...] = (), allowed=None, **wildcards: str):
        self._node, self._command, self._path = config, command, path
        if allowed is None:
            reads = READS[command]
            allowed = [_parts(k, wildcards) for k in (*reads.determines, *reads.checks)] + _INERT_PATHS
        self._allowed = allowed

    def __getitem__(self, key):
        path = (*self._path, str(key))
        if _under(path, self._allowed):
            return self._node[key]
        if not any(len(path) < len(p) and _matches(p, path) for p in self._allowed):
            raise UndeclaredConfigKey(f"command {self._command!r} read config key {'.'.join(path)!r}, which "
                                      f"fisherae.config_keys.READS does not declare for it; declare it there")
        return ConfigView(self._node[key], self._command, path, self._allowed)

    def __contains__(self, key) -> bool:
        return key in self._node

    def __iter__(self) -> Iterator:
        return iter(self._node)

    def __len__(self) -> int:
        return len(self._node)


def resolve(config: Mapping, key: str, wildcards: Mapping[str, str]) -> dict[str, object]:
    """``{dotted key: value}`` for every config entry that ``key`` names (``*`` expanded, entries
    that are not set left out), with the INERT keys below it removed."""
    found = {(): config}
    for part in _parts(key, wildcards):
        found = {(*path, name): node[name] for path, node in found.items() if isinstance(node, Mapping)
                 for name in (node if part == "*" else [part]) if name in node}
    return {".".join(path): _without_inert(path, value) for path, value in found.items()
            if not _under(path, _INERT_PATHS)}


def _without_inert(path: tuple[str, ...], value):
    if not isinstance(value, Mapping):
        return value
    return {k: _without_inert((*path, k), v) for k, v in value.items() if not _under((*path, k), _INERT_PATHS)}


def changed_values(old: Mapping, new: Mapping, prefix: str = "") -> list[tuple[str, object, object]]:
    """(dotted key, old value, new value) for each leaf whose value differs between two nested
    mappings (a key missing on one side counts as None there)."""
    changed = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            changed += changed_values(a, b, f"{prefix}{key}.")
        elif a != b:
            changed.append((f"{prefix}{key}", a, b))
    return changed


def rerun_settings(command: str, config: Mapping, wildcards: Mapping[str, str]) -> str:
    """The values of the keys that determine ``command``'s outputs for a job with ``wildcards``,
    as JSON: the params of its Snakemake rule, so that a change to any of them reruns the job."""
    names = {name: wildcards[name] for name in ("dataset", "model") if name in wildcards}
    values = {}
    for key in READS[command].determines:
        values.update(resolve(config, key, names))
    return json.dumps({k: v for k, v in values.items() if k not in ADDED or v != ADDED[k]}, sort_keys=True)
