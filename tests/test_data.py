"""Data sets: the embedded stand-ins, real MNIST from ../shared/data, a fake CelebA tree in
torchvision's layout, and the errors for missing data."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from PIL import Image
from torchvision.datasets import CelebA

from fisherae.data import DataError, image_shape, load_split, make_loader

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


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
