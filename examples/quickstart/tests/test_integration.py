"""Integration tier: trains for a fixed budget on the run's device (GPU nightly, CPU when allowed)."""

import pytest
import torch
from model import Classifier, accuracy, make_data, train


@pytest.mark.integration
def test_training_reaches_accuracy_floor(device, seed):
    x, y = make_data(2048, seed=seed)
    x_test, y_test = make_data(1024, seed=seed + 1)
    model = Classifier().to(device)
    train(model, x.to(device), y.to(device), steps=200)
    assert accuracy(model, x_test.to(device), y_test.to(device)) > 0.95


@pytest.mark.gpu(count=1, min_memory_gb=2)
def test_mixed_precision_step(device):
    model = Classifier().to(device)
    with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
        out = model(torch.randn(64, 8, device=device))
    assert out.dtype == torch.bfloat16
