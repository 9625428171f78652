"""The Docker engine for tests: the real one, with a local base image and a host-built wheelhouse.

No registry can be reached from our machines, so the base image and the wheels come from the host:
``MLTEST_DOCKER_BASE_IMAGE`` names a local image (``dockerfiles/local-base.sh`` makes one with
debootstrap + ``docker import``) and ``MLTEST_DOCKER_WHEELHOUSE`` a folder of wheels (``pip wheel``
on the host). ``.ci/run`` provisions all three. Missing ones skip the Docker tests with the reason,
or fail them under ``MLTEST_REQUIRE_SERVICES=1``. Read at import: the tests' environment cleaning
removes ``MLTEST_*`` variables before each test.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gitrepo import git
from pgserver import service_missing

REPO = Path(__file__).resolve().parents[1]
BASE_IMAGE = os.environ.get("MLTEST_DOCKER_BASE_IMAGE", "")
WHEELHOUSE = os.environ.get("MLTEST_DOCKER_WHEELHOUSE", "")
EXTRAS = "testing"
"""mltest's own image installs the test-running set only (no linters, no pyarrow)."""


def engine() -> Any:
    """A live docker SDK client, or skip/fail with what is missing and how to provide it."""
    try:
        import docker  # noqa: F401
    except ImportError:
        service_missing("the docker SDK is not installed: pip install 'mltest[docker]'")
    from mltest.docker import connect
    from mltest.errors import DockerUnavailable

    try:
        return connect()
    except DockerUnavailable as exc:
        service_missing(f"Docker tests need an engine: {exc}")


def build_inputs() -> tuple[str, Path]:
    """(base image, wheelhouse) for image builds, checked to exist."""
    client = engine()
    if not BASE_IMAGE:
        service_missing(
            "set MLTEST_DOCKER_BASE_IMAGE to a local base image (no registry is reachable): "
            "sudo dockerfiles/local-base.sh makes mltest-local/debian:bookworm-minbase"
        )
    try:
        client.api.inspect_image(BASE_IMAGE)
    except Exception:
        service_missing(f"MLTEST_DOCKER_BASE_IMAGE={BASE_IMAGE} is not an image the engine has")
    wheels = Path(WHEELHOUSE) if WHEELHOUSE else None
    if wheels is None or not any(wheels.glob("torch-*.whl")):
        service_missing(
            "set MLTEST_DOCKER_WHEELHOUSE to a folder of wheels with torch in it: pip wheel -w DIR "
            "'.[testing]' torch==2.13.0 setuptools wheel ipython matplotlib py-spy"
        )
    return BASE_IMAGE, wheels


def copy_project(dest: Path) -> Path:
    """The tracked and untracked-but-not-ignored files of this checkout, as a fresh one-commit git repo
    (the same copy the Docker benchmark builds)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from benchmarks.docker import copy_repository

    return copy_repository(dest)


@dataclass(frozen=True)
class Images:
    project: str
    base: str
    debug: str
    name: str
    commit: str
    build_output: str


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def shared_images(shared_dir: Path) -> Images:
    """Base and debug images of a copy of this checkout, built once per test session through
    ``mltest docker build`` (a file lock makes xdist workers share one build)."""
    base_image, wheels = build_inputs()
    done = shared_dir / "docker-images.json"
    with _locked(shared_dir / "docker-images.lock"):
        if done.exists():
            return Images(**json.loads(done.read_text()))
        project = copy_project(shared_dir / "docker-project")
        name = f"mltest-test-{uuid.uuid4().hex[:8]}"
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                "from mltest.cli import main; raise SystemExit(main())",
                "docker",
                "build",
                "--wheelhouse",
                str(wheels),
                "--base-image",
                base_image,
                "--extras",
                EXTRAS,
                "--tag",
                name,
                "--project-dir",
                str(project),
            ],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=3000,
            check=False,
        )
        if proc.returncode != 0:
            output = f"{proc.stdout[-4000:]}\n{proc.stderr}"
            raise AssertionError(f"mltest docker build failed ({proc.returncode}):\n{output}")
        commit = git(project, "rev-parse", "HEAD").strip()
        images = Images(str(project), f"{name}:{commit[:12]}", f"{name}:{commit[:12]}-debug", name, commit, proc.stdout)
        done.write_text(json.dumps(asdict(images)))
        return images


def run_in(
    image: str, *command: str, timeout: float = 900, user: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``docker run --rm IMAGE COMMAND...`` through the docker CLI (what a user types)."""
    args = ["docker", "run", "--rm", "--network", "none"]
    if user is not None:
        args += ["--user", user]
    return subprocess.run([*args, image, *command], capture_output=True, text=True, timeout=timeout, check=False)
