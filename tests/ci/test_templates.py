"""The CI templates in ci/: linted as shipped and as `mltest init` fills them, and read as data.

Linters: actionlint (with shellcheck for the `run:` scripts) for GitHub Actions, check-jsonschema's
built-in GitLab CI schema for GitLab. Both come with the test extra; a missing one fails the run.
The structural tests read the YAML and check what the templates promise: the GPU job only on a
schedule or dispatch of the main branch, never on a pull request; shards; secrets by their name.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from linters import lint_module, lint_tool

from mltest.cli import init_cmd
from mltest.cli.init_cmd import Values, fill
from mltest.errors import MltestError

ROOT = Path(__file__).resolve().parents[2]
CI = ROOT / "ci"
GITHUB_WORKFLOWS = ("unit.yml", "nightly-gpu.yml", "images.yml")
GITLAB_INCLUDE = CI / "gitlab" / "mltest.gitlab-ci.yml"
LINT_TIMEOUT = 120

# Non-default values for the generated files.
LABELS = ("self-hosted", "linux", "x64", "a100")
SECRET = "TEAM_RESULTS_DB"
BRANCH = "release/2.0"
SHARDS = 5


# ----------------------------------------------------------------------------- helpers
def _tool(name: str) -> str:
    return lint_tool(name)


def actionlint(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    command = [_tool("actionlint"), "-no-color", "-oneline", "-shellcheck", _tool("shellcheck"), "-pyflakes=", *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=LINT_TIMEOUT, check=False)


def gitlab_schema(*files: Path) -> subprocess.CompletedProcess[str]:
    lint_module("check_jsonschema")
    command = [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.gitlab-ci", *map(str, files)]
    return subprocess.run(command, capture_output=True, text=True, timeout=LINT_TIMEOUT, check=False)


def load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(document, dict), path
    return document


def triggers(workflow: dict[str, Any]) -> dict[str, Any]:
    """A workflow's ``on:`` (PyYAML, a YAML 1.1 reader, reads the key ``on`` as True)."""
    on = workflow.get("on", workflow.get(True))
    assert isinstance(on, dict), on
    return on


def steps_running(job: dict[str, Any], text: str) -> list[dict[str, Any]]:
    return [s for s in job["steps"] if text in str(s.get("run", ""))]


def step_using(job: dict[str, Any], action: str) -> dict[str, Any]:
    (step,) = [s for s in job["steps"] if str(s.get("uses", "")).startswith(action + "@")]
    return step


