"""A synthetic classification task, generated deterministically: nothing to download."""

from __future__ import annotations

import torch

FEATURES = 16
CLASSES = 4
TASK_SEED = 20261130
# Raw features come in very different units, so standardising them matters.
SCALES = torch.logspace(-2, 3, FEATURES)


def make_dataset(n: int, *, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` points of the task: four overlapping clusters seen through a fixed non-linear mixing."""
    task = torch.Generator().manual_seed(TASK_SEED)
    centres = torch.randn(CLASSES, FEATURES, generator=task) * 0.9
    mixing = torch.randn(FEATURES, FEATURES, generator=task) / FEATURES**0.5
    draw = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, CLASSES, (n,), generator=draw)
    latent = centres[labels] + torch.randn(n, FEATURES, generator=draw)
    features = torch.tanh(latent @ mixing) * 2 + latent
    return features * SCALES, labels


class Standardiser:
    """Per-feature standardisation with statistics of the training set."""

    def __init__(self, train_features: torch.Tensor) -> None:
        self.mean = train_features.mean(dim=0)
        self.std = train_features.std(dim=0).clamp_min(1e-8)

    def __call__(self, features: torch.Tensor) -> torch.Tensor:
        return (features - self.mean.to(features.device)) / self.std.to(features.device)

    def inverse(self, standardised: torch.Tensor) -> torch.Tensor:
        return standardised * self.std.to(standardised.device) + self.mean.to(standardised.device)
