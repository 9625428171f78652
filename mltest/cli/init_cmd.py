"""``mltest init``: write mltest's CI templates, Dockerfiles and a starter config into a repository.

The templates are mltest's own ``ci/``, ``dockerfiles/`` and ``.dockerignore``, shipped in the package
as ``mltest/templates`` (symlinks in the source tree, plain files in a wheel). They are valid, lint-clean
files with default values; a value that ``mltest init`` fills in is marked by a ``# mltest:NAME``
comment at the end of its line, and on such a line exactly one occurrence of the default is replaced
(:func:`fill`). The comment stays, so a later reader sees which values came from ``mltest init``.

Nothing is overwritten without ``--force``: when a template's destination exists with other content,
nothing at all is written and the error lists every such file. The user's own configuration files
(``[tool.mltest]``, ``mltest.yaml``, ``.gitlab-ci.yml``, ``.github/actionlint.yaml``) are never replaced,
not even with ``--force``: the output says what to add to them.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from mltest.errors import ConfigError, MltestError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

if TYPE_CHECKING:
    if sys.version_info >= (3, 11):
        from importlib.resources.abc import Traversable
    else:  # pragma: no cover
        from importlib.abc import Traversable

__all__ = [
    "CI_SYSTEMS",
    "Action",
    "InitOutcome",
    "Values",
    "add_parser",
    "fill",
    "init",
    "summary",
    "template_root",
]

CiSystem = Literal["github", "gitlab"]
CI_SYSTEMS: tuple[CiSystem, ...] = ("github", "gitlab")
DEFAULT_LABELS: dict[CiSystem, tuple[str, ...]] = {"github": ("self-hosted", "linux", "gpu"), "gitlab": ("gpu",)}
DEFAULT_SECRET = "MLTEST_STORE_URL"
DEFAULT_BRANCH = "main"
DEFAULT_SHARDS = 2
MAX_SHARDS = 64
TEST_EXTRAS = ("test", "tests", "testing", "dev")
"""The first of these extras that the project's pyproject.toml has is what CI installs."""

# (template under mltest/templates, destination in the user's repository)
GITHUB_FILES = (
    ("ci/github/unit.yml", ".github/workflows/mltest-unit.yml"),
    ("ci/github/nightly-gpu.yml", ".github/workflows/mltest-nightly-gpu.yml"),
    ("ci/github/images.yml", ".github/workflows/mltest-images.yml"),
)
GITHUB_OWN = ("ci/github/actionlint.yaml", ".github/actionlint.yaml")
GITLAB_FILES = (("ci/gitlab/mltest.gitlab-ci.yml", ".gitlab/mltest.gitlab-ci.yml"),)
GITLAB_ROOT = ".gitlab-ci.yml"
GITLAB_ROOT_TEXT = """\
# GitLab CI, written by `mltest init`: mltest's jobs live in the included file.
include:
  - local: .gitlab/mltest.gitlab-ci.yml
"""
YAML_CONFIGS = ("mltest.yaml", "mltest.yml")

MARKER = re.compile(r"^(?P<code>\s*[^\s#].*?)(?P<marker>\s+#\s*mltest:(?P<key>[a-z][a-z-]*))\s*$")
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SECRET = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_BRANCH = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
_PLAIN = re.compile(r"^[A-Za-z][A-Za-z0-9._-]*$")
_YAML_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}
"""Words YAML 1.1 or 1.2 reads as booleans or null when plain (in any case)."""


# ----------------------------------------------------------------------------- values
@dataclass(frozen=True)
class Values:
    """What ``mltest init`` fills into the templates."""

    ci: CiSystem = "github"
    gpu_labels: tuple[str, ...] = DEFAULT_LABELS["github"]
    store_secret: str = DEFAULT_SECRET
    main_branch: str = DEFAULT_BRANCH
    shards: int = DEFAULT_SHARDS
    test_extra: str | None = "test"
    """The project's extra that CI installs (``pip install -e ".[EXTRA]"``); None: the project alone."""


