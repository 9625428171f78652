"""Integration tier: train for a fixed budget on the run's device and record speed and accuracy.

Nightly on a GPU runner; `mltest run integration --device cpu` (or `device = "auto"`) on a laptop.
"""

import pytest
import torch

from data import Standardiser, make_dataset
from model import Classifier
from train import BATCH, Trainer, accuracy

TRAIN_SIZE = 4096
TEST_SIZE = 2000
ACCURACY_FLOOR = 0.80


@pytest.mark.integration
def test_training_reaches_accuracy_floor(device, seed, record):
    x, y = make_dataset(TRAIN_SIZE, seed=seed)
    x_test, y_test = make_dataset(TEST_SIZE, seed=seed + 1)
    x, y, x_test, y_test = x.to(device), y.to(device), x_test.to(device), y_test.to(device)
    torch.manual_seed(seed)
    trainer = Trainer(Classifier().to(device), Standardiser(x), x, y, seed=seed)

    with record.memory():  # peak memory: allocated/reserved on CUDA, resident set size on the CPU
        trainer.fit()
    acc = accuracy(trainer.model, trainer.standardise, x_test, y_test)
    record("accuracy", acc, support=TEST_SIZE)  # support: the binomial noise of a 2000-example test set

    features, labels = trainer.batch()
    step = record.time(lambda: trainer.step(features, labels), warmup=10, repeat=100, name="step_time")
    record.throughput(BATCH, step.median, name="train_samples_per_s", unit="samples/s")

    assert acc >= ACCURACY_FLOOR
