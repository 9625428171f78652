"""Training with a fixed step budget, and evaluation."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from data import Standardiser

BATCH = 128
STEPS = 300
LEARNING_RATE = 3e-3


@dataclass
class Trainer:
    model: nn.Module
    standardise: Standardiser
    features: torch.Tensor
    labels: torch.Tensor
    seed: int = 0

    def __post_init__(self) -> None:
        self.optimiser = torch.optim.Adam(self.model.parameters(), lr=LEARNING_RATE)
        self.sampler = torch.Generator().manual_seed(self.seed)

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        index = torch.randint(0, len(self.labels), (BATCH,), generator=self.sampler)
        return self.features[index], self.labels[index]

    def step(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """One optimisation step on one batch; returns the loss (on the device: no host sync)."""
        inputs = self.standardise(features)
        loss = nn.functional.cross_entropy(self.model(inputs), labels)
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        self.optimiser.step()
        return loss.detach()

    def fit(self, steps: int = STEPS) -> float:
        loss = torch.tensor(float("nan"))
        for _ in range(steps):
            loss = self.step(*self.batch())
        return float(loss)


def accuracy(
    model: nn.Module, standardise: Standardiser, features: torch.Tensor, labels: torch.Tensor
) -> float:
    model.eval()
    with torch.no_grad():
        predicted = model(standardise(features)).argmax(dim=1)
    model.train()
    return float((predicted == labels).float().mean())
