"""The base and debug images, built for real by a Docker engine through ``mltest docker build``.

One build per test session (tests/dockerlab.py), from a copy of this checkout, offline: a local
Debian base image and a host-built wheelhouse. Then the images are checked from the outside, as a
user would: the unit tier passes inside base, nobody is root, debug stacks on base's layers, base
holds no compiler, editor, cache or build leftovers, and a source-only change rebuilds only the top.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from dockerlab import EXTRAS, Images, build_inputs, copy_project, engine, run_in, shared_images
from gitrepo import git

from mltest.docker import ImageInfo, image_info, shares_layers

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-c", "from mltest.cli import main; raise SystemExit(main())"]


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> Images:
    basetemp = tmp_path_factory.getbasetemp()
    shared = basetemp.parent if os.environ.get("PYTEST_XDIST_WORKER") else basetemp
    return shared_images(shared)


def _info(ref: str) -> ImageInfo:
    client = engine()
    try:
        return image_info(client, ref)
    finally:
        client.close()


def _venv_layer(info: ImageInfo) -> int:
    """Index (among the layers that add files) of the step that copies the dependency venv."""
    steps = [h for h in info.history if h.size > 0]
    index = next(i for i, h in enumerate(steps) if h.created_by.endswith("in /opt/venv"))
    assert len(steps) == info.layer_count, "every file-system layer has one history step with a size"
    return index


def test_build_reports_sizes_layers_and_the_shared_base(images: Images) -> None:
    out = images.build_output
    assert f"built {images.base} in " in out
    assert f"built {images.debug} in " in out
    assert "largest layers:" in out
    assert "in /opt/venv" in out  # the dependency layer is named among the largest
    assert "debug adds " in out
    assert "shares every base layer" in out
    assert "offline, from " in out


def test_the_unit_tier_runs_inside_the_base_image_and_passes(images: Images) -> None:
    proc = run_in(images.base, "mltest", "run", "unit", "-q", "-p", "no:cacheprovider", "-n", "2", timeout=1500)
    tail = proc.stdout[-3000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, tail
    assert " passed" in proc.stdout, tail
    summary = proc.stdout.splitlines()[-1]
    assert " failed" not in summary, tail
    assert " error" not in summary, tail


def test_the_container_user_is_not_root(images: Images) -> None:
    for ref in (images.base, images.debug):
        proc = run_in(ref, "id", "-u")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == "1000", ref
        assert _info(ref).labels  # the image exists with its labels


def test_debug_starts_with_every_base_layer(images: Images) -> None:
    base, debug = _info(images.base), _info(images.debug)
    assert shares_layers(base, debug)
    assert debug.layer_count > base.layer_count
    assert [h.id for h in debug.history[: len(base.history)]] == [h.id for h in base.history]
    assert debug.size - base.size <= 400 * 10**6, "the debug image adds at most 400 MB"


def test_base_has_no_compiler_editor_cache_or_build_files(images: Images) -> None:
    script = (
        "for t in gcc cc c++ g++ clang make ld vim vi nano; do command -v $t; done; "
        "ls -d /root/.cache/pip /home/mltest/.cache/pip /build /src /dist /workspace/.mltest-wheelhouse "
        "/opt/venv/lib/python3*/site-packages/torch/include 2>/dev/null; "
        "ls /var/lib/apt/lists | grep -v '^lock$' | grep -v '^partial$'; "
        "find / -xdev -name '*.whl' 2>/dev/null"
    )
    proc = run_in(images.base, "sh", "-c", script, user="0")
    assert proc.stdout.strip() == "", f"found in the base image:\n{proc.stdout}"
    # The checks can see things: the same probes find the tools that are meant to be there.
    probe = "for t in python3 git mltest; do command -v $t; done; ls -d /opt/venv /workspace/tests"
    proc = run_in(images.base, "sh", "-c", probe)
    assert proc.stdout.split() == [
        "/opt/venv/bin/python3",
        "/usr/bin/git",
        "/opt/project/bin/mltest",
        "/opt/venv",
        "/workspace/tests",
    ]


def test_debug_has_the_tools_and_adds_no_second_copy_of_the_base_packages(images: Images) -> None:
    script = (
        "for t in vim less ps gdb strace py-spy ipython; do command -v $t || echo missing-$t; done; "
        "python -c 'import matplotlib, IPython, numpy; print(matplotlib.get_backend(), numpy.__file__)'; "
        "ls /opt/debug | grep -ci '^numpy' || true"
    )
    proc = run_in(images.debug, "sh", "-c", script)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.split("\n")
    tools = ["vim", "less", "ps", "gdb", "strace", "py-spy", "ipython"]
    assert [line.rsplit("/", 1)[-1] for line in lines[:7]] == tools
    backend, numpy_file = lines[7].split()
    assert backend.lower() == "agg"
    assert numpy_file.startswith("/opt/venv/"), "numpy comes from the base venv, not a second copy"
    assert lines[8].strip() == "0"


def test_labels_and_environment_name_the_commit_and_image(images: Images) -> None:
    info = _info(images.base)
    assert info.labels["org.opencontainers.image.revision"] == images.commit
    assert info.labels["org.opencontainers.image.version"] == "0.1.0"
    assert info.labels["io.mltest.variant"] == "cpu"
    proc = run_in(
        images.base, "python", "-c", "import os; from mltest.envinfo import container_image as c; print(c(os.environ))"
    )
    assert proc.stdout.strip() == images.base


def test_inspect_shows_layers_and_where_the_bytes_are(images: Images) -> None:
    proc = subprocess.run([*CLI, "docker", "inspect", images.base, "--top", "8"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert out.startswith(f"{images.base}: ")
    assert "layers (oldest first" in out
    assert "(the base image's file system)" in out
    assert "largest directories" in out
    assert "/opt/venv/lib/python3.11/site-packages" in out
    assert "largest files:" in out
    assert "torch/lib/libtorch_cpu.so" in out


SECRET = f"tok-{uuid.uuid4().hex}"  # made at run time: this file is in the image's /workspace


@dataclass(frozen=True)
class Rebuilt:
    proc: subprocess.CompletedProcess[str]
    sha: str
    ref: str
    store: Path


@pytest.fixture(scope="module")
def rebuilt(images: Images, tmp_path_factory: pytest.TempPathFactory) -> Rebuilt:
    """Base rebuilt after a source-only change (one line in mltest/__init__.py, committed), with
    ``--record`` into a fresh store and a private-index URL with a token passed as a build argument."""
    base_image, wheels = build_inputs()
    tmp = tmp_path_factory.mktemp("rebuild")
    project = copy_project(tmp / "project")
    init = project / "mltest" / "__init__.py"
    init.write_text(init.read_text() + "\n# a source-only change\n")
    git(project, "commit", "-qam", "touch the source")
    sha = git(project, "rev-parse", "HEAD").strip()
    store = tmp / "sizes.db"
    argv = ["docker", "build", "--target", "base", "--wheelhouse", str(wheels), "--base-image", base_image]
    argv += ["--extras", EXTRAS, "--tag", images.name, "--record", "--store", f"sqlite:///{store}"]
    argv += ["--build-arg", f"PIP_INDEX_URL=https://ci:{SECRET}@pypi.example.invalid/simple"]
    proc = subprocess.run([*CLI, *argv, "--project-dir", str(project)], capture_output=True, text=True, cwd=project)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    return Rebuilt(proc, sha, f"{images.name}:{sha[:12]}", store)


def test_a_source_only_change_rebuilds_only_the_top_layers(images: Images, rebuilt: Rebuilt) -> None:
    before, after = _info(images.base), _info(rebuilt.ref)
    venv = _venv_layer(before)
    assert after.layers[: venv + 1] == before.layers[: venv + 1], "the dependency layers came from the cache"
    assert after.layers[venv + 1 :] != before.layers[venv + 1 :], "the project layers were rebuilt"


def test_record_stores_the_image_sizes_for_the_commit(rebuilt: Rebuilt) -> None:
    after = _info(rebuilt.ref)
    assert f"recorded the sizes of 1 image for commit {rebuilt.sha[:12]}" in rebuilt.proc.stdout
    with sqlite3.connect(rebuilt.store) as db:
        rows = db.execute(
            "SELECT m.test, m.metric, m.value, m.unit FROM measurements m JOIN runs r ON r.run_id = m.run_id "
            "WHERE r.sha = ? ORDER BY m.metric",
            (rebuilt.sha,),
        ).fetchall()
    assert rows == [
        ("docker::base[cpu]", "image_layers", float(after.layer_count), "layers"),
        ("docker::base[cpu]", "image_size", float(after.size), "bytes"),
    ]


def test_no_build_argument_or_secret_is_left_in_the_image(rebuilt: Rebuilt) -> None:
    """A token in a build argument (a private index URL) reaches neither the history, the config,
    the labels, nor the file system; nor do the host paths of the wheelhouse."""
    history = subprocess.run(
        ["docker", "history", "--no-trunc", "--format", "{{.CreatedBy}}", rebuilt.ref],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    inspect = subprocess.run(["docker", "image", "inspect", rebuilt.ref], capture_output=True, text=True, check=True)
    assert "|" in history, "build arguments of RUN steps are visible in the history: the check can see them"
    for text in (history, inspect.stdout):
        assert SECRET not in text
        assert "PIP_INDEX_URL" not in text
        assert "wheelhouse" not in text.lower().replace(".mltest-wheelhouse", "")
    found = run_in(
        rebuilt.ref,
        "sh",
        "-c",
        f"grep -rIl '{SECRET}' /etc /opt/project /workspace /home /root /tmp 2>/dev/null; true",
        user="0",
    )
    assert found.stdout.strip() == ""


def test_a_failing_build_is_one_line_naming_the_step(images: Images, tmp_path: Path) -> None:
    base_image, wheels = build_inputs()
    project = copy_project(tmp_path / "project")
    argv = ["docker", "build", "--target", "base", "--wheelhouse", str(wheels), "--base-image", base_image]
    argv += ["--extras", "no-such-extra", "--tag", "mltest-test-broken", "--project-dir", str(project)]
    proc = subprocess.run([*CLI, *argv], capture_output=True, text=True, cwd=project)
    assert proc.returncode == 1
    err = proc.stderr.strip()
    assert "\n" not in err, err
    assert err.startswith("mltest: error: building mltest-test-broken:")
    assert "from dockerfiles/base.Dockerfile failed at 'Step " in err
    assert "requirements.py: pyproject.toml has no extra 'no-such-extra'" in err  # the build's own words
    assert err.endswith("(exit code 1)")


TINY_PYPROJECT = """\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "tinyml"
version = "0.1.0"
dependencies = ["torch"]

