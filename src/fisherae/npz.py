"""NPZ files (the latent samples of ``sample``, the t-SNE embeddings of ``latent``): written
atomically under whatever name the caller gives, read whole with one kind of error.

``numpy.savez`` appends ``.npz`` to a file name that lacks it, which would leave the atomic
write's temporary file under another name than the one it renames; through an open file it
writes exactly where it is told. ``numpy.load`` fails on a file that is not an NPZ in several
ways (a truncated archive, a single ``.npy`` array, pickled objects); ``read_npz`` makes each of
them a ValueError, so a reader names the file and the remedy in one place."""

from __future__ import annotations

import zipfile
import zlib
from pathlib import Path

import numpy as np

from fisherae.checkpoint import atomic_write


def write_npz(path: str | Path, arrays: dict[str, np.ndarray]) -> Path:
    """``arrays`` as an (uncompressed) NPZ at ``path``, exactly that name, atomically."""
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as file:
            np.savez(file, **arrays)
    return atomic_write(path, write)


def read_npz(path: str | Path) -> dict[str, np.ndarray]:
    """Every array of the NPZ at ``path``; OSError where it cannot be opened, ValueError where it
    is not a whole NPZ archive of plain arrays (truncated, a single array, pickled objects)."""
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError(f"it holds a single array of shape {loaded.shape}, not an NPZ archive")
        with loaded:
            return {name: loaded[name] for name in loaded.files}
    except (zipfile.BadZipFile, EOFError, zlib.error) as err:
        raise ValueError(f"not a whole NPZ archive: {err}") from err
