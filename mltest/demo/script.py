"""The scripted history of ``mltest demo``: neutral commits, one real slowdown, one real accuracy loss.

Every commit is a set of exact text edits to the example project (``example-project/``). The two
planted commits change what the code does, as the bugs they imitate would: the slowdown adds a per-row
Python loop with a host sync to every training step, the accuracy loss adds an input-noise
augmentation that costs about two points at the fixed step budget. The neutral ones change text,
names and tests but not what is computed. Pure data and file edits: no git, no store.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from mltest.errors import ConfigError

__all__ = [
    "MAX_COMMITS",
    "MIN_COMMITS",
    "Edit",
    "ScriptedCommit",
    "apply",
    "copy_project",
    "history",
]

PROJECT = "example-project"
RENAMED = {"gitignore": ".gitignore"}  # dotfiles are shipped under plain names


@dataclass(frozen=True)
class Edit:
    """Replace the one occurrence of ``old`` in ``path`` with ``new``; ``old=""`` appends."""

    path: str
    old: str
    new: str


@dataclass(frozen=True)
class ScriptedCommit:
    subject: str
    edits: tuple[Edit, ...]
    planted: str | None = None
    """``"slowdown"`` or ``"accuracy"`` for the two planted commits, ``None`` for a neutral one."""
    moves: tuple[str, ...] = ()
    """The metrics a planted commit moves."""


INITIAL = ScriptedCommit("Initial version of the example classifier", ())

SLOWDOWN = ScriptedCommit(
    "Validate every training row for NaN/inf before the step",
    (
        Edit(
            "train.py",
            "        inputs = self.standardise(features)\n",
            "        for row in features:  # fail fast on a corrupt batch\n"
            "            if not bool(torch.isfinite(row).all()):\n"
            '                raise ValueError("non-finite input feature")\n'
            "        inputs = self.standardise(features)\n",
        ),
    ),
    planted="slowdown",
    moves=("step_time", "train_samples_per_s"),
)

ACCURACY = ScriptedCommit(
    "Add input-noise augmentation to regularise training",
    (
        Edit("train.py", "LEARNING_RATE = 3e-3\n", "LEARNING_RATE = 3e-3\nINPUT_NOISE = 1.0\n"),
        Edit(
            "train.py",
            "        inputs = self.standardise(features)\n",
            "        inputs = self.standardise(features)\n"
            "        inputs = inputs + INPUT_NOISE * torch.randn_like(inputs)\n",
        ),
    ),
    planted="accuracy",
    moves=("accuracy",),
)

NEUTRAL = (
    ScriptedCommit(
        "Document how the synthetic data set is generated",
        (
            Edit(
                "data.py",
                '    """``n`` points of the task: four overlapping clusters seen through a fixed '
                'non-linear mixing."""\n',
                '    """``n`` points of the task: four overlapping clusters seen through a fixed non-linear mixing.\n'
                "\n"
                "    The task (cluster centres, mixing) is fixed by ``TASK_SEED``; ``seed`` only draws points.\n"
                '    """\n',
            ),
        ),
    ),
    ScriptedCommit(
        "Test that the standardiser's inverse round-trips",
        (
            Edit(
                "tests/test_data.py",
                "",
                "\n\ndef test_standardiser_inverse_round_trips():\n"
                "    x, _ = make_dataset(256, seed=3)\n"
                "    standardise = Standardiser(x)\n"
                "    assert torch.allclose(standardise.inverse(standardise(x)), x, rtol=1e-4, atol=1e-3)\n",
            ),
        ),
    ),
    ScriptedCommit(
        "Name the hidden width of the classifier",
        (
            Edit(
                "model.py", "from data import CLASSES, FEATURES\n", "from data import CLASSES, FEATURES\n\nWIDTH = 64\n"
            ),
            Edit(
                "model.py",
                "            nn.Linear(features, 64),\n            nn.ReLU(),\n            nn.Linear(64, 64),\n"
                "            nn.ReLU(),\n            nn.Linear(64, classes),\n",
                "            nn.Linear(features, WIDTH),\n            nn.ReLU(),\n"
                "            nn.Linear(WIDTH, WIDTH),\n"
                "            nn.ReLU(),\n            nn.Linear(WIDTH, classes),\n",
            ),
        ),
    ),
    ScriptedCommit(
        "README: how to run the two tiers",
        (
            Edit(
                "README.md",
                "",
                "\n## Running the tests\n\n```bash\nmltest run unit            # every commit, CPU\n"
                "mltest run integration     # nightly, on the GPU runner\n```\n",
            ),
        ),
    ),
    ScriptedCommit(
        "Add a predict() helper for inference",
        (
            Edit(
                "train.py",
                "",
                "\n\ndef predict(\n"
                "    model: nn.Module, standardise: Standardiser, features: torch.Tensor\n"
                ") -> torch.Tensor:\n"
                "    model.eval()\n"
                "    with torch.no_grad():\n"
                "        return model(standardise(features)).argmax(dim=1)\n",
            ),
        ),
    ),
    ScriptedCommit(
        "Test the model's output on a single example",
        (
            Edit(
                "tests/test_model.py",
                "",
                "\n\ndef test_a_single_example_gives_one_row_of_logits():\n"
                "    assert Classifier()(torch.zeros(1, FEATURES)).shape == (1, CLASSES)\n",
            ),
        ),
    ),
    ScriptedCommit(
        "Explain the choice of step budget",
        (
            Edit(
                "train.py",
                "STEPS = 300\n",
                "STEPS = 300  # a fixed budget: the nightly accuracy is comparable from commit to commit\n",
            ),
        ),
    ),
    ScriptedCommit(
        "Type the standardiser's statistics",
        (
            Edit(
                "data.py",
                "        self.mean = train_features.mean(dim=0)\n        self.std = train_features.std(dim=0)",
                "        self.mean: torch.Tensor = train_features.mean(dim=0)\n"
                "        self.std: torch.Tensor = train_features.std(dim=0)",
            ),
        ),
    ),
    ScriptedCommit(
        "Add a changelog",
        (Edit("CHANGELOG.md", "", "# Changelog\n\n- Example classifier with unit and integration tiers.\n"),),
    ),
    ScriptedCommit(
        "Test that training data and test data differ",
        (
            Edit(
                "tests/test_data.py",
                "",
                "\n\ndef test_train_and_test_draws_differ():\n"
                "    x_train, _ = make_dataset(64, seed=0)\n"
                "    x_test, _ = make_dataset(64, seed=1)\n"
                "    assert not torch.equal(x_train, x_test)\n",
            ),
        ),
    ),
    ScriptedCommit(
        "Describe the model in its module docstring",
        (
            Edit(
                "model.py",
                '"""The model: a three-layer MLP."""\n',
                '"""The model: a three-layer MLP with ReLU activations, small enough to train on a CPU."""\n',
            ),
        ),
    ),
    ScriptedCommit(
        "README: where the results are stored",
        (
            Edit(
                "README.md",
                "",
                "\nResults go to `.mltest/results.db` (SQLite); `mltest runs` and `mltest check` read them.\n",
            ),
        ),
    ),
)

