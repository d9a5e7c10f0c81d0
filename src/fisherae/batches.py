"""Shuffled mini-batches of a tensor-backed split, served from tensors on the training device.

A split (what ``fisherae.data.load_split`` returns) is copied to the device once; each
epoch draws one permutation on the CPU, moves it to the device, and cuts it into batches
that are gathered with ``index_select``: no per-sample Python work, no host sync per batch.
For a given seed the order is the one ``make_loader(split, batch_size, True, seed)``
visits, on every device; the images are those of ``split[i]``, bit for bit.

    batches = TensorBatches(load_split(name, cfg, "train"), batch_size=128, device="cuda")
    for epoch in range(epochs):
        for x, y in batches.epoch(seed=order_seed(epoch)):  # x float32 [B, C, H, W], y int64 [B]
            ...
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Dataset

from fisherae.data import DataError, split_tensors, to_float


def shuffled_order(n: int, seed: int) -> torch.Tensor:
    """The permutation (int64 [n], on the CPU) in which ``make_loader(data, batch_size,
    shuffle=True, seed=seed)`` visits a data set of ``n`` items, whatever the device.

    The DataLoader draws its workers' base seed from the generator before its sampler draws
    ``torch.randperm(n)``; the same two draws are made here (tests/test_data.py checks the
    orders agree)."""
    generator = torch.Generator().manual_seed(seed)
    torch.empty((), dtype=torch.int64).random_(generator=generator)  # DataLoader's base seed
    return torch.randperm(n, generator=generator)


class TensorBatches:
    """The images and labels of a tensor-backed ``split`` held on ``device`` (uint8 images
    stay uint8 there, float ones are float32), served in batches of ``batch_size``, the last
    one partial (no drop_last).

    Raises ``DataError`` if ``split`` is not a ``TensorDataset`` of (images, labels), an
    ``ImageTensors`` or a ``Subset`` of one."""

    def __init__(self, split: Dataset, batch_size: int, device: torch.device | str = "cpu"):
        if not isinstance(batch_size, int) or batch_size < 1:
            raise DataError(f"batch_size must be a positive integer, got {batch_size!r}")
        images, labels = split_tensors(split)
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.images = images.to(self.device)  # uint8 [N, C, H, W] or float32 in [0, 1]
        self.labels = labels.to(self.device)  # int64 [N]

    @property
    def n_items(self) -> int:
        """Images in the split."""
        return len(self.labels)

    def __len__(self) -> int:
        """Batches per epoch, the partial last one included."""
        return -(-self.n_items // self.batch_size)

    def epoch(self, seed: int, shuffle: bool = True) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One pass: ``(x float32 [B, C, H, W] in [0, 1], labels int64 [B])`` on the device,
        in the order ``shuffled_order(n_items, seed)`` (``shuffle=False``: the split's order;
        ``seed`` is then unused). Each batch is a fresh tensor: safe to modify in place."""
        bounds = range(0, self.n_items, self.batch_size)
        if not shuffle:
            for lo in bounds:
                x = self.images[lo:lo + self.batch_size]
                yield (to_float(x) if x.dtype == torch.uint8 else x.clone()), self.labels[lo:lo + self.batch_size]
            return
        order = shuffled_order(self.n_items, seed).to(self.device)
        for lo in bounds:
            index = order[lo:lo + self.batch_size]
            yield to_float(self.images.index_select(0, index)), self.labels.index_select(0, index)

    def __repr__(self) -> str:
        return (f"TensorBatches(n_items={self.n_items}, batch_size={self.batch_size}, batches={len(self)}, "
                f"images={self.images.dtype} {tuple(self.images.shape[1:])}, device={self.device})")
