"""Atomic file writing and the saved-model format (``model.pt``) every later stage reads.

Nothing already produced is lost or half-written: every output goes to a temporary file
in the destination's directory and is then renamed over the destination (``os.replace``
is atomic on POSIX and Windows when both are on one file system)."""

from __future__ import annotations

import os
import pickle
import secrets
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from fisherae.errors import CheckpointError
from fisherae.models import AutoEncoder, ModelSpec

MODEL_FORMAT = "fisherae-model-v1"
# The files of a training run (fisherae.training writes them): the resumable state after every
# epoch, in its own format, and the final model file.
CHECKPOINT_FORMAT, CHECKPOINT_FILE, MODEL_FILE = "fisherae-checkpoint-v1", "checkpoint.pt", "model.pt"
SNAPSHOT_DIR = "snapshots"  # snapshots/epoch<E>.pt beside model.pt: the model after epoch E (training.snapshot_epochs)
RETRAIN = "retrain it with `python -m fisherae train --config CFG --dataset D --model M --seed S --outdir DIR`"


def atomic_write(path: str | Path, write_fn: Callable[[Path], Any]) -> Path:
    """Call ``write_fn(tmp_path)`` to write a temporary file next to ``path``, then rename
    it to ``path``. On any error the temporary file is removed and ``path`` is untouched.

    ``write_fn`` receives a path whose suffix matches ``path``'s (some writers, e.g.
    ``numpy.savez`` or matplotlib's ``savefig``, choose the format from the suffix)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A fresh unique name that write_fn creates itself, so the file gets the usual (umask) mode.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp{path.suffix}")
    try:
        write_fn(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save(obj, path)``, atomically."""
    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path``, atomically (CSV, Markdown, JSON)."""
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def torch_load(path: str | Path, what: str, remedy: str, map_location: Any = "cpu") -> dict:
    """``torch.load`` of a dict saved by this package (tensors and plain Python values
    only), with a CheckpointError naming the path, the problem and ``remedy``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} {path} does not exist; {remedy}")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile,
            struct.error) as err:
        detail = str(err).split(". ")[0].strip() or type(err).__name__
        raise CheckpointError(f"{what} {path} is truncated or corrupt (torch.load: {detail}); "
                              f"delete it and {remedy}") from err
    if not isinstance(obj, dict):
        raise CheckpointError(f"{what} {path} is not a fisherae file (holds a {type(obj).__name__}); {remedy}")
    return obj


def save_model(path: str | Path, model: AutoEncoder, metadata: dict) -> Path:
    """Write ``model`` (its ModelSpec and weights) and ``metadata`` (plain Python values and
    tensors, so that ``torch.load(weights_only=True)`` reads it back) to ``path``, atomically."""
    _check_plain(metadata, "metadata")
    payload = {
        "format": MODEL_FORMAT,
        "spec": model.spec.to_dict(),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "metadata": metadata,
    }
    return atomic_torch_save(payload, path)


def load_model(path: str | Path, map_location: Any = "cpu") -> AutoEncoder:
    """Rebuild the AutoEncoder saved by ``save_model`` at ``path``, in eval mode."""
    return model_from_payload(load_model_payload(path, map_location), path, map_location)


def model_from_payload(payload: dict, path: str | Path, map_location: Any = "cpu") -> AutoEncoder:
    """The AutoEncoder of a checked model-file ``payload`` (read from ``path``), in eval mode."""
    try:
        model = AutoEncoder(ModelSpec(**payload["spec"]))
        model.load_state_dict(payload["state_dict"])
    except (TypeError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"model file {path} does not match this version of fisherae ({err}); "
                              f"{RETRAIN}") from err
    return model.to(map_location).eval()


def load_model_payload(path: str | Path, map_location: Any = "cpu") -> dict:
    """The checked dict behind ``model.pt``: format, spec, state_dict and metadata."""
    payload = torch_load(path, "model file", RETRAIN, map_location)
    if payload.get("format") == CHECKPOINT_FORMAT:
        raise CheckpointError(_training_checkpoint_message(Path(path), payload))
    if payload.get("format") != MODEL_FORMAT or not {"spec", "state_dict"} <= payload.keys():
        raise CheckpointError(f"model file {path} is not a fisherae model (format {payload.get('format')!r}, "
                              f"expected {MODEL_FORMAT!r}); {RETRAIN}")
    if not all(isinstance(payload.get(key, {}), dict) for key in ("spec", "state_dict", "metadata")):
        raise CheckpointError(f"model file {path} is not a fisherae model (its spec, state_dict and metadata "
                              f"must be dicts); {RETRAIN}")
    return payload


def _training_checkpoint_message(path: Path, payload: dict) -> str:
    """Why a training checkpoint is not a model file, and which file to pass instead."""
    epoch = payload.get("epoch")
    at = f" (after epoch {epoch})" if isinstance(epoch, int) else ""
    model = path.parent / MODEL_FILE
    head = (f"{path} is a training checkpoint{at} ({CHECKPOINT_FORMAT}, the state `train` resumes "
            f"from), not a model file")
    if model.is_file():
        return f"{head}; pass --checkpoint {model}, the model file training wrote beside it"
    return (f"{head}; the model file {model} does not exist yet because training has not finished: finish it "
            f"by rerunning the same `python -m fisherae train ... --outdir {path.parent}` command (it resumes from "
            f"this checkpoint), then pass --checkpoint {model}")


def _check_plain(value: Any, where: str) -> None:
    """Raise TypeError for anything ``torch.load(weights_only=True)`` would refuse."""
    if isinstance(value, dict):
        for key, item in value.items():
            _check_plain(key, f"{where} key")
            _check_plain(item, f"{where}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _check_plain(item, f"{where}[{index}]")
    elif not (value is None or type(value) in (str, int, float, bool) or isinstance(value, torch.Tensor)):
        raise TypeError(f"{where} is a {type(value).__name__}; save plain Python values or tensors")
