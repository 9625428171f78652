"""Unit tier: the data pipeline's invariants."""

import torch

from data import CLASSES, FEATURES, Standardiser, make_dataset


def test_the_data_set_is_deterministic():
    x1, y1 = make_dataset(256, seed=7)
    x2, y2 = make_dataset(256, seed=7)
    assert torch.equal(x1, x2)
    assert torch.equal(y1, y2)


def test_seeds_give_different_draws_of_the_same_task():
    x1, _ = make_dataset(256, seed=1)
    x2, _ = make_dataset(256, seed=2)
    assert not torch.equal(x1, x2)


def test_shapes_and_every_class_present():
    x, y = make_dataset(512, seed=0)
    assert x.shape == (512, FEATURES)
    assert y.shape == (512,)
    assert set(y.tolist()) == set(range(CLASSES))
    assert torch.isfinite(x).all()


def test_standardised_features_have_zero_mean_and_unit_variance():
    x, _ = make_dataset(2048, seed=0)
    z = Standardiser(x)(x)
    assert torch.allclose(z.mean(dim=0), torch.zeros(FEATURES), atol=1e-4)
    assert torch.allclose(z.std(dim=0), torch.ones(FEATURES), atol=1e-4)