def github_workflows(folder: Path, prefix: str = "") -> dict[str, dict[str, Any]]:
    return {name: load(folder / f"{prefix}{name}") for name in GITHUB_WORKFLOWS}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Repositories written by `mltest init` with non-default values, one per CI system."""
    repos = {}
    for ci in ("github", "gitlab"):
        repo = tmp_path_factory.mktemp(f"init-{ci}")
        (repo / ".git").mkdir()
        (repo / "pyproject.toml").write_text(
            '[project]\nname = "tiny"\nversion = "0"\n\n[project.optional-dependencies]\ntests = ["pytest"]\n',
            encoding="utf-8",
        )
        init_cmd.init(repo, ci=ci, gpu_labels=LABELS, store_secret=SECRET, main_branch=BRANCH, shards=SHARDS)
        repos[ci] = repo
    return repos


# ----------------------------------------------------------------------------- linters
@pytest.mark.integration
def test_shipped_github_workflows_pass_actionlint_with_shellcheck() -> None:
    files = [str(CI / "github" / name) for name in GITHUB_WORKFLOWS]
    proc = actionlint("-config-file", str(CI / "github" / "actionlint.yaml"), *files, cwd=ROOT)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


@pytest.mark.integration
def test_actionlint_fails_a_broken_workflow_and_unknown_gpu_labels(tmp_path: Path) -> None:
    """The lint test can fail: a bad expression, an unquoted shell variable, and (without the
    actionlint config mltest init writes) the custom GPU label are all reported."""
    text = (CI / "github" / "nightly-gpu.yml").read_text(encoding="utf-8")
    broken = tmp_path / "broken.yml"
    broken.write_text(
        text.replace("${{ secrets.MLTEST_STORE_URL }}", "${{ secret.MLTEST_STORE_URL }}", 1).replace(
            "run: nvidia-smi", "run: nvidia-smi -i $GPU"
        ),
        encoding="utf-8",
    )
    proc = actionlint(str(broken), cwd=tmp_path)
    assert proc.returncode == 1
    assert 'undefined variable "secret"' in proc.stdout
    assert "SC2086" in proc.stdout
    assert 'label "gpu" is unknown' in proc.stdout


@pytest.mark.integration
def test_shipped_gitlab_include_passes_the_gitlab_ci_schema() -> None:
    proc = gitlab_schema(GITLAB_INCLUDE)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ok -- validation done" in proc.stdout


@pytest.mark.integration
def test_the_gitlab_schema_check_fails_a_broken_include(tmp_path: Path) -> None:
    text = GITLAB_INCLUDE.read_text(encoding="utf-8")
    broken = tmp_path / "broken.gitlab-ci.yml"
    broken.write_text(text.replace("parallel: 2", "parallel: 500").replace("when: always", "when: sometimes", 1))
    proc = gitlab_schema(broken)
    assert proc.returncode == 1
    assert "Schema validation errors were encountered" in proc.stdout + proc.stderr


@pytest.mark.integration
def test_generated_github_workflows_pass_actionlint_as_a_user_runs_it(generated: dict[str, Path]) -> None:
    """`actionlint` with no arguments in the repository: it finds .github/workflows and the
    .github/actionlint.yaml that mltest init wrote with the custom labels."""
    repo = generated["github"]
    assert sorted(p.name for p in (repo / ".github" / "workflows").iterdir()) == [
        "mltest-images.yml",
        "mltest-nightly-gpu.yml",
        "mltest-unit.yml",
    ]
    proc = actionlint(cwd=repo)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")


@pytest.mark.integration
def test_generated_gitlab_files_pass_the_gitlab_ci_schema(generated: dict[str, Path]) -> None:
    repo = generated["gitlab"]
    proc = gitlab_schema(repo / ".gitlab-ci.yml", repo / ".gitlab" / "mltest.gitlab-ci.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ----------------------------------------------------------------------------- markers
def _marked(text: str) -> list[str]:
    return [line for line in text.splitlines() if init_cmd.MARKER.match(line)]


@pytest.mark.parametrize(
    ("path", "values"),
    [
        *[(CI / "github" / name, Values()) for name in (*GITHUB_WORKFLOWS, "actionlint.yaml")],
        (GITLAB_INCLUDE, Values(ci="gitlab", gpu_labels=("gpu",))),
    ],
    ids=lambda v: v.name if isinstance(v, Path) else "",
)
def test_filling_the_defaults_gives_the_shipped_file_back(path: Path, values: Values) -> None:
    """The shipped files are the templates with their default values: every marker finds its default."""
    text = path.read_text(encoding="utf-8")
    assert _marked(text), f"{path.name} has no # mltest: markers"
    assert fill(text, values, name=path.name) == text


def test_every_marked_line_changes_with_other_values() -> None:
    values = Values(gpu_labels=LABELS, store_secret=SECRET, main_branch=BRANCH, shards=SHARDS, test_extra="dev")
    for path in [*(CI / "github").iterdir(), GITLAB_INCLUDE]:
        text = path.read_text(encoding="utf-8")
        filled = fill(text, values, name=path.name)
        before, after = _marked(text), _marked(filled)
        assert len(before) == len(after)
        for old, new in zip(before, after, strict=True):
            assert old != new, f"{path.name}: {old!r} kept its default"
            assert new.endswith(old[old.index("  # mltest:") :]), "the marker comment stays"


def test_fill_refuses_an_unknown_marker_and_a_missing_default() -> None:
    with pytest.raises(MltestError, match=r"t\.yml line 2: unknown marker mltest:colour"):
        fill("a: 1\nb: red  # mltest:colour\n", Values(), name="t.yml")
    with pytest.raises(MltestError, match=r"t\.yml line 1: mltest:main-branch expects its default value once, found 0"):
        fill('ref: "trunk"  # mltest:main-branch\n', Values(), name="t.yml")
    with pytest.raises(MltestError, match="found 2"):
        fill("x: ['main', 'main']  # mltest:main-branch\n", Values(), name="t.yml")


def test_fill_keeps_crlf_line_ends_and_leaves_plain_comments_alone() -> None:
    text = '# the header mentions # mltest:main-branch\r\nref: "main"  # mltest:main-branch\r\n'
    assert fill(text, Values(main_branch="trunk")) == (
        '# the header mentions # mltest:main-branch\r\nref: "trunk"  # mltest:main-branch\r\n'
    )


def test_labels_that_yaml_would_read_as_other_types_are_quoted() -> None:
    values = Values(gpu_labels=("gpu", "yes", "1", "null", "1e3", "ON", "v100"))
    line = fill("runs-on: [self-hosted, linux, gpu]  # mltest:gpu-labels\n", values)
    assert line.startswith('runs-on: [gpu, "yes", "1", "null", "1e3", "ON", v100]')
    assert yaml.safe_load(line)["runs-on"] == ["gpu", "yes", "1", "null", "1e3", "ON", "v100"]


# ----------------------------------------------------------------------------- structure: GitHub
@pytest.mark.parametrize("source", ["shipped", "generated"])
def test_github_nightly_runs_only_on_schedule_or_dispatch_of_main(source: str, generated: dict[str, Path]) -> None:
    if source == "shipped":
        workflows = github_workflows(CI / "github")
        labels, secret, branch, shards, extra = ("self-hosted", "linux", "gpu"), "MLTEST_STORE_URL", "main", 2, "test"
    else:
        workflows = github_workflows(generated["github"] / ".github" / "workflows", prefix="mltest-")
        labels, secret, branch, shards, extra = LABELS, SECRET, BRANCH, SHARDS, "tests"
    nightly = workflows["nightly-gpu.yml"]
    on = triggers(nightly)
    assert set(on) == {"schedule", "workflow_dispatch"}, "no GPU job on push or pull_request"
    assert re.fullmatch(r"[\d*/,-]+ [\d*/,-]+ \* \* \*", on["schedule"][0]["cron"])
    assert nightly["permissions"] == {"contents": "read"}
    assert nightly["concurrency"]["cancel-in-progress"] is False

    gpu = nightly["jobs"]["integration"]
    assert gpu["runs-on"] == list(labels)
    assert gpu["if"] == f"${{{{ github.ref == 'refs/heads/{branch}' }}}}"
    assert gpu["strategy"]["fail-fast"] is False
    assert gpu["strategy"]["matrix"] == {"shard": [f"{i}/{shards}" for i in range(1, shards + 1)]}
    assert isinstance(gpu["timeout-minutes"], int)
    assert gpu["env"]["MLTEST_STORE_URL"] == f"${{{{ secrets.{secret} }}}}"
    assert gpu["env"]["MLTEST_MAIN_BRANCH"] == branch
    assert gpu["env"]["MLTEST_SHEETS_CREDENTIALS_JSON"] == "${{ secrets.MLTEST_SHEETS_CREDENTIALS_JSON }}"
    checkout = step_using(gpu, "actions/checkout")
    assert checkout["with"] == {"ref": "${{ github.sha }}", "fetch-depth": 0}
    run_steps = [str(s.get("run", "")) for s in gpu["steps"]]
    assert run_steps.index("nvidia-smi") < next(i for i, r in enumerate(run_steps) if "mltest ci nightly" in r)
    (install,) = steps_running(gpu, "pip install")
    assert install["run"] == f'python -m pip install -e ".[{extra}]" mltest'
    (tier,) = steps_running(gpu, "mltest ci nightly")
    assert tier["run"] == 'mltest ci nightly --shard "${{ matrix.shard }}" --artifacts mltest-report'
    upload = step_using(gpu, "actions/upload-artifact")
    assert upload["if"] == "${{ always() }}"
    assert upload["with"]["path"] == "mltest-report/"

    report = nightly["jobs"]["report"]
    assert report["needs"] == "integration"
    assert report["runs-on"] == "ubuntu-latest", "detection needs no GPU"
    assert report["if"] == f"${{{{ !cancelled() && github.ref == 'refs/heads/{branch}' }}}}"
    assert report["env"]["MLTEST_STORE_URL"] == f"${{{{ secrets.{secret} }}}}"
    (final,) = steps_running(report, "mltest ci nightly")
    assert final["run"] == "mltest ci nightly --report-only --artifacts mltest-report --policy fail"
    assert step_using(report, "actions/upload-artifact")["if"] == "${{ always() }}"

    unit = workflows["unit.yml"]
    assert set(triggers(unit)) == {"push", "pull_request"}
    assert unit["permissions"] == {"contents": "read"}
    assert unit["concurrency"]["cancel-in-progress"] == f"${{{{ github.ref != 'refs/heads/{branch}' }}}}"
    (job,) = unit["jobs"].values()
    assert job["runs-on"] == "ubuntu-latest"
    assert step_using(job, "actions/setup-python")["with"]["cache"] == "pip"
    assert job["env"]["MLTEST_STORE_URL"] == f"${{{{ secrets.{secret} }}}}"
    assert steps_running(job, "pip install")[0]["run"] == f'python -m pip install -e ".[{extra}]" mltest'
    assert steps_running(job, "mltest ci unit")[0]["run"] == "mltest ci unit --artifacts mltest-artifacts"
    assert step_using(job, "actions/upload-artifact")["with"]["path"] == "mltest-artifacts/"

    images = workflows["images.yml"]
    push = triggers(images)["push"]
    assert push["branches"] == [branch]
    assert {"dockerfiles/**", "pyproject.toml", "requirements*.txt"} <= set(push["paths"])
    assert images["permissions"] == {"contents": "read", "packages": "write"}
    (build,) = steps_running(images["jobs"]["images"], "mltest docker build")
    assert "ghcr.io/${GITHUB_REPOSITORY,,}:${GITHUB_SHA}" in build["run"]
    assert "--push" in build["run"]


def test_no_github_job_reachable_from_a_pull_request_asks_for_a_self_hosted_runner() -> None:
    for name in GITHUB_WORKFLOWS:
        workflow = load(CI / "github" / name)
        if "pull_request" not in triggers(workflow):
            continue
        for job in workflow["jobs"].values():
            labels = job["runs-on"] if isinstance(job["runs-on"], list) else [job["runs-on"]]
            assert "self-hosted" not in labels, name
            assert "gpu" not in labels, name


# ----------------------------------------------------------------------------- structure: GitLab
@pytest.mark.parametrize("source", ["shipped", "generated"])
def test_gitlab_nightly_runs_only_on_the_main_branch_schedule(source: str, generated: dict[str, Path]) -> None:
    if source == "shipped":
        doc = load(GITLAB_INCLUDE)
        labels, secret, branch, shards, extra = ["gpu"], "MLTEST_STORE_URL", "main", 2, "test"
    else:
        doc = load(generated["gitlab"] / ".gitlab" / "mltest.gitlab-ci.yml")
        labels, secret, branch, shards, extra = list(LABELS), SECRET, BRANCH, SHARDS, "tests"
        root = load(generated["gitlab"] / ".gitlab-ci.yml")
        assert root == {"include": [{"local": ".gitlab/mltest.gitlab-ci.yml"}]}
    schedule_rule = '$CI_PIPELINE_SOURCE == "schedule" && $CI_COMMIT_BRANCH == $MLTEST_MAIN_BRANCH'
    assert doc["variables"]["MLTEST_MAIN_BRANCH"] == branch
    base = doc[".mltest-python"]
    assert base["before_script"] == [
        f'python -m pip install -e ".[{extra}]" mltest',
        f'export MLTEST_STORE_URL="${secret}"',
    ]

    nightly = doc["mltest-nightly"]
    assert nightly["rules"] == [{"if": schedule_rule}]
    assert nightly["tags"] == labels
    assert nightly["parallel"] == shards
    assert nightly["script"][0] == "nvidia-smi"
    assert 'mltest ci nightly --shard "$CI_NODE_INDEX/$CI_NODE_TOTAL"' in nightly["script"][1]
    assert nightly["artifacts"]["when"] == "always"
    assert nightly["artifacts"]["reports"]["junit"] == "mltest-report/*.xml"

    report = doc["mltest-nightly-report"]
    assert report["needs"] == ["mltest-nightly"]
    assert report["rules"] == [{"if": schedule_rule, "when": "always"}]
    assert "tags" not in report, "detection needs no GPU"
    assert report["script"] == ["mltest ci nightly --report-only --artifacts mltest-report --policy fail"]

    unit = doc["mltest-unit"]
    assert "tags" not in unit
    assert all("schedule" not in rule["if"] for rule in unit["rules"] if rule.get("when") != "never")
    assert {rule["if"] for rule in unit["rules"]} >= {
        '$CI_PIPELINE_SOURCE == "merge_request_event"',
        '$CI_PIPELINE_SOURCE == "push"',
    }
    assert unit["script"] == ["mltest ci unit --artifacts mltest-artifacts"]
    assert unit["artifacts"]["reports"]["junit"] == "mltest-artifacts/*.xml"

    images = doc["mltest-images"]
    (rule,) = images["rules"]
    assert rule["if"] == '$CI_PIPELINE_SOURCE == "push" && $CI_COMMIT_BRANCH == $MLTEST_MAIN_BRANCH'
    assert {"dockerfiles/**/*", "pyproject.toml", "requirements*.txt"} <= set(rule["changes"])
    assert images["services"] == ["docker:27-dind"]
    assert any('--tag "$CI_REGISTRY_IMAGE:$CI_COMMIT_SHA" --push' in line for line in images["script"])
