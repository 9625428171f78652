"""Unit tier: fast CPU checks that run on every commit."""

import torch
from model import Classifier, make_data


def test_output_shape(device):
    model = Classifier().to(device)
    assert model(torch.zeros(4, 8, device=device)).shape == (4, 2)


def test_data_is_deterministic():
    x1, y1 = make_data(64, seed=3)
    x2, y2 = make_data(64, seed=3)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert set(y1.tolist()) == {0, 1}


def test_one_training_step_lowers_the_loss(seed):
    x, y = make_data(256, seed=seed)
    model = Classifier()
    before = torch.nn.functional.cross_entropy(model(x), y).item()
    from model import train

    after = train(model, x, y, steps=5)
    assert after < before
