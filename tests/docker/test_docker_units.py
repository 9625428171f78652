"""``mltest.docker`` and ``mltest docker`` without an engine: naming, wheelhouse staging, the size
heuristics, the requirements script the Dockerfiles run, the lint, and the no-engine error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from linters import lint_tool

from mltest.cli import main
from mltest.cli.docker_cmd import _split_tag, default_extras, image_name
from mltest.config import Settings
from mltest.docker import WHEELHOUSE_DIR, BuildSpec, ImageInfo, PathSize, informative_dirs, shares_layers
from mltest.docker.images import _clean_step, staged_wheelhouse
from mltest.errors import DockerError, DockerUnavailable

REPO = Path(__file__).resolve().parents[2]
DOCKERFILES = REPO / "dockerfiles"


def _spec(**kw: object) -> BuildSpec:
    values: dict[str, object] = {"context": Path("."), "name": "proj", "tag": "0123456789ab"}
    values.update(kw)
    return BuildSpec(**values)  # type: ignore[arg-type]


def test_tags_are_sha_and_sha_debug_with_a_variant_suffix_for_cuda() -> None:
    assert _spec().ref("base") == "proj:0123456789ab"
    assert _spec().ref("debug") == "proj:0123456789ab-debug"
    cuda = _spec(variant="cuda", name="ghcr.io/org/proj")
    assert cuda.ref("base") == "ghcr.io/org/proj:0123456789ab-cuda"
    assert cuda.ref("debug") == "ghcr.io/org/proj:0123456789ab-cuda-debug"


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"variant": "rocm"}, "unknown image variant 'rocm': choose one of cpu, cuda"),
        ({"targets": ("base", "slim")}, "unknown image target 'slim'"),
        ({"name": "My Project"}, "image name 'My Project' is not a valid repository name"),
        ({"name": "Proj"}, "image name 'Proj' is not a valid repository name"),
        ({"tag": "-bad"}, "image tag '-bad' is not valid"),
        ({"tag": "a" * 200}, "is not valid"),
    ],
)
def test_bad_build_specs_are_refused_with_what_to_use(kw: dict[str, object], message: str) -> None:
    with pytest.raises(DockerError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _spec(**kw)


def test_tag_option_takes_a_name_or_name_and_tag() -> None:
    settings = Settings(project="My_Project!")
    sha = "f" * 40
    assert image_name(settings) == "my_project"
    assert _split_tag(None, settings, sha) == ("my_project", "f" * 12)
    assert _split_tag("ghcr.io/org/img", settings, sha) == ("ghcr.io/org/img", "f" * 12)
    assert _split_tag("ghcr.io:5000/org/img:v1", settings, sha) == ("ghcr.io:5000/org/img", "v1")
    assert _split_tag("localhost:5000/img", settings, "unknown") == ("localhost:5000/img", "dev")


@pytest.mark.parametrize(
    ("extras", "expected"),
    [
        ('test = ["pytest"]\ndev = ["ruff"]', "test"),
        ('dev = ["ruff"]\ntesting = ["pytest"]', "testing"),
        ('docs = ["sphinx"]', ""),
    ],
)
def test_the_default_extras_are_the_projects_test_extra(tmp_path: Path, extras: str, expected: str) -> None:
    (tmp_path / "pyproject.toml").write_text(f'[project]\nname = "p"\n[project.optional-dependencies]\n{extras}\n')
    assert default_extras(tmp_path) == expected
    assert default_extras(tmp_path / "nowhere") == ""


def _wheel(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(b"PK" + name.encode())
    return path


def test_a_wheelhouse_is_staged_into_the_context_without_the_projects_own_wheel(tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "pyproject.toml").write_text('[project]\nname = "My.Project"\n')
    house = tmp_path / "house"
    _wheel(house, "torch-2.13.0-cp311-cp311-linux_x86_64.whl")
    _wheel(house, "numpy-2.0-cp311-cp311-linux_x86_64.whl")
    _wheel(house, "my_project-0.1-py3-none-any.whl")
    with staged_wheelhouse(context, house) as count:
        staged = sorted(p.name for p in (context / WHEELHOUSE_DIR).iterdir())
        assert count == 2
        assert staged == ["numpy-2.0-cp311-cp311-linux_x86_64.whl", "torch-2.13.0-cp311-cp311-linux_x86_64.whl"]
        assert (context / WHEELHOUSE_DIR / staged[1]).read_bytes() == (house / staged[1]).read_bytes()
    assert not (context / WHEELHOUSE_DIR).exists()
    assert sorted(p.name for p in house.iterdir())[0] == "my_project-0.1-py3-none-any.whl"  # source untouched


def test_an_existing_wheelhouse_folder_keeps_its_own_wheels(tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    mine = _wheel(context / WHEELHOUSE_DIR, "pytest-9-py3-none-any.whl")
    with staged_wheelhouse(context, None) as count:
        assert count == 1
    with staged_wheelhouse(context, _wheel(tmp_path / "h", "a-1-py3-none-any.whl").parent) as count:
        assert count == 2
    assert [p.name for p in (context / WHEELHOUSE_DIR).iterdir()] == [mine.name]


def test_a_missing_or_empty_wheelhouse_says_how_to_make_one(tmp_path: Path) -> None:
    missing = r"--wheelhouse .*nowhere: no such directory; make one with: pip wheel -w"
    with pytest.raises(DockerError, match=missing), staged_wheelhouse(tmp_path, tmp_path / "nowhere"):
        pass
    (tmp_path / "empty").mkdir()
    with pytest.raises(DockerError, match="holds no wheels"), staged_wheelhouse(tmp_path, tmp_path / "empty"):
        pass
    assert not (tmp_path / WHEELHOUSE_DIR).exists()


def test_history_steps_read_like_the_dockerfile() -> None:
    assert _clean_step("|2 OS_PACKAGES=git ca-certificates VARIANT=cpu /bin/bash -o pipefail -c apt-get  x") == (
        "apt-get x"
    )
    assert _clean_step("/bin/sh -c #(nop) COPY dir:abc in /opt/venv ") == "COPY dir:abc in /opt/venv"
    assert _clean_step("") == "(the base image's file system)"


def test_layer_sharing_is_a_prefix_of_the_file_system_layers() -> None:
    base = ImageInfo("b", "id", 10, ("l1", "l2"), ())
    assert shares_layers(base, ImageInfo("d", "id2", 20, ("l1", "l2", "l3"), ()))
    assert not shares_layers(base, ImageInfo("d", "id2", 20, ("l1", "x2", "l3"), ()))
    assert not shares_layers(base, ImageInfo("d", "id2", 20, ("l1",), ()))


def test_largest_directories_skip_parents_that_one_child_explains() -> None:
    mib = 2**20
    entries = [
        PathSize("/", 1000 * mib),
        PathSize("/opt", 900 * mib),
        PathSize("/opt/venv", 900 * mib),
        PathSize("/opt/venv/site-packages", 880 * mib),
        PathSize("/opt/venv/site-packages/torch", 600 * mib),
        PathSize("/opt/venv/site-packages/numpy", 280 * mib),
        PathSize("/usr", 100 * mib),
        PathSize("/usr/lib", 50 * mib),
        PathSize("/usr/share", 50 * mib),
        PathSize("/tiny", 1),
    ]
    got = [e.path for e in informative_dirs(entries, top=10)]
    assert got == [
        "/opt/venv/site-packages",
        "/opt/venv/site-packages/torch",
        "/opt/venv/site-packages/numpy",
        "/usr",
        "/usr/lib",
        "/usr/share",
    ]
    assert [e.path for e in informative_dirs(entries, top=2)] == got[:2]


def _requirements(tmp_path: Path, pyproject: str, extras: str, *more: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "pyproject.toml").write_text(pyproject)
    return subprocess.run(
        [sys.executable, str(DOCKERFILES / "requirements.py"), str(tmp_path / "pyproject.toml"), extras, *more],
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_image_requirements_expand_self_referencing_extras(tmp_path: Path) -> None:
    pyproject = (
        '[project]\nname = "My-Proj"\ndependencies = ["numpy>=1", "pyyaml"]\n'
        "[project.optional-dependencies]\n"
        'a = ["pytest", "numpy>=1"]\nb = ["ruff; python_version >= \'3.10\'"]\nall = ["my_proj[a,b]"]\n'
    )
    proc = _requirements(tmp_path, pyproject, "all")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["numpy>=1", "pyyaml", "pytest", "ruff; python_version >= '3.10'"]
    assert _requirements(tmp_path, pyproject, "").stdout.splitlines() == ["numpy>=1", "pyyaml"]


def test_the_image_requirements_add_mltest_and_torch_unless_the_project_is_mltest(tmp_path: Path) -> None:
    pyproject = '[project]\nname = "tiny"\ndependencies = ["numpy"]\n[project.optional-dependencies]\ntest = []\n'
    proc = _requirements(tmp_path, pyproject, "test", "mltest==0.1.0", "torch==2.13.0")
    assert proc.stdout.splitlines() == ["numpy", "mltest==0.1.0", "torch==2.13.0"]
    proc = _requirements(tmp_path, pyproject, "test", "mltest==0.1.0", "")  # TORCH="": no torch
    assert proc.stdout.splitlines() == ["numpy", "mltest==0.1.0"]
    own = '[project]\nname = "mltest"\ndependencies = ["pytest"]\n'
    assert _requirements(tmp_path, own, "", "mltest==0.1.0", "torch").stdout.splitlines() == ["pytest", "torch"]


def test_the_image_requirements_refuse_an_unknown_extra_in_one_line(tmp_path: Path) -> None:
    proc = _requirements(tmp_path, '[project]\nname = "p"\n[project.optional-dependencies]\ntest = []\n', "tests")
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        "requirements.py: pyproject.toml has no extra 'tests' (it has: test); fix the EXTRAS build argument"
    )
    proc = _requirements(tmp_path, "[tool.x]\na = 1\n", "")
    assert "has no [project] table" in proc.stderr


def test_hadolint_passes_on_both_dockerfiles_with_reasoned_ignores_only() -> None:
    hadolint = lint_tool("hadolint")
    proc = subprocess.run(
        [hadolint, "--config", str(REPO / ".hadolint.yaml"), *map(str, sorted(DOCKERFILES.glob("*.Dockerfile")))],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    config = (REPO / ".hadolint.yaml").read_text().splitlines()
    ignored = [i for i, line in enumerate(config) if line.strip().startswith("- DL") or line.strip().startswith("- SC")]
    assert ignored, "the config is read and ignores something"
    for index in ignored:  # every ignored rule has a reason in the comment right above it
        assert config[index - 1].strip().startswith("#"), config[index]
    for dockerfile in DOCKERFILES.glob("*.Dockerfile"):
        assert "hadolint ignore" not in dockerfile.read_text(), f"{dockerfile.name}: inline ignores hide the reason"


def test_hadolint_catches_a_bad_dockerfile(tmp_path: Path) -> None:
    hadolint = lint_tool("hadolint")
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text("FROM debian\nRUN cd /tmp && apt-get install -y curl\n")
    proc = subprocess.run(
        [hadolint, "--config", str(REPO / ".hadolint.yaml"), str(bad)], capture_output=True, text=True, check=False
    )
    assert proc.returncode != 0
    assert "DL3006" in proc.stdout  # untagged FROM


def test_the_dockerfiles_use_no_buildkit_only_features() -> None:
    for dockerfile in DOCKERFILES.glob("*.Dockerfile"):
        text = "\n".join(line for line in dockerfile.read_text().splitlines() if not line.lstrip().startswith("#"))
        assert "RUN --mount" not in text, dockerfile.name
        assert "<<" not in text.replace("<<<", ""), f"{dockerfile.name}: heredocs need BuildKit"
        assert "# syntax=" not in text, dockerfile.name


def test_no_engine_is_one_line_that_says_how_to_start_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("docker", reason="the docker SDK is in the test extra")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no.sock")
    from mltest.docker import connect

    with pytest.raises(DockerUnavailable, match="sudo systemctl start docker"):
        connect()
    monkeypatch.chdir(tmp_path)
    assert main(["docker", "inspect", "whatever:1"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"mltest: error: no Docker engine answers at unix://{tmp_path}/no.sock (")
    assert err.endswith("or point DOCKER_HOST at one")
    assert "\n" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["docker", "build", "--build-arg", "NOEQUALS"], "--build-arg 'NOEQUALS': expected KEY=VALUE"),
        (["docker", "build", "--variant", "rocm"], "invalid choice: 'rocm'"),
        (["docker", "inspect", "x", "--top", "0"], "--top '0': expected a whole number >= 1"),
    ],
)
def test_bad_flags_are_usage_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
