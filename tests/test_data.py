"""Data sets: the embedded stand-ins, real MNIST from ../shared/data, a fake CelebA tree in
torchvision's layout and its decode-once cache, the errors for missing data, and the
on-device batches (TensorBatches) of tensor-backed splits."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import Dataset, Subset, TensorDataset
from torchvision.datasets import CelebA

import fisherae.data
from fisherae.batches import TensorBatches, shuffled_order
from fisherae.data import (CACHE_DIR_ENV, DataError, ImageTensors, celeba_cache_meta, celeba_cache_path,
                           celeba_transform, image_shape, load_split, make_loader, split_tensors, to_float)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _no_cache_dir_from_the_environment(monkeypatch):
    """CelebA caches go beside each test's fake data, whatever the caller's environment."""
    monkeypatch.delenv(CACHE_DIR_ENV, raising=False)


def _cfg(source: str, **kw) -> dict:
    return {"source": source, "root": "data", "download": False, "n_train": None, "n_test": None, **kw}


def _stack(dataset) -> tuple[torch.Tensor, torch.Tensor]:
    xs, ys = zip(*(dataset[i] for i in range(len(dataset))))
    return torch.stack(xs), torch.stack([torch.as_tensor(y) for y in ys])


@pytest.mark.parametrize("name, sizes", [("mnist", {"train": 4000, "test": 1000}),
                                         ("celeba", {"train": 80, "test": 20})])
def test_embedded_shapes_ranges_and_determinism(name, sizes):
    shape = image_shape(name)
    for split, size in sizes.items():
        x, y = _stack(load_split(name, _cfg("embedded"), split))
        assert x.shape == (size, *shape) and x.dtype == torch.float32
        assert x.min() >= 0 and x.max() <= 1 and x.std() > 0.1  # real images, not blank
        assert y.dtype == torch.int64
        again, again_y = _stack(load_split(name, _cfg("embedded"), split))
        assert torch.equal(x, again) and torch.equal(y, again_y)
    train, test = (_stack(load_split(name, _cfg("embedded"), s))[0] for s in ("train", "test"))
    assert not {bytes(t.numpy()) for t in train} & {bytes(t.numpy()) for t in test}, "train and test overlap"


def test_embedded_mnist_is_class_balanced_and_labelled():
    _, y_train = _stack(load_split("mnist", _cfg("embedded"), "train"))
    _, y_test = _stack(load_split("mnist", _cfg("embedded"), "test"))
    assert torch.equal(torch.bincount(y_train), torch.full((10,), 400))
    assert torch.equal(torch.bincount(y_test), torch.full((10,), 100))
    assert y_train[:20].tolist() == list(range(10)) * 2  # any first-n cut is balanced


def test_embedded_celeba_keeps_only_the_lfw_faces_as_three_equal_channels():
    from skimage.data import lfw_subset

    x, y = _stack(load_split("celeba", _cfg("embedded"), "train"))
    assert (y == -1).all()
    assert torch.equal(x[:, 0], x[:, 1]) and torch.equal(x[:, 1], x[:, 2])
    faces, non_faces = lfw_subset()[:100], lfw_subset()[100:]
    down = torch.nn.functional.interpolate(x[:, :1], size=(25, 25), mode="area")[:, 0].double().numpy()
    for image in down[:5]:  # each resized image is closest to a face, not a non-face
        errors = [((pool - image) ** 2).mean(axis=(1, 2)).min() for pool in (faces, non_faces)]
        assert errors[0] < errors[1]


def test_n_train_and_n_test_take_the_first_items():
    full_x, full_y = _stack(load_split("mnist", _cfg("embedded"), "train"))
    cut = load_split("mnist", _cfg("embedded", n_train=30, n_test=7), "train")
    x, y = _stack(cut)
    assert len(cut) == 30 and torch.equal(x, full_x[:30]) and torch.equal(y, full_y[:30])
    assert len(load_split("mnist", _cfg("embedded", n_train=30, n_test=7), "test")) == 7
    with pytest.raises(DataError, match=r"datasets\.celeba\.n_train = 81.*only 80"):
        load_split("celeba", _cfg("embedded", n_train=81), "train")


def test_real_mnist_from_shared_data():
    cfg = _cfg("torchvision", root=str(SHARED_DATA), n_train=100)
    train = load_split("mnist", cfg, "train")
    x, y = _stack(train)
    assert len(train) == 100 and x.shape == (100, 1, 28, 28) and x.dtype == torch.float32
    assert x.min() == 0 and x.max() == 1 and y.dtype == torch.int64
    assert y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]  # the first MNIST training labels
    assert len(load_split("mnist", cfg, "test")) == 10000


def test_missing_mnist_root_names_the_files_and_the_fix(tmp_path):
    with pytest.raises(DataError) as err:
        load_split("mnist", _cfg("torchvision", root=str(tmp_path / "nowhere")), "train")
    message = str(err.value)
    assert str(tmp_path / "nowhere" / "MNIST" / "raw" / "train-images-idx3-ubyte") in message
    assert "t10k-labels-idx1-ubyte" in message and "download: true" in message


def test_unknown_data_set_source_or_split_is_a_clear_error():
    with pytest.raises(DataError, match="unknown data set 'cifar'"):
        load_split("cifar", _cfg("embedded"), "train")
    with pytest.raises(DataError, match=r"datasets\.mnist\.source: unknown source 'kaggle'"):
        load_split("mnist", _cfg("kaggle"), "train")
    with pytest.raises(DataError, match="unknown split 'valid'"):
        load_split("mnist", _cfg("embedded"), "valid")


def test_make_loader_order_depends_on_the_seed_only():
    data = load_split("mnist", _cfg("embedded", n_train=64), "train")

    def order(seed):
        return torch.cat([y for _, y in make_loader(data, 16, True, seed)])

    reference = order(3)
    assert torch.equal(reference, order(3)) and not torch.equal(reference, order(4))
    assert sorted(reference.tolist()) == sorted(_stack(data)[1].tolist())
    assert torch.equal(torch.cat([y for _, y in make_loader(data, 16, False, 0)]), _stack(data)[1])


# --- CelebA in torchvision's layout -------------------------------------------------------

# (file, partition 0 train / 1 valid / 2 test, identity); CelebA's aligned images are 178 x 218.
FAKE_CELEBA = [("000001.jpg", 0, 7), ("000002.jpg", 0, 8), ("000003.jpg", 0, 7), ("000004.jpg", 1, 9),
               ("000005.jpg", 2, 10), ("000006.jpg", 2, 11)]


def _fake_celeba(root: Path) -> None:
    """A tiny CelebA tree with the five annotation files in the original format: the central
    140 x 140 of each image is green, the rest red (so the centre crop can be checked)."""
    folder = root / "celeba"
    (folder / "img_align_celeba").mkdir(parents=True)
    for name, _, _ in FAKE_CELEBA:
        image = Image.new("RGB", (178, 218), (255, 0, 0))
        image.paste((0, 255, 0), ((178 - 140) // 2, (218 - 140) // 2, (178 + 140) // 2, (218 + 140) // 2))
        image.save(folder / "img_align_celeba" / name, quality=95)
    names = [n for n, _, _ in FAKE_CELEBA]
    n = len(names)
    (folder / "list_eval_partition.txt").write_text("".join(f"{f} {p}\n" for f, p, _ in FAKE_CELEBA))
    (folder / "identity_CelebA.txt").write_text("".join(f"{f} {i}\n" for f, _, i in FAKE_CELEBA))
    attrs = ["5_o_Clock_Shadow", "Smiling", "Young"]
    (folder / "list_attr_celeba.txt").write_text(
        f"{n}\n{' '.join(attrs)} \n" + "".join(f"{f}  -1  1  1\n" for f in names))
    (folder / "list_bbox_celeba.txt").write_text(
        f"{n}\nimage_id x_1 y_1 width height\n" + "".join(f"{f}    95  71 226 313\n" for f in names))
    marks = "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y leftmouth_x leftmouth_y rightmouth_x rightmouth_y"
    (folder / "list_landmarks_align_celeba.txt").write_text(
        f"{n}\n{marks}\n" + "".join(f"{f}  69 109 106 113 77 142 73 152 108 154\n" for f in names))


def _accept_fake_md5s(monkeypatch, root: Path) -> None:
    """torchvision checks the annotation files' MD5s against the real ones: swap in the fakes'."""
    file_list = [(fid, md5 if name.endswith(".zip") else hashlib.md5((root / "celeba" / name).read_bytes()).hexdigest(),
                  name) for fid, md5, name in CelebA.file_list]
    monkeypatch.setattr(CelebA, "file_list", file_list)


def test_fake_celeba_tree_loads_through_torchvision_as_64x64_centre_crops(tmp_path, monkeypatch):
    _fake_celeba(tmp_path)
    _accept_fake_md5s(monkeypatch, tmp_path)
    cfg = _cfg("torchvision", root=str(tmp_path))
    train, test = load_split("celeba", cfg, "train"), load_split("celeba", cfg, "test")
    assert len(train) == 3 and len(test) == 2  # the official partition: 0 = train, 2 = test
    x, y = _stack(train)
    assert x.shape == (3, 3, 64, 64) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    assert y.tolist() == [7, 8, 7] and y.dtype == torch.int64  # the CelebA identities
    assert x[:, 1].mean() > 0.95 and x[:, 0].mean() < 0.05  # only the green centre survives the crop
    assert _stack(test)[1].tolist() == [10, 11]
    assert len(load_split("celeba", _cfg("torchvision", root=str(tmp_path), n_train=2), "train")) == 2


def test_missing_celeba_lists_everything_needed(tmp_path):
    with pytest.raises(DataError) as err:
        load_split("celeba", _cfg("torchvision", root=str(tmp_path)), "train")
    message = str(err.value)
    for needed in ("img_align_celeba", "list_eval_partition.txt", "identity_CelebA.txt", "list_attr_celeba.txt",
                   "list_bbox_celeba.txt", "list_landmarks_align_celeba.txt"):
        assert f"{tmp_path / 'celeba' / needed}" in message
    assert "mmlab.ie.cuhk.edu.hk" in message and "datasets.celeba.root" in message


def test_incomplete_or_altered_celeba_names_the_bad_file(tmp_path):
    _fake_celeba(tmp_path)
    (tmp_path / "celeba" / "identity_CelebA.txt").unlink()
    with pytest.raises(DataError) as err:
        load_split("celeba", _cfg("torchvision", root=str(tmp_path)), "train")
    message = str(err.value)
    assert f"{tmp_path / 'celeba' / 'identity_CelebA.txt'} is missing" in message
    # the fake annotation files are not the real ones: torchvision's MD5 check rejects them
    assert f"{tmp_path / 'celeba' / 'list_eval_partition.txt'} fails its MD5 check" in message
    assert "img_align_celeba/ is missing" not in message


# --- the CelebA decode-once cache ---------------------------------------------------------

def _noisy_fake_celeba(root: Path, monkeypatch) -> None:
    """The fake tree with random-noise images (so the resize yields many grey levels) whose
    annotation files torchvision accepts."""
    _fake_celeba(root)
    rng = np.random.default_rng(0)
    for name, _, _ in FAKE_CELEBA:
        pixels = rng.integers(0, 256, size=(218, 178, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "celeba" / "img_align_celeba" / name, quality=90)
    _accept_fake_md5s(monkeypatch, root)


def _cache_file(root: Path, split: str) -> Path:
    names = [n for n, p, _ in FAKE_CELEBA if p == {"train": 0, "test": 2}[split]]
    return celeba_cache_path(root, celeba_cache_meta(names, split))


def _count_decodes(monkeypatch, delay: float = 0.0) -> list:
    calls = []
    decode = fisherae.data._decode_celeba

    def counting(celeba):
        calls.append(celeba.split)
        time.sleep(delay)
        return decode(celeba)

    monkeypatch.setattr(fisherae.data, "_decode_celeba", counting)
    return calls


def test_celeba_cache_equals_the_per_item_torchvision_transform(tmp_path, monkeypatch):
    _noisy_fake_celeba(tmp_path, monkeypatch)
    for split in ("train", "test"):
        data = load_split("celeba", _cfg("torchvision", root=str(tmp_path)), split)
        assert isinstance(data, ImageTensors) and data.images.dtype == torch.uint8
        reference = CelebA(str(tmp_path), split=split, target_type="identity", transform=celeba_transform())
        x, y = _stack(data)
        x_ref, y_ref = _stack(reference)
        assert torch.equal(x, x_ref) and torch.equal(y, y_ref) and y.dtype == torch.int64
        assert len(torch.unique(x)) > 100  # many grey levels: a real check of the quantisation
        path = _cache_file(tmp_path, split)
        assert path.is_file() and path.parent == tmp_path / "celeba" / "fisherae-cache"
        assert not list(path.parent.glob(".*tmp*")), "a temporary file was left behind"


def test_celeba_cache_is_built_once_and_shared(tmp_path, monkeypatch):
    _noisy_fake_celeba(tmp_path, monkeypatch)
    calls = _count_decodes(monkeypatch)
    first = _stack(load_split("celeba", _cfg("torchvision", root=str(tmp_path)), "train"))
    stamp = _cache_file(tmp_path, "train").stat().st_mtime_ns
    again = _stack(load_split("celeba", _cfg("torchvision", root=str(tmp_path)), "train"))
    cut = load_split("celeba", _cfg("torchvision", root=str(tmp_path), n_train=2), "train")
    assert calls == ["train"] and _cache_file(tmp_path, "train").stat().st_mtime_ns == stamp
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert torch.equal(_stack(cut)[0], first[0][:2])
    load_split("celeba", _cfg("torchvision", root=str(tmp_path)), "test")
    assert calls == ["train", "test"]


def test_other_preprocessing_builds_its_own_cache_beside_the_old_one(tmp_path, monkeypatch):
    """The cache is keyed by the preprocessing: a changed transform decodes the split again into
    a file of its own and leaves the earlier cache as it was."""
    _noisy_fake_celeba(tmp_path, monkeypatch)
    calls = _count_decodes(monkeypatch)
    cfg = _cfg("torchvision", root=str(tmp_path))
    first = _stack(load_split("celeba", cfg, "train"))[0]
    old = _cache_file(tmp_path, "train")
    old_bytes = old.read_bytes()
    from torchvision import transforms
    monkeypatch.setattr(fisherae.data, "celeba_transform", lambda: transforms.Compose(
        [transforms.CenterCrop(120), transforms.Resize(64), transforms.ToTensor()]))
    other = _stack(load_split("celeba", cfg, "train"))[0]
    new = _cache_file(tmp_path, "train")
    assert calls == ["train", "train"] and new != old and new.is_file() and old.read_bytes() == old_bytes
    assert not torch.equal(first, other)  # the other crop, not the old file read back


def test_concurrent_first_loads_decode_once(tmp_path, monkeypatch):
    _noisy_fake_celeba(tmp_path, monkeypatch)
    calls = _count_decodes(monkeypatch, delay=0.5)  # the other load arrives while this one decodes
    results, errors = [], []

    def load():
        try:
            results.append(_stack(load_split("celeba", _cfg("torchvision", root=str(tmp_path)), "train"))[0])
        except Exception as err:  # noqa: BLE001 -- reported by the assertion below
            errors.append(err)

    threads = [threading.Thread(target=load) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and calls == ["train"] and torch.equal(results[0], results[1])


def test_cache_dir_from_the_environment(tmp_path, monkeypatch):
    _noisy_fake_celeba(tmp_path / "data", monkeypatch)
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))
    load_split("celeba", _cfg("torchvision", root=str(tmp_path / "data")), "test")
    path = _cache_file(tmp_path / "data", "test")
    assert path.is_file() and path.is_relative_to(tmp_path / "cache")
    assert not (tmp_path / "data" / "celeba" / "fisherae-cache").exists()


def test_unwritable_cache_folder_says_what_to_do(tmp_path, monkeypatch):
    _noisy_fake_celeba(tmp_path, monkeypatch)
    (tmp_path / "celeba" / "fisherae-cache").write_text("not a folder")  # refused even to root
    with pytest.raises(DataError) as err:
        load_split("celeba", _cfg("torchvision", root=str(tmp_path)), "train")
    message = str(err.value)
    assert str(_cache_file(tmp_path, "train")) in message and CACHE_DIR_ENV in message and "writable" in message


def _built_cache(root: Path, monkeypatch) -> tuple[dict, Path, dict]:
    """A fake CelebA tree whose train cache is built: (its config, the cache file, its contents)."""
    _noisy_fake_celeba(root, monkeypatch)
    cfg = _cfg("torchvision", root=str(root))
    load_split("celeba", cfg, "train")
    path = _cache_file(root, "train")
    return cfg, path, torch.load(path, weights_only=True)


def test_stale_cache_is_a_clear_error(tmp_path, monkeypatch):
    cfg, path, payload = _built_cache(tmp_path, monkeypatch)
    payload["meta"]["key"] = "0123456789abcdef"
    payload["meta"]["preprocessing"][1]["size"] = 32
    torch.save(payload, path)
    with pytest.raises(DataError) as err:
        load_split("celeba", cfg, "train")
    message = str(err.value)
    assert f"{path} is stale" in message and "'0123456789abcdef'" in message and "preprocessing" in message
    assert f"delete {path}" in message
    path.unlink()
    load_split("celeba", cfg, "train")  # rebuilt
    # other identities (a new identity_CelebA.txt, same file list): the cached labels are stale
    identities = tmp_path / "celeba" / "identity_CelebA.txt"
    identities.write_text(identities.read_text().replace(" 7\n", " 70\n"))
    _accept_fake_md5s(monkeypatch, tmp_path)
    with pytest.raises(DataError, match=r"is stale: its identity labels differ"):
        load_split("celeba", cfg, "train")


def test_truncated_or_malformed_cache_is_a_clear_error(tmp_path, monkeypatch):
    cfg, path, payload = _built_cache(tmp_path, monkeypatch)
    whole = path.read_bytes()
    path.write_bytes(whole[:len(whole) // 2])
    with pytest.raises(DataError) as err:
        load_split("celeba", cfg, "train")
    message = str(err.value)
    assert f"{path} is truncated or corrupt" in message and f"delete {path}" in message
    torch.save({**payload, "images": payload["images"].float()}, path)
    with pytest.raises(DataError, match=r"is corrupt: images torch\.float32 \(3, 3, 64, 64\), expected torch\.uint8"):
        load_split("celeba", cfg, "train")
    torch.save({**payload, "images": payload["images"][:2]}, path)
    with pytest.raises(DataError, match=r"is corrupt: images torch\.uint8 \(2, 3, 64, 64\)"):
        load_split("celeba", cfg, "train")
    torch.save([1, 2], path)
    with pytest.raises(DataError, match="is not a fisherae-celeba-cache-v1 file"):
        load_split("celeba", cfg, "train")


def test_uint8_round_trip_of_to_tensor_is_lossless():
    from torchvision.transforms import ToTensor

    grey = ToTensor()(Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16)))
    assert torch.equal((grey * 255).round().to(torch.uint8).flatten(), torch.arange(256, dtype=torch.uint8))
    assert torch.equal(to_float(torch.arange(256, dtype=torch.uint8)), grey.flatten())
    assert torch.equal(to_float(torch.arange(256, dtype=torch.uint8)), torch.arange(256).float() / 255)
    noise = Image.fromarray(np.random.default_rng(1).integers(0, 256, (218, 178, 3), dtype=np.uint8))
    x = celeba_transform()(noise)
    assert torch.equal(to_float((x * 255).round().to(torch.uint8)), x)


# --- TensorBatches --------------------------------------------------------------------------

def _tagged(n: int) -> TensorDataset:
    """uint8 images whose every pixel is the image's label (0..n-1, n <= 256)."""
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 2, 3, 3).contiguous()
    return ImageTensors(images, torch.arange(n))