[project.optional-dependencies]
test = ["pytest"]

[tool.setuptools]
packages = ["tinyml"]
"""
TINY_TEST = """\
import torch

from tinyml import double


def test_double_on_the_cpu():
    assert torch.equal(double(torch.ones(2)), torch.full((2,), 2.0))
"""


def test_a_new_project_set_up_by_mltest_init_builds_and_runs_its_unit_tier(tmp_path: Path) -> None:
    """The user's path: a small torch project, `mltest init`, `mltest docker build`, then its unit tier
    inside the image, with mltest installed there from the wheelhouse like any dependency."""
    base_image, wheels = build_inputs()
    project = tmp_path / "tinyml"
    (project / "tinyml").mkdir(parents=True)
    (project / "tests").mkdir()
    (project / "pyproject.toml").write_text(TINY_PYPROJECT)
    (project / "tinyml" / "__init__.py").write_text("def double(x):\n    return 2 * x\n")
    (project / "tests" / "test_tiny.py").write_text(TINY_TEST)
    git(project, "init", "-q", "-b", "main")
    init = subprocess.run([*CLI, "init", "--dir", str(project)], capture_output=True, text=True, check=False)
    assert init.returncode == 0, init.stderr
    assert (project / "dockerfiles" / "base.Dockerfile").is_file()
    git(project, "add", "-A")
    git(project, "commit", "-qm", "tiny model")
    house = tmp_path / "wheels"
    house.mkdir()
    for wheel in wheels.glob("*.whl"):
        if not wheel.name.startswith("mltest-"):
            os.link(wheel, house / wheel.name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(house), str(Path(__file__).parents[2])],
        check=True,
        capture_output=True,
    )
    argv = ["docker", "build", "--target", "base", "--wheelhouse", str(house), "--base-image", base_image]
    argv += ["--tag", "mltest-test-tinyml", "--project-dir", str(project)]
    proc = subprocess.run([*CLI, *argv], capture_output=True, text=True, cwd=project, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    sha = git(project, "rev-parse", "HEAD").strip()
    ref = f"mltest-test-tinyml:{sha[:12]}"
    unit = run_in(ref, "mltest", "run", "unit", "-p", "no:cacheprovider")
    assert unit.returncode == 0, unit.stdout[-3000:] + unit.stderr
    assert "1 passed" in unit.stdout
    assert "tinyml" not in run_in(ref, "sh", "-c", "ls /opt/venv/lib/python3*/site-packages").stdout  # in /opt/project


def test_a_push_that_cannot_reach_its_registry_is_one_line(images: Images) -> None:
    from mltest.docker import push_image
    from mltest.errors import DockerError

    client = engine()
    try:
        target = "127.0.0.1:9/mltest-test-push:unreachable"
        client.api.tag(images.base, "127.0.0.1:9/mltest-test-push", "unreachable")
        try:
            with pytest.raises(DockerError) as failure:
                push_image(client, target)
        finally:
            client.api.remove_image(target)
    finally:
        client.close()
    message = str(failure.value)
    assert message.startswith(f"pushing {target} failed: ")
    assert "\n" not in message
