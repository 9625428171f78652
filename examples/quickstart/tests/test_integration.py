"""Integration tier: trains for a fixed budget on the run's device (GPU nightly, CPU when allowed)."""

import pytest
import torch
from model import Classifier, accuracy, make_data, train


@pytest.mark.integration
def test_training_reaches_accuracy_floor(device, seed, record):
    x, y = make_data(2048, seed=seed)
    x_test, y_test = make_data(1024, seed=seed + 1)
    x, y = x.to(device), y.to(device)
    model = Classifier().to(device)
    train(model, x, y, steps=200)
    acc = accuracy(model, x_test.to(device), y_test.to(device))
    record("accuracy", acc, support=len(y_test))
    step = record.time(lambda: train(model, x, y, steps=1), warmup=3, repeat=20)
    record.throughput(len(x), step.median, name="train_samples_per_s", unit="samples/s")
    assert acc > 0.95


@pytest.mark.gpu(count=1, min_memory_gb=2)
def test_mixed_precision_step(device):
    model = Classifier().to(device)
    with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
        out = model(torch.randn(64, 8, device=device))
    assert out.dtype == torch.bfloat16