def _loader_epoch(data, batch_size, shuffle, seed):
    return [(x, y) for x, y in make_loader(data, batch_size, shuffle, seed)]


def _assert_same_batches(got, expected):
    assert [len(y) for _, y in got] == [len(y) for _, y in expected]
    for (x, y), (x_ref, y_ref) in zip(got, expected):
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert torch.equal(x, x_ref) and torch.equal(y, y_ref)


def test_tensor_batches_follow_make_loader_order_with_a_partial_last_batch():
    data = load_split("mnist", _cfg("embedded", n_train=100), "train")
    batches = TensorBatches(data, 16)
    assert (len(batches), batches.n_items, batches.batch_size) == (7, 100, 16)
    for seed in (0, 3, 12345):
        _assert_same_batches(list(batches.epoch(seed)), _loader_epoch(data, 16, True, seed))
        assert torch.equal(shuffled_order(100, seed),
                           torch.cat([i for (i,) in make_loader(TensorDataset(torch.arange(100)), 7, True, seed)]))
    _assert_same_batches(list(batches.epoch(0, shuffle=False)), _loader_epoch(data, 16, False, 0))
    assert [len(y) for _, y in batches.epoch(1)] == [16] * 6 + [4]
    assert not torch.equal(torch.cat([y for _, y in batches.epoch(1)]), torch.cat([y for _, y in batches.epoch(2)]))
    exact = TensorBatches(data, 25)
    assert len(exact) == 4