def parse_labels(text: str) -> tuple[str, ...]:
    """``self-hosted,linux,gpu`` (commas and/or spaces) → the labels; ValueError names a bad one."""
    labels = tuple(part for part in re.split(r"[,\s]+", text.strip()) if part)
    if not labels:
        raise ValueError("expected runner labels such as self-hosted,linux,gpu; got none")
    for label in labels:
        if not _LABEL.match(label) or len(label) > 100:
            raise ValueError(f"runner label {label!r}: use letters, digits, '.', '_' and '-'")
    if len(set(labels)) != len(labels):
        raise ValueError(f"runner labels {text!r}: a label is given twice")
    return labels


def parse_secret(text: str) -> str:
    name = text.strip()
    if not _SECRET.match(name) or len(name) > 200:
        raise ValueError(f"secret name {text!r}: use letters, digits and '_', not starting with a digit")
    if name.upper().startswith("GITHUB_"):
        raise ValueError(f"secret name {text!r}: GitHub reserves names starting with GITHUB_")
    return name


def parse_branch(text: str) -> str:
    name = text.strip()
    if (
        not _BRANCH.match(name)
        or ".." in name
        or "//" in name
        or name.endswith(("/", ".", ".lock"))
        or "/." in name
        or len(name) > 200
    ):
        raise ValueError(f"branch name {text!r}: use letters, digits, '.', '_', '-' and '/'")
    return name


def parse_shards(text: str | int) -> int:
    try:
        number = int(text)
    except ValueError:
        raise ValueError(f"shards {text!r}: expected a whole number from 1 to {MAX_SHARDS}") from None
    if not 1 <= number <= MAX_SHARDS:
        raise ValueError(f"shards {text!r}: expected a whole number from 1 to {MAX_SHARDS}")
    return number


# ----------------------------------------------------------------------------- templates
def template_root() -> Traversable:
    """``mltest/templates`` in the installed package (a source checkout, an editable or a wheel install)."""
    return files("mltest").joinpath("templates")


def _template(relative: str) -> Traversable:
    item = template_root()
    for part in relative.split("/"):
        item = item.joinpath(part)
    if not item.is_file():
        raise MltestError(f"mltest's template {relative} is missing from the installed package: reinstall mltest")
    return item


def _template_text(relative: str) -> str:
    return _template(relative).read_text(encoding="utf-8")


def _dockerfiles() -> Iterator[tuple[str, str]]:
    """(template, destination) of every file of ``dockerfiles/``, then ``.dockerignore``."""
    folder = template_root().joinpath("dockerfiles")
    if not folder.is_dir():
        raise MltestError(
            "mltest's template folder dockerfiles/ is missing from the installed package: reinstall mltest"
        )
    names = sorted(
        item.name for item in folder.iterdir() if item.is_file() and not item.name.endswith((".pyc", ".pyo"))
    )
    for name in names:
        yield f"dockerfiles/{name}", f"dockerfiles/{name}"
    yield "dockerignore", ".dockerignore"


def _yaml_scalar(text: str) -> str:
    """``text`` as a YAML flow scalar that reads back as that string under YAML 1.1 and 1.2 alike
    (GitHub's and GitLab's readers differ: ``1e3`` is a number to one, a string to the other)."""
    plain = _PLAIN.match(text) is not None and text.lower() not in _YAML_WORDS
    return text if plain else json.dumps(text)


def _flow_list(items: Sequence[str]) -> str:
    return "[" + ", ".join(_yaml_scalar(item) for item in items) + "]"


Rule = tuple["re.Pattern[str]", Callable[["re.Match[str]"], str]]


