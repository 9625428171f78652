"""`mltest init`: what it writes into a repository, what it never touches, what it prints, and that
an installed wheel carries its templates (the canonical files are the top-level ci/, dockerfiles/ and
.dockerignore, reached through the symlinks in mltest/templates/)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from gitrepo import git

from mltest.cli import init_cmd, main
from mltest.config import load_settings
from mltest.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = """\
# The project's own comment, kept as it is.
[project]
name = "tinyclf"
version = "0.1.0"
dependencies = ["numpy"]

[project.optional-dependencies]
test = ["pytest", "mltest"]

[tool.ruff]
line-length = 100
"""
GITHUB_WRITES = [
    ".github/workflows/mltest-unit.yml",
    ".github/workflows/mltest-nightly-gpu.yml",
    ".github/workflows/mltest-images.yml",
    ".github/actionlint.yaml",
]


def docker_writes() -> list[str]:
    return [f"dockerfiles/{p.name}" for p in sorted((ROOT / "dockerfiles").iterdir()) if p.is_file()] + [
        ".dockerignore"
    ]


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh git repository with a small pyproject.toml, the current directory."""
    root = tmp_path / "tinyclf"
    root.mkdir()
    git(root, "init", "-q")
    (root / "pyproject.toml").write_text(PYPROJECT, encoding="utf-8")
    monkeypatch.chdir(root)
    return root


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["init", *args])
    out, err = capsys.readouterr()
    return code, out, err


def said(out: str) -> str:
    """The output with runs of spaces collapsed (the file column's width depends on the longest path)."""
    return "\n".join(" ".join(line.split()) for line in out.splitlines())


def snapshot(root: Path) -> dict[str, bytes]:
    files = [p for p in sorted(root.rglob("*")) if p.is_file() and ".git" not in p.parts]
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