def test_tensor_batches_keep_uint8_and_convert_each_batch_exactly():
    images = torch.randint(0, 256, (50, 3, 8, 8), dtype=torch.uint8)
    data = ImageTensors(images, torch.arange(50))
    batches = TensorBatches(data, 8)
    assert batches.images.dtype == torch.uint8
    everything = images.float() / 255
    for x, y in batches.epoch(5):
        assert torch.equal(x, everything[y])
    _assert_same_batches(list(batches.epoch(5)), _loader_epoch(data, 8, True, 5))
    x, _ = next(batches.epoch(0, shuffle=False))
    x.zero_()  # batches are fresh tensors
    assert torch.equal(next(batches.epoch(0, shuffle=False))[0], everything[:8])


def test_labels_follow_their_images():
    batches = TensorBatches(_tagged(200), 32)
    seen = []
    for x, y in batches.epoch(9):
        assert torch.equal((x * 255).round().long()[:, 0, 0, 0], y)
        assert (x == x[:, :1, :1, :1]).all()
        seen.append(y)
    assert sorted(torch.cat(seen).tolist()) == list(range(200))


def test_subset_splits_and_split_tensors():
    data = load_split("mnist", _cfg("embedded"), "train")
    images, labels = split_tensors(data)
    cut = Subset(data, range(64))  # what n_train = 64 makes of it
    cut_images, cut_labels = split_tensors(cut)
    assert cut_images.data_ptr() == images.data_ptr() and torch.equal(cut_labels, labels[:64])  # a view
    picked = Subset(Subset(data, [9, 3, 7, 100, 42, 5, 0]), [6, 1, 2, 4])  # nested, arbitrary indices
    picked_images, picked_labels = split_tensors(picked)
    assert torch.equal(picked_images, _stack(picked)[0]) and torch.equal(picked_labels, labels[[0, 3, 7, 42]])
    strided = Subset(Subset(data, range(10, 60)), range(1, 50, 4))
    assert torch.equal(split_tensors(strided)[0], _stack(strided)[0])
    for split, batch_size in ((cut, 10), (picked, 3), (strided, 5)):
        batches = TensorBatches(split, batch_size)
        for seed in (0, 1):
            _assert_same_batches(list(batches.epoch(seed)), _loader_epoch(split, batch_size, True, seed))
        _assert_same_batches(list(batches.epoch(0, shuffle=False)), _loader_epoch(split, batch_size, False, 0))