def _rules(values: Values) -> dict[str, Rule]:
    """For each marker key: the pattern of its default value on a marked line, and its replacement."""
    extra = f"[{values.test_extra}]" if values.test_extra else ""
    shard_list = "[" + ", ".join(f'"{i}/{values.shards}"' for i in range(1, values.shards + 1)) + "]"
    return {
        # 'refs/heads/main', "main" (the shipped templates quote every branch name).
        "main-branch": (re.compile(r"""(?<=["'/])main(?=["'])"""), lambda m: values.main_branch),
        # ${{ secrets.MLTEST_STORE_URL }} (GitHub) or "$MLTEST_STORE_URL" (GitLab).
        "store-secret": (
            re.compile(r"(?<=secrets\.)MLTEST_STORE_URL\b|(?<=\"\$)MLTEST_STORE_URL(?=\")"),
            lambda m: values.store_secret,
        ),
        "gpu-labels": (re.compile(r"\[[^\]]*\]"), lambda m: _flow_list(values.gpu_labels)),
        # A GitHub matrix ["1/2", "2/2"], or GitLab's `parallel: 2`.
        "shards": (
            re.compile(r"\[[^\]]*\]|(?<=parallel: )\d+"),
            lambda m: shard_list if m.group().startswith("[") else str(values.shards),
        ),
        "install": (re.compile(r"\.\[test\]"), lambda m: "." + extra),
    }


def fill(text: str, values: Values, *, name: str = "template") -> str:
    """Fill ``values`` into a template: on each line ending in ``# mltest:KEY``, replace KEY's default.

    A marked line must hold its key's default exactly once; anything else is a broken template and
    raises, naming the template and the line.
    """
    rules = _rules(values)
    out = []
    for number, line in enumerate(text.splitlines(keepends=True), start=1):
        body = line.rstrip("\r\n")
        match = MARKER.match(body)
        if match is not None:
            key = match.group("key")
            if key not in rules:
                raise MltestError(f"{name} line {number}: unknown marker mltest:{key} (known: {', '.join(rules)})")
            pattern, replace = rules[key]
            code, count = pattern.subn(replace, match.group("code"))
            if count != 1:
                raise MltestError(f"{name} line {number}: mltest:{key} expects its default value once, found {count}")
            line = code + match.group("marker") + line[len(body) :]
        out.append(line)
    return "".join(out)


# ----------------------------------------------------------------------------- the starter config
def _config_toml(values: Values) -> str:
    return f"""\
[tool.mltest]
# Written by `mltest init`. Every setting, its default and where its value came from: `mltest config show`.
tier = "unit"          # what a plain `pytest` runs: the fast CPU tier (CI runs each tier explicitly)
unit_budget = 5        # seconds per unit test; a slower one fails with a hint to mark it integration
device = "cuda"        # the integration tier requires a GPU (`mltest run integration --device cpu` on a laptop)
{"main_branch = " + json.dumps(values.main_branch):<22} # `mltest ci nightly` runs, and records, on this branch only
# The results store: the CI secret {values.store_secret} gives the shared one; locally .mltest/results.db.
# Direction and tolerance of a metric you record:
# [tool.mltest.metrics.accuracy]
# higher_is_better = true
# tolerance = "1%"
"""


def _config_yaml(values: Values) -> str:
    return f"""\
# mltest settings, written by `mltest init`. Every setting, its default and where its value came from:
# `mltest config show`.
tier: unit          # what a plain `pytest` runs: the fast CPU tier (CI runs each tier explicitly)
unit_budget: 5      # seconds per unit test; a slower one fails with a hint to mark it integration
device: cuda        # the integration tier requires a GPU (`mltest run integration --device cpu` on a laptop)
{"main_branch: " + json.dumps(values.main_branch):<19} # `mltest ci nightly` runs, and records, on this branch only
# The results store: the CI secret {values.store_secret} gives the shared one; locally .mltest/results.db.
# Direction and tolerance of a metric you record:
# metrics:
#   accuracy: {{higher_is_better: true, tolerance: "1%"}}
"""


def _read_pyproject(path: Path) -> tuple[str, dict[str, Any]]:
    try:
        with path.open(encoding="utf-8", newline="") as f:
            text = f.read()
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML ({exc}); fix it, then run mltest init again") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None


def _test_extra(document: dict[str, Any] | None) -> str | None:
    project = (document or {}).get("project")
    extras = project.get("optional-dependencies") if isinstance(project, dict) else None
    if not isinstance(extras, dict):
        return None
    return next((name for name in TEST_EXTRAS if name in extras), None)


