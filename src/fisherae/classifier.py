"""A small MNIST CNN whose penultimate layer gives the domain features of our MNIST FID.

Inception features (the paper's Table 1, CelebA) fit 28x28 grey digits poorly, so on MNIST we
also measure the Fréchet distance in the feature space of a digit classifier trained here."""

from __future__ import annotations

import time

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import Dataset

from fisherae.checkpoint import atomic_torch_save, torch_load
from fisherae.data import make_loader
from fisherae.errors import CheckpointError

CLASSIFIER_FORMAT = "fisherae-classifier-v1"
RETRAIN = ("retrain it with `python -m fisherae train-classifier --config CFG --dataset mnist --out PT "
           "--out-metrics JSON`")


class DigitClassifier(nn.Module):
    """conv(32) -> pool -> conv(64) -> pool -> fc(feature_dim) -> fc(n_classes); ``features``
    is the ReLU output of the first fc layer (the penultimate layer)."""

    def __init__(self, channels: int = 1, size: int = 28, n_classes: int = 10, feature_dim: int = 128):
        super().__init__()
        self.config = {"channels": channels, "size": size, "n_classes": n_classes, "feature_dim": feature_dim}
        self.body = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
            nn.Linear(64 * (size // 4) ** 2, feature_dim), nn.ReLU(),
        )
        self.head = nn.Linear(feature_dim, n_classes)
        self.feature_dim = feature_dim

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def train_classifier(train: Dataset, test: Dataset, *, epochs: int, batch_size: int = 128, lr: float = 1e-3,
                     seed: int = 0, device: torch.device | str = "cpu") -> tuple[DigitClassifier, dict]:
    """Adam on cross-entropy; returns the model (eval mode, CPU) and its metrics (test accuracy)."""
    torch.manual_seed(seed)
    x0, _ = train[0]
    model = DigitClassifier(channels=x0.shape[0], size=x0.shape[-1]).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    losses, t0 = [], time.perf_counter()
    for epoch in range(epochs):
        model.train()
        total, count = 0.0, 0
        for x, y in make_loader(train, batch_size, shuffle=True, seed=seed + epoch):
            x, y = x.to(device), y.to(device)
            loss = F.cross_entropy(model(x), y)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total, count = total + loss.item() * len(y), count + len(y)
        losses.append(total / count)
    model.eval()
    metrics = {"test_accuracy": accuracy(model, test, batch_size, device), "train_loss": losses, "epochs": epochs,
               "n_train": len(train), "n_test": len(test), "seconds": time.perf_counter() - t0}
    return model.cpu(), metrics


@torch.no_grad()
def accuracy(model: nn.Module, data: Dataset, batch_size: int = 500, device: torch.device | str = "cpu") -> float:
    correct = 0
    for x, y in make_loader(data, batch_size, shuffle=False, seed=0):
        correct += (model(x.to(device)).argmax(1).cpu() == y).sum().item()
    return correct / len(data)


def save_classifier(path, model: DigitClassifier, metrics: dict):
    """Write the classifier and its metrics (test accuracy) to ``path``, atomically."""
    payload = {"format": CLASSIFIER_FORMAT, "config": model.config,
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}, "metrics": metrics}
    return atomic_torch_save(payload, path)


def load_classifier(path, map_location="cpu") -> tuple[DigitClassifier, dict]:
    """(classifier in eval mode, its metrics) saved by ``save_classifier``."""
    payload = torch_load(path, "classifier file", RETRAIN, map_location)
    if payload.get("format") != CLASSIFIER_FORMAT:
        raise CheckpointError(f"classifier file {path} is not a fisherae classifier (format "
                              f"{payload.get('format')!r}, expected {CLASSIFIER_FORMAT!r}); {RETRAIN}")
    try:
        model = DigitClassifier(**payload["config"])
        model.load_state_dict(payload["state_dict"])
    except (KeyError, TypeError, RuntimeError) as err:
        raise CheckpointError(f"classifier file {path} does not match this version of fisherae ({err}); "
                              f"{RETRAIN}") from err
    return model.to(map_location).eval(), payload.get("metrics", {})