def test_celeba_cache_split_batches(tmp_path, monkeypatch):
    _noisy_fake_celeba(tmp_path, monkeypatch)
    data = load_split("celeba", _cfg("torchvision", root=str(tmp_path), n_train=2), "train")
    batches = TensorBatches(data, 2)
    assert batches.images.dtype == torch.uint8 and batches.images.shape == (2, 3, 64, 64)
    _assert_same_batches(list(batches.epoch(4)), _loader_epoch(data, 2, True, 4))


class _Items(Dataset):
    def __len__(self):
        return 3

    def __getitem__(self, i):
        return torch.zeros(1, 2, 2), i


def test_a_split_that_is_not_tensor_backed_is_a_clear_error():
    with pytest.raises(DataError, match="not tensor-backed: got _Items"):
        TensorBatches(_Items(), 2)
    with pytest.raises(DataError, match="not tensor-backed: got a Subset of _Items"):
        split_tensors(Subset(_Items(), [0, 1]))
    with pytest.raises(DataError, match="got TensorDataset of 1 tensors"):
        TensorBatches(TensorDataset(torch.zeros(4, 1, 2, 2)), 2)
    with pytest.raises(DataError, match="batch_size must be a positive integer"):
        TensorBatches(_tagged(4), 0)


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device"))])
def test_tensor_batches_live_on_the_device(device):
    images = torch.randint(0, 256, (40, 3, 4, 4), dtype=torch.uint8)
    data = ImageTensors(images, torch.arange(40))
    batches = TensorBatches(data, 16, device=device)
    assert batches.images.device.type == device and batches.images.dtype == torch.uint8
    reference = list(TensorBatches(data, 16).epoch(7))
    got = list(batches.epoch(7))
    for (x, y), (x_ref, y_ref) in zip(got, reference):
        assert x.device.type == device and y.device.type == device and x.dtype == torch.float32
        assert torch.equal(x.cpu(), x_ref) and torch.equal(y.cpu(), y_ref)  # bit-identical to the CPU
    floats = TensorBatches(TensorDataset(images.float() / 255, torch.arange(40)), 16, device=device)
    assert floats.images.dtype == torch.float32
    for (x, _), (x_ref, _) in zip(floats.epoch(7), reference):
        assert x.device.type == device and torch.equal(x.cpu(), x_ref)