# ----------------------------------------------------------------------------- planning and writing
ActionKind = Literal["wrote", "replaced", "unchanged", "appended", "kept"]


@dataclass(frozen=True)
class Action:
    """What ``mltest init`` did to one file (``path`` is relative to the repository)."""

    path: str
    kind: ActionKind
    note: str = ""


@dataclass(frozen=True)
class InitOutcome:
    root: Path
    values: Values
    actions: tuple[Action, ...]
    next_steps: tuple[str, ...]
    notes: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class _Planned:
    path: str
    text: str
    own: bool = False
    """The user's own file (kept when present, never replaced); else a template (replaced with --force)."""
    own_note: str = ""
    done_if: str = ""
    """An own file holding this text is already set up (a .gitlab-ci.yml that includes mltest's file)."""


def _plan_config(root: Path, values: Values, document: dict[str, Any] | None, text: str | None) -> Action | _Planned:
    yamls = [name for name in YAML_CONFIGS if (root / name).is_file()]
    if yamls:
        return Action(yamls[0], "kept", f"already configures mltest; check that main_branch is {values.main_branch!r}")
    if document is not None and text is not None:
        tool = document.get("tool")
        if isinstance(tool, dict) and "mltest" in tool:
            return Action(
                "pyproject.toml",
                "kept",
                f"[tool.mltest] is already there and left untouched; check that main_branch is {values.main_branch!r}",
            )
        newline = "\r\n" if "\r\n" in text else "\n"
        section = _config_toml(values).replace("\n", newline)
        joined = text + ("" if not text or text.endswith("\n") else newline) + (newline if text.strip() else "")
        appended = joined + section
        try:
            tomllib.loads(appended)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(
                f"{root / 'pyproject.toml'}: cannot append a [tool.mltest] table to it ({exc}); add one by hand "
                "(see `mltest init --help`) or use mltest.yaml"
            ) from None
        return _Planned("pyproject.toml", appended)
    return _Planned("mltest.yaml", _config_yaml(values))


def _plan(values: Values) -> list[_Planned]:
    planned: list[_Planned] = []
    if values.ci == "github":
        for source, dest in GITHUB_FILES:
            planned.append(_Planned(dest, fill(_template_text(source), values, name=source)))
        source, dest = GITHUB_OWN
        labels = ", ".join(values.gpu_labels)
        planned.append(
            _Planned(
                dest,
                fill(_template_text(source), values, name=source),
                own=True,
                own_note=f"your own actionlint config; add the labels {labels} to its self-hosted-runner.labels",
            )
        )
    else:
        for source, dest in GITLAB_FILES:
            planned.append(_Planned(dest, fill(_template_text(source), values, name=source)))
        planned.append(
            _Planned(
                GITLAB_ROOT,
                GITLAB_ROOT_TEXT,
                own=True,
                own_note="your own pipeline; add `include: [{local: .gitlab/mltest.gitlab-ci.yml}]` to it",
                done_if=".gitlab/mltest.gitlab-ci.yml",
            )
        )
    for source, dest in _dockerfiles():
        planned.append(_Planned(dest, _template(source).read_bytes().decode("utf-8")))
    return planned


def _existing_text(path: Path) -> str | None:
    if not path.exists():
        return None
    if not path.is_file():
        raise ConfigError(f"{path} exists and is not a file: move it away, then run mltest init again")
    try:
        with path.open(encoding="utf-8", newline="") as f:
            return f.read()
    except (OSError, UnicodeDecodeError):
        return ""  # unreadable or binary: differs from any template


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8", newline="") as f:
            f.write(text)
    except OSError as exc:
        raise MltestError(f"cannot write {path}: {exc.strerror or exc}") from None


def _root(directory: Path) -> Path:
    if not directory.exists():
        raise ConfigError(f"--dir {directory}: no such directory; give your repository's directory")
    if not directory.is_dir():
        raise ConfigError(f"--dir {directory}: not a directory; give your repository's directory")
    return directory.resolve()


