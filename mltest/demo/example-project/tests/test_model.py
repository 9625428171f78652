"""Unit tier: the model on the CPU, in milliseconds."""

import torch

from data import CLASSES, FEATURES, Standardiser, make_dataset
from model import Classifier
from train import Trainer


def test_output_shape():
    model = Classifier()
    assert model(torch.zeros(8, FEATURES)).shape == (8, CLASSES)


def test_forward_backward_gives_every_parameter_a_gradient():
    model = Classifier()
    loss = torch.nn.functional.cross_entropy(model(torch.randn(16, FEATURES)), torch.arange(16) % CLASSES)
    loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, name
        assert torch.isfinite(parameter.grad).all(), name


def test_a_few_steps_lower_the_loss(seed):
    x, y = make_dataset(1024, seed=seed)
    torch.manual_seed(seed)
    trainer = Trainer(Classifier(), Standardiser(x), x, y, seed=seed)

    def loss() -> float:
        with torch.no_grad():
            return float(torch.nn.functional.cross_entropy(trainer.model(trainer.standardise(x)), y))

    start = loss()
    trainer.fit(steps=30)
    assert loss() < start


def test_save_load_round_trip(tmp_path):
    model = Classifier()
    torch.save(model.state_dict(), tmp_path / "model.pt")
    restored = Classifier()
    restored.load_state_dict(torch.load(tmp_path / "model.pt", weights_only=True))
    probe = torch.randn(4, FEATURES)
    assert torch.equal(model(probe), restored(probe))