# --- MNIST files that are there but damaged (issue 10, item 6/8) -------------------------------

def _fake_mnist_tree(root: Path) -> Path:
    """ROOT/MNIST/raw holding the four real MNIST files as links to ../shared (copy to change one)."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in fisherae.data.MNIST_FILES:
        (raw / name).symlink_to((SHARED_DATA / "MNIST" / "raw" / name).resolve())
    return raw


def _replace(path: Path, data: bytes) -> None:
    path.unlink()
    path.write_bytes(data)


@pytest.mark.skipif(not (SHARED_DATA / "MNIST" / "raw").is_dir(), reason="needs ../shared/data/MNIST/raw")
def test_truncated_mnist_file_is_named_with_its_size_and_the_fix(tmp_path):
    raw = _fake_mnist_tree(tmp_path)
    name = "t10k-images-idx3-ubyte"
    _replace(raw / name, (raw / name).read_bytes()[:1000])
    with pytest.raises(DataError) as err:
        load_split("mnist", _cfg("torchvision", root=str(tmp_path)), "test")
    message = str(err.value)
    assert str(raw / name) in message and "is 1000 bytes" in message and "7840016 bytes" in message
    assert "not found" not in message and "train-images-idx3-ubyte" not in message
    assert "delete it" in message and "download: true" in message


@pytest.mark.skipif(not (SHARED_DATA / "MNIST" / "raw").is_dir(), reason="needs ../shared/data/MNIST/raw")
def test_mnist_file_with_a_bad_header_is_named(tmp_path):
    raw = _fake_mnist_tree(tmp_path)
    labels = raw / "train-labels-idx1-ubyte"
    data = labels.read_bytes()
    _replace(labels, b"\x00\x00\x08\x03" + data[4:])  # an images magic number on a labels file
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte starts with 0x00000803, not the idx magic "
                                        r"number 0x00000801 of labels"):
        load_split("mnist", _cfg("torchvision", root=str(tmp_path)), "train")
    _replace(labels, data[:4] + (1234).to_bytes(4, "big") + data[8:])
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte holds 1234 labels by its header; an MNIST idx "
                                        r"file of 60000 labels holds 60000"):
        load_split("mnist", _cfg("torchvision", root=str(tmp_path)), "train")


@pytest.mark.skipif(not (SHARED_DATA / "MNIST" / "raw").is_dir(), reason="needs ../shared/data/MNIST/raw")
def test_mnist_not_found_lists_only_the_missing_files(tmp_path):
    raw = _fake_mnist_tree(tmp_path)
    (raw / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError) as err:
        load_split("mnist", _cfg("torchvision", root=str(tmp_path)), "test")
    message = str(err.value)
    assert "not found" in message and str(raw / "t10k-labels-idx1-ubyte") in message
    assert "train-images-idx3-ubyte" not in message and "t10k-images-idx3-ubyte" not in message


def test_mnist_file_problem_accepts_a_well_formed_small_header(tmp_path):
    """The size check itself, on a fake file: right header and size pass, one byte short fails."""
    path = tmp_path / "labels"
    path.write_bytes(b"\x00\x00\x08\x01" + (3).to_bytes(4, "big") + bytes([1, 2, 3]))
    assert fisherae.data.mnist_file_problem(path, "labels", 3) is None
    path.write_bytes(path.read_bytes()[:-1])
    assert fisherae.data.mnist_file_problem(path, "labels", 3) == \
        "is 10 bytes; an MNIST idx file of 3 labels is 11 bytes (truncated)"