def init(
    directory: Path,
    *,
    ci: str = "github",
    gpu_labels: Sequence[str] | None = None,
    store_secret: str = DEFAULT_SECRET,
    main_branch: str = DEFAULT_BRANCH,
    shards: int = DEFAULT_SHARDS,
    force: bool = False,
) -> InitOutcome:
    """Write the templates for ``ci``, the Dockerfiles and a starter config into ``directory``."""
    if ci not in CI_SYSTEMS:
        raise ConfigError(f"--ci {ci!r}: choose github or gitlab")
    system: CiSystem = "github" if ci == "github" else "gitlab"
    try:
        labels = parse_labels(",".join(gpu_labels)) if gpu_labels is not None else DEFAULT_LABELS[system]
        values = Values(
            ci=system,
            gpu_labels=labels,
            store_secret=parse_secret(store_secret),
            main_branch=parse_branch(main_branch),
            shards=parse_shards(shards),
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    root = _root(directory)
    pyproject = root / "pyproject.toml"
    text, document = _read_pyproject(pyproject) if pyproject.is_file() else (None, None)
    values = replace(values, test_extra=_test_extra(document))

    config = _plan_config(root, values, document, text)
    planned = _plan(values)
    actions: list[Action] = []
    writes: list[tuple[Path, str]] = []
    conflicts: list[str] = []
    for item in planned:
        path = root / item.path
        current = _existing_text(path)
        if current is None:
            actions.append(Action(item.path, "wrote"))
            writes.append((path, item.text))
        elif current == item.text:
            actions.append(Action(item.path, "unchanged", "already as mltest init writes it"))
        elif item.own:
            done = bool(item.done_if) and item.done_if in current
            actions.append(Action(item.path, "kept", "already set up" if done else item.own_note))
        elif force:
            lines = current.count("\n")
            actions.append(Action(item.path, "replaced", f"--force: its {lines} lines were replaced"))
            writes.append((path, item.text))
        else:
            conflicts.append(item.path)
    if conflicts:
        raise ConfigError(
            f"{root}: {', '.join(conflicts)} already exist{'s' if len(conflicts) == 1 else ''} with other "
            "content; nothing was written (--force replaces them)"
        )
    if isinstance(config, Action):
        actions.append(config)
    else:
        existed = (root / config.path).is_file()
        actions.append(
            Action(config.path, "appended" if existed else "wrote", "a starter [tool.mltest] table" if existed else "")
        )
        writes.append((root / config.path, config.text))
    for path, content in writes:
        _write(path, content)

    host = "GitHub" if system == "github" else "GitLab"
    notes = () if (root / ".git").exists() else (f"no .git here: `git init` it, then push it to {host}",)
    return InitOutcome(root, values, tuple(actions), _next_steps(values, actions), notes)


def _next_steps(values: Values, actions: Sequence[Action]) -> tuple[str, ...]:
    labels = ", ".join(values.gpu_labels)
    written = sorted({a.path.split("/")[0] for a in actions if a.kind in ("wrote", "replaced", "appended")})
    push = (
        f"commit and push: git add {' '.join(written)} && git commit -m 'CI: mltest' && git push"
        if written
        else "commit and push the files above, if you have not yet"
    )
    if values.ci == "github":
        return (
            f"add the repository secret {values.store_secret} (Settings > Secrets and variables > Actions): "
            "your store's URL, postgresql://USER:PASSWORD@HOST/DB (optional: MLTEST_SHEETS_URL and "
            "MLTEST_SHEETS_CREDENTIALS_JSON for the Google Sheet)",
            f"register a self-hosted runner on a machine with NVIDIA GPUs and their driver, with the labels {labels} "
            "(Settings > Actions > Runners > New self-hosted runner)",
            push,
            f"the nightly runs at 02:17 UTC when {values.main_branch} is the default branch; start one now: "
            f"Actions > mltest nightly GPU > Run workflow, on {values.main_branch}",
        )
    return (
        f"add the CI/CD variable {values.store_secret}, protected and masked (Settings > CI/CD > Variables): "
        "your store's URL, postgresql://USER:PASSWORD@HOST/DB (optional: MLTEST_SHEETS_URL and "
        "MLTEST_SHEETS_CREDENTIALS_JSON for the Google Sheet)",
        f"register a GitLab runner on a machine with NVIDIA GPUs, with the tags {labels} (a Docker executor "
        'with gpus = "all" in its config.toml, or a shell executor)',
        push,
        f"create a nightly pipeline schedule on {values.main_branch} (Build > Pipeline schedules), and make "
        f"{values.main_branch} a protected branch so that it sees the protected variables",
    )


def summary(outcome: InitOutcome) -> str:
    """What ``mltest init`` prints: one line per file, then the next steps."""
    v = outcome.values
    system = "GitHub Actions" if v.ci == "github" else "GitLab CI"
    lines = [
        f"mltest init: {system} in {outcome.root} (main branch {v.main_branch}, {v.shards} "
        f"shard{'s' if v.shards != 1 else ''}, GPU runner labels {', '.join(v.gpu_labels)}, "
        f"store secret {v.store_secret})"
    ]
    width = max(len(a.path) for a in outcome.actions)
    for a in outcome.actions:
        lines.append(f"  {a.kind:<9} {a.path:<{width}}  ({a.note})" if a.note else f"  {a.kind:<9} {a.path}")
    lines += [f"note: {note}" for note in outcome.notes]
    lines.append("next steps:")
    lines += [f"  {i}. {step}" for i, step in enumerate(outcome.next_steps, start=1)]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- CLI wiring
def _argtype(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def add_parser(commands: Any) -> None:
    parser: argparse.ArgumentParser = commands.add_parser(
        "init",
        help="write mltest's CI templates, Dockerfiles and a starter [tool.mltest] into a repository",
        description=(
            "Write into a repository: the CI workflows (GitHub Actions: .github/workflows/mltest-*.yml; GitLab: "
            ".gitlab-ci.yml including .gitlab/mltest.gitlab-ci.yml) with your values filled in, the base and debug "
            "Dockerfiles with .dockerignore, and a starter [tool.mltest] table (appended to pyproject.toml, or "
            "mltest.yaml when there is none). An existing file is never overwritten without --force; your own "
            "configuration ([tool.mltest], mltest.yaml, .gitlab-ci.yml, .github/actionlint.yaml) never."
        ),
    )
    parser.add_argument("--ci", choices=CI_SYSTEMS, default="github", help="the CI system (default: github)")
    parser.add_argument(
        "--gpu-labels",
        type=_argtype(parse_labels),
        default=None,
        metavar="LABELS",
        help="labels (GitLab: tags) of your GPU runners, comma-separated "
        f"(default: {','.join(DEFAULT_LABELS['github'])} on GitHub, {','.join(DEFAULT_LABELS['gitlab'])} on GitLab)",
    )
    parser.add_argument(
        "--store-secret",
        type=_argtype(parse_secret),
        default=DEFAULT_SECRET,
        metavar="NAME",
        help=f"the CI secret (GitLab: variable) holding the results store's URL (default: {DEFAULT_SECRET})",
    )
    parser.add_argument(
        "--main-branch",
        type=_argtype(parse_branch),
        default=DEFAULT_BRANCH,
        metavar="BRANCH",
        help=f"the branch the nightly GPU tier runs on and records (default: {DEFAULT_BRANCH})",
    )
    parser.add_argument(
        "--shards",
        type=_argtype(parse_shards),
        default=DEFAULT_SHARDS,
        metavar="N",
        help=f"GPU jobs the nightly tier is split into, 1 to {MAX_SHARDS} (default: {DEFAULT_SHARDS})",
    )
    parser.add_argument(
        "--force", action="store_true", help="replace templates that exist with other content (default: refuse)"
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        metavar="PATH",
        help="the repository to write into (default: the current directory)",
    )
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace, extra: list[str]) -> int:
    outcome = init(
        args.dir if args.dir is not None else Path.cwd(),
        ci=args.ci,
        gpu_labels=args.gpu_labels,
        store_secret=args.store_secret,
        main_branch=args.main_branch,
        shards=args.shards,
        force=args.force,
    )
    print(summary(outcome))
    return 0