MIN_COMMITS = 12
"""Fewer, and a planted change has too few commits on one side to be told from noise."""
MAX_COMMITS = len(NEUTRAL) + 3


def history(commits: int = MIN_COMMITS) -> list[ScriptedCommit]:
    """``commits`` commits: the initial one, neutral ones, and the two planted ones placed so each has
    at least five commits before it and four after it."""
    if isinstance(commits, bool) or not isinstance(commits, int) or not MIN_COMMITS <= commits <= MAX_COMMITS:
        raise ConfigError(
            f"--commits {commits!r}: choose {MIN_COMMITS} to {MAX_COMMITS}; with fewer, a planted change has too "
            "few commits on one side to be told from noise"
        )
    slow_at = round(commits * 5 / 12)
    accuracy_at = round(commits * 2 / 3)
    neutral = iter(NEUTRAL)
    out = [INITIAL]
    for position in range(1, commits):
        out.append(SLOWDOWN if position == slow_at else ACCURACY if position == accuracy_at else next(neutral))
    return out


def copy_project(destination: Path) -> None:
    """Copy the example project into ``destination`` (created if absent)."""
    with resources.as_file(resources.files("mltest.demo").joinpath(PROJECT)) as source:
        shutil.copytree(source, destination, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
    for shipped, name in RENAMED.items():
        (destination / shipped).rename(destination / name)


def apply(commit: ScriptedCommit, root: Path) -> list[str]:
    """Apply ``commit``'s edits under ``root``; returns the paths changed."""
    changed = []
    for edit in commit.edits:
        path = root / edit.path
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        if edit.old:
            count = text.count(edit.old)
            if count != 1:
                raise ConfigError(
                    f"demo script: {commit.subject!r} expects its text once in {edit.path}, found it {count} times"
                )
            text = text.replace(edit.old, edit.new)
        else:
            text += edit.new
        path.write_text(text, encoding="utf-8")
        changed.append(edit.path)
    return changed