# ----------------------------------------------------------------------------- a fresh repository
def test_init_writes_templates_dockerfiles_and_config_into_a_fresh_repository(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(
        capsys, "--gpu-labels", "self-hosted,linux,a100", "--store-secret", "TEAM_DB", "--main-branch", "trunk"
    )
    assert (code, err) == (0, "")
    for path in [*GITHUB_WRITES, *docker_writes()]:
        assert (repo / path).is_file(), path
        assert f"wrote {path}\n" in said(out) + "\n"
    # The Dockerfiles are copied as they are.
    for path in docker_writes():
        source = ROOT / (".dockerignore" if path == ".dockerignore" else path)
        assert (repo / path).read_bytes() == source.read_bytes()
    nightly = (repo / ".github/workflows/mltest-nightly-gpu.yml").read_text(encoding="utf-8")
    assert "runs-on: [self-hosted, linux, a100]  # mltest:gpu-labels" in nightly
    assert "${{ secrets.TEAM_DB }}" in nightly
    assert "secrets.MLTEST_STORE_URL" not in nightly
    assert "github.ref == 'refs/heads/trunk'" in nightly

    # pyproject.toml: the original text untouched, a [tool.mltest] table appended, which mltest reads.
    text = (repo / "pyproject.toml").read_text(encoding="utf-8")
    assert text.startswith(PYPROJECT + "\n[tool.mltest]\n")
    assert tomllib.loads(text)["tool"]["ruff"] == {"line-length": 100}
    settings = load_settings(repo, environ={})
    assert settings.config_file == repo / "pyproject.toml"
    assert (settings.tier, settings.device, settings.main_branch) == ("unit", "cuda", "trunk")
    assert "appended pyproject.toml (a starter [tool.mltest] table)" in said(out)

    # What it prints: the values, every file, then the next steps.
    assert out.startswith(
        f"mltest init: GitHub Actions in {repo} (main branch trunk, 2 shards, GPU runner labels "
        "self-hosted, linux, a100, store secret TEAM_DB)\n"
    )
    steps = out.split("next steps:\n", 1)[1]
    assert "  1. add the repository secret TEAM_DB (Settings > Secrets and variables > Actions)" in steps
    assert "  2. register a self-hosted runner" in steps
    assert "with the labels self-hosted, linux, a100" in steps
    assert "  3. commit and push: git add .dockerignore .github dockerfiles pyproject.toml && git commit" in steps
    assert "  4. the nightly runs at 02:17 UTC when trunk is the default branch; start one now: " in steps
    assert "Run workflow, on trunk" in steps
    assert "note:" not in out, "a git repository needs no note"


def test_init_for_gitlab_writes_the_include_and_a_root_file_that_includes_it(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "--ci", "gitlab", "--shards", "3", "--gpu-labels", "gpu,a100")
    assert code == 0
    assert (repo / ".gitlab-ci.yml").read_text(encoding="utf-8") == init_cmd.GITLAB_ROOT_TEXT
    include = (repo / ".gitlab/mltest.gitlab-ci.yml").read_text(encoding="utf-8")
    assert "  parallel: 3  # mltest:shards" in include
    assert "  tags: [gpu, a100]  # mltest:gpu-labels" in include
    assert not (repo / ".github").exists()
    assert "add the CI/CD variable MLTEST_STORE_URL, protected and masked" in out
    assert "create a nightly pipeline schedule on main" in out


def test_the_install_step_uses_the_projects_test_extra(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "pyproject.toml").write_text(PYPROJECT.replace('test = ["pytest"', 'dev = ["pytest"'), encoding="utf-8")
    assert run(capsys, "--ci", "gitlab")[0] == 0
    assert '- python -m pip install -e ".[dev]" mltest  # mltest:install' in (
        repo / ".gitlab/mltest.gitlab-ci.yml"
    ).read_text(encoding="utf-8")


def test_a_project_without_pyproject_gets_mltest_yaml_and_a_note_without_git(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "--dir", str(tmp_path), "--main-branch", "develop")
    assert code == 0
    assert not (tmp_path / "pyproject.toml").exists()
    settings = load_settings(tmp_path, environ={})
    assert settings.config_file == tmp_path / "mltest.yaml"
    assert settings.main_branch == "develop"
    assert "wrote mltest.yaml" in said(out)
    assert "note: no .git here: `git init` it, then push it to GitHub\n" in out
    assert 'python -m pip install -e "." mltest  # mltest:install' in (
        tmp_path / ".github/workflows/mltest-unit.yml"
    ).read_text(encoding="utf-8")


def test_crlf_pyproject_gets_a_crlf_table(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "pyproject.toml").write_bytes(PYPROJECT.replace("\n", "\r\n").rstrip("\r\n").encode())
    assert run(capsys)[0] == 0
    data = (repo / "pyproject.toml").read_bytes()
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert tomllib.loads(data.decode())["tool"]["mltest"]["main_branch"] == "main"


# ----------------------------------------------------------------------------- never clobber
def test_an_existing_template_destination_stops_everything_without_force(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (repo / ".github/workflows").mkdir(parents=True)
    (repo / ".github/workflows/mltest-unit.yml").write_text("name: mine\n", encoding="utf-8")
    (repo / ".dockerignore").write_text("data/\n", encoding="utf-8")
    before = snapshot(repo)
    code, out, err = run(capsys)
    assert code == 2
    assert out == ""
    assert err == (
        f"mltest: error: {repo}: .github/workflows/mltest-unit.yml, .dockerignore already exist with other "
        "content; nothing was written (--force replaces them)\n"
    )
    assert snapshot(repo) == before


def test_force_replaces_templates_and_says_so_but_never_the_users_own_config(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (repo / ".github/workflows").mkdir(parents=True)
    (repo / ".github/workflows/mltest-unit.yml").write_text("name: mine\non: push\n", encoding="utf-8")
    own_lint = "self-hosted-runner:\n  labels: [big-gpu]\n"
    (repo / ".github/actionlint.yaml").write_text(own_lint, encoding="utf-8")
    code, out, _ = run(capsys, "--force")
    assert code == 0
    assert "replaced .github/workflows/mltest-unit.yml (--force: its 2 lines were replaced)" in said(out)
    assert "mltest ci unit" in (repo / ".github/workflows/mltest-unit.yml").read_text(encoding="utf-8")
    assert (repo / ".github/actionlint.yaml").read_text(encoding="utf-8") == own_lint
    assert (
        "kept .github/actionlint.yaml (your own actionlint config; add the labels self-hosted, linux, gpu "
        "to its self-hosted-runner.labels)"
    ) in said(out)


def test_running_init_again_changes_nothing(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "--shards", "4")[0] == 0
    before = snapshot(repo)
    code, out, _ = run(capsys, "--shards", "4")
    assert code == 0
    assert snapshot(repo) == before
    assert "unchanged .github/workflows/mltest-nightly-gpu.yml (already as mltest init writes it)" in said(out)
    assert "kept pyproject.toml ([tool.mltest] is already there" in said(out)
    assert "  3. commit and push the files above, if you have not yet" in out
    # Other values: the templates now differ, so it refuses without --force.
    assert run(capsys, "--shards", "2")[0] == 2


def test_an_existing_tool_mltest_table_is_never_touched(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mine = PYPROJECT + '\n[tool.mltest]\nunit_budget = 1\nmain_branch = "main"\n'
    (repo / "pyproject.toml").write_text(mine, encoding="utf-8")
    code, out, _ = run(capsys, "--force", "--main-branch", "trunk")
    assert code == 0
    assert (repo / "pyproject.toml").read_text(encoding="utf-8") == mine
    assert (
        "kept pyproject.toml ([tool.mltest] is already there and left untouched; check that main_branch is 'trunk')"
    ) in said(out)
    assert not (repo / "mltest.yaml").exists()


def test_an_existing_mltest_yaml_is_kept_and_pyproject_left_alone(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (repo / "mltest.yaml").write_text("unit_budget: 2\n", encoding="utf-8")
    assert run(capsys)[0] == 0
    assert (repo / "pyproject.toml").read_text(encoding="utf-8") == PYPROJECT
    assert (repo / "mltest.yaml").read_text(encoding="utf-8") == "unit_budget: 2\n"


def test_an_existing_gitlab_ci_is_kept_with_how_to_include(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (repo / ".gitlab-ci.yml").write_text("lint:\n  script: [make lint]\n", encoding="utf-8")
    code, out, _ = run(capsys, "--ci", "gitlab", "--force")
    assert code == 0
    assert (repo / ".gitlab-ci.yml").read_text(encoding="utf-8") == "lint:\n  script: [make lint]\n"
    assert "add `include: [{local: .gitlab/mltest.gitlab-ci.yml}]` to it" in out
    (repo / ".gitlab-ci.yml").write_text(
        "include:\n  - local: .gitlab/mltest.gitlab-ci.yml\nlint:\n  script: [make lint]\n", encoding="utf-8"
    )
    assert "kept .gitlab-ci.yml (already set up)" in said(run(capsys, "--ci", "gitlab")[1])


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--shards", "0"], "argument --shards: shards '0': expected a whole number from 1 to 64"),
        (["--shards", "65"], "argument --shards: shards '65': expected a whole number from 1 to 64"),
        (["--shards", "two"], "argument --shards: shards 'two': expected a whole number from 1 to 64"),
        (["--gpu-labels", ""], "argument --gpu-labels: expected runner labels such as self-hosted,linux,gpu"),
        (["--gpu-labels", "gpu,a b!"], "argument --gpu-labels: runner label 'b!': use letters, digits"),
        (["--gpu-labels", "gpu,gpu"], "argument --gpu-labels: runner labels 'gpu,gpu': a label is given twice"),
        (["--store-secret", "1DB"], "argument --store-secret: secret name '1DB': use letters, digits and '_'"),
        (["--store-secret", "GITHUB_DB"], "secret name 'GITHUB_DB': GitHub reserves names starting with GITHUB_"),
        (["--main-branch", "a..b"], "argument --main-branch: branch name 'a..b': use letters, digits"),
        (["--main-branch", "it's"], 'argument --main-branch: branch name "it\'s": use letters, digits'),
        (["--ci", "jenkins"], "argument --ci: invalid choice: 'jenkins'"),
    ],
)
def test_bad_flags_are_one_usage_error(
    repo: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["init", *args])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err
    assert snapshot(repo) == {"pyproject.toml": PYPROJECT.encode()}


def test_a_missing_or_non_directory_target_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "--dir", str(tmp_path / "nope")) == (
        2,
        "",
        f"mltest: error: --dir {tmp_path / 'nope'}: no such directory; give your repository's directory\n",
    )
    (tmp_path / "file").write_text("x", encoding="utf-8")
    assert run(capsys, "--dir", str(tmp_path / "file"))[2] == (
        f"mltest: error: --dir {tmp_path / 'file'}: not a directory; give your repository's directory\n"
    )


def test_a_pyproject_that_cannot_take_a_table_is_refused_before_anything_is_written(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (repo / "pyproject.toml").write_text("tool = {black = {line-length = 100}}\n", encoding="utf-8")
    code, _, err = run(capsys)
    assert code == 2
    assert err.startswith(f"mltest: error: {repo / 'pyproject.toml'}: cannot append a [tool.mltest] table to it (")
    assert err.count("\n") == 1
    assert snapshot(repo) == {"pyproject.toml": b"tool = {black = {line-length = 100}}\n"}
    (repo / "pyproject.toml").write_text("[project\n", encoding="utf-8")
    assert "pyproject.toml: invalid TOML (" in run(capsys)[2]


def test_the_programmatic_entry_point_validates_too(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--ci 'circle': choose github or gitlab"):
        init_cmd.init(tmp_path, ci="circle")
    with pytest.raises(ConfigError, match="shards 0: expected a whole number"):
        init_cmd.init(tmp_path, shards=0)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- the installed wheel
def canonical(entry: str) -> Path:
    """The canonical file behind a wheel entry under mltest/templates/."""
    relative = entry.removeprefix("mltest/templates/")
    return ROOT / (".dockerignore" if relative == "dockerignore" else relative)


def _source_copy(destination: Path) -> Path:
    """The files a wheel is built from, symlinks kept as symlinks."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    for name in ("mltest", "ci", "dockerfiles"):
        shutil.copytree(ROOT / name, destination / name, symlinks=True, ignore=ignore)
    for name in ("pyproject.toml", "README.md", ".dockerignore"):
        shutil.copy2(ROOT / name, destination / name)
    return destination


def test_the_template_links_point_at_the_canonical_files() -> None:
    templates = ROOT / "mltest" / "templates"
    assert os.readlink(templates / "ci") == "../../ci"
    assert os.readlink(templates / "dockerfiles") == "../../dockerfiles"
    assert os.readlink(templates / "dockerignore") == "../../.dockerignore"
    assert init_cmd.template_root().joinpath("ci", "github", "unit.yml").is_file()


@pytest.mark.integration
def test_an_installed_wheel_carries_the_templates_and_init_works_from_it(tmp_path: Path) -> None:
    source = _source_copy(tmp_path / "src")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLTEST_", "PYTHON", "PIP_"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    wheels = tmp_path / "wheels"
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheels),
            str(source),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = wheels.glob("mltest-*.whl")

    expected = {
        f"mltest/templates/{p.relative_to(ROOT).as_posix()}" for p in (ROOT / "ci").rglob("*") if p.is_file()
    } | {f"mltest/templates/dockerfiles/{p.name}" for p in (ROOT / "dockerfiles").iterdir() if p.is_file()}
    expected.add("mltest/templates/dockerignore")
    with zipfile.ZipFile(wheel) as archive:
        entries = {info.filename: info for info in archive.infolist()}
        assert expected <= set(entries)
        for name in expected:
            mode = entries[name].external_attr >> 16
            assert not stat.S_ISLNK(mode), f"{name} is a symlink in the wheel"
            assert archive.read(name) == canonical(name).read_bytes()

    site = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", str(site), str(wheel)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    target = tmp_path / "user-repo"
    target.mkdir()
    probe = (
        "import mltest, sys; from importlib.resources import files; "
        "t = files('mltest') / 'templates'; "
        "print(mltest.__file__); print((t / 'ci' / 'github' / 'nightly-gpu.yml').is_file()); "
        "from mltest.cli import main; sys.exit(main(['init', '--ci', 'gitlab', '--dir', sys.argv[1]]))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe, str(target)],
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    where, found = proc.stdout.splitlines()[:2]
    assert Path(where).is_relative_to(site), "the wheel's mltest, not the source tree's"
    assert found == "True"
    shipped = (ROOT / "ci/gitlab/mltest.gitlab-ci.yml").read_text(encoding="utf-8")
    expected_text = init_cmd.fill(shipped, init_cmd.Values(ci="gitlab", gpu_labels=("gpu",), test_extra=None))
    assert (target / ".gitlab/mltest.gitlab-ci.yml").read_text(encoding="utf-8") == expected_text
    assert (target / "dockerfiles/base.Dockerfile").is_file()
    assert (target / ".dockerignore").read_bytes() == (ROOT / ".dockerignore").read_bytes()
