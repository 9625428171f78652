"""Fuzzing (hypothesis) of the three parsers of untrusted input: configuration, commit history, measurements.

* **Configuration**: arbitrary ``[tool.mltest]`` tables (TOML) and ``mltest.yaml`` documents, values
  of any type for every key (huge integers, NaN, nested tables, timestamps, text of any kind) and
  arbitrary documents, plus arbitrary ``MLTEST_*`` environment values, give :class:`Settings` whose
  every field is valid (and ``mltest config show`` prints them), or a :class:`ConfigError`; never
  another exception.
* **Commit order**: arbitrary first-parent link maps (cycles, self-links, missing parents, unrecorded
  commits in between) give a permutation of the commits, in time bounded by the links' size; every
  recorded link is respected whenever the links are consistent; real histories (first-parent chains
  with branches, commit times in any order) come out in history order. The same for
  ``commits_between`` and the report's merge of per-series orders.
* **Detection**: arbitrary float sequences (NaN, infinities, magnitudes up to the largest double,
  subnormals; 0 to 300 points) with arbitrary samples, noise and options give well-formed change
  points or a :class:`DetectionError`; scaling a series by a power of two moves no change point.
  ``find_shifts`` over arbitrary series and ``compare_values`` over arbitrary baselines never fail.
  (tests/detect/test_changepoint.py fuzzes finite values up to 1e150 without samples, noise or
  options; this extends it.)

Examples are derandomized (the same on every run and machine) and sized to run in seconds.
"""

from __future__ import annotations

import itertools
import json
import math
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mltest.cli.config_cmd import show
from mltest.config import OPTIONS, Settings, load_settings
from mltest.detect import Tolerance, change_points, commits_between, compare_values, find_shifts
from mltest.errors import ConfigError, DetectionError
from mltest.model import BUDGET_MODES, DEVICE_MODES, TIERS, ChangePoint, Series, SeriesPoint, ShardSpec
from mltest.store.history import commit_order

FUZZ = settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
FEW = settings(FUZZ, max_examples=40)

# ============================================================================ configuration
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
WORDS = st.sampled_from(
    ["", " ", "5%", "1/2", "0/4", "3/2", "nan", "inf", "-1", "1e999", "100%", "true", "off", "cpu", "cuda",
     "all", "warn", "sqlite:///x.db", "gsheets://k/w", "gsheets://", "0x10", "1_000", "\x1b[2J", "10%%"]
)  # fmt: skip
SCALARS = st.one_of(
    TEXT,
    WORDS,
    st.integers(-(2**63), 2**63 - 1),
    st.floats(),
    st.booleans(),
)
NAMES = st.sampled_from([o.name for o in OPTIONS] + [o.name.replace("_", "-") for o in OPTIONS] + ["bogus", ""])
METRIC_KEYS = st.sampled_from(["unit", "higher_is_better", "tolerance", "tolerance_abs", "tolerance-abs", "x"])


def values(scalars: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        scalars,
        lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(TEXT, inner, max_size=3)),
        max_leaves=6,
    )


def tables(scalars: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """A ``[tool.mltest]`` table: known, misspelt and unknown keys, values of any type, metrics tables."""
    metric = st.one_of(st.dictionaries(METRIC_KEYS, values(scalars), max_size=4), values(scalars))
    metrics = st.one_of(st.dictionaries(TEXT, metric, max_size=3), values(scalars))
    return st.builds(
        lambda base, m, with_metrics: {**base, **({"metrics": m} if with_metrics else {})},
        st.dictionaries(NAMES, values(scalars), max_size=6),
        metrics,
        st.booleans(),
    )


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        return ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON's escapes are TOML's (a raw DEL makes it invalid)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k, ensure_ascii=False)} = {toml_value(v)}" for k, v in value.items()) + "}"


def toml_document(table: dict[str, Any]) -> str:
    lines = ["[project]", 'name = "x"', "[tool.mltest]"]
    lines += [f"{json.dumps(k, ensure_ascii=False)} = {toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("config")


def load(folder: Path, name: str, text: str) -> Settings | ConfigError:
    """Settings from ``text`` as ``name`` in ``folder`` (the only config file there)."""
    for other in ("pyproject.toml", "mltest.yaml"):
        (folder / other).unlink(missing_ok=True)
    (folder / name).write_text(text, encoding="utf-8")
    try:
        found = load_settings(folder, environ={})
    except ConfigError as exc:
        error = exc
    else:
        check_settings(found)
        return found
    assert str(error).strip()
    return error


def check_settings(s: Settings) -> None:
    """Every field has its declared type and range, and ``mltest config show`` prints them."""
    assert s.tier in TIERS
    assert s.device in DEVICE_MODES
    assert s.budget_mode in BUDGET_MODES
    for seconds in (s.unit_budget, s.integration_timeout):
        assert isinstance(seconds, float)
        assert 0 <= seconds < math.inf
    for count in (s.seed, s.slowest):
        assert type(count) is int
        assert count >= 0
    for flag in (s.fail_on_skip, s.deterministic, s.record, s.record_pull_requests):
        assert type(flag) is bool
    assert s.shard is None or (isinstance(s.shard, ShardSpec) and 1 <= s.shard.index <= s.shard.total)
    for text in (s.store_url, s.main_branch, s.project, s.repo_url, s.sheets_url, s.sheets_credentials):
        assert text is None or (isinstance(text, str) and text == text.strip() and text)
    for name, spec in s.metrics.items():
        assert isinstance(name, str)
        assert spec.name == name
        assert spec.unit is None or (isinstance(spec.unit, str) and spec.unit)
        assert spec.higher_is_better is None or type(spec.higher_is_better) is bool
        assert spec.tolerance is None or 0 <= spec.tolerance < 10
        assert spec.tolerance_abs is None or 0 <= spec.tolerance_abs < math.inf
    assert show(s).startswith("config file: ")
    json.loads(show(s, as_json=True))


@FUZZ
@given(table=tables(SCALARS))
def test_any_pyproject_table_gives_settings_or_a_config_error(folder: Path, table: dict[str, Any]) -> None:
    load(folder, "pyproject.toml", toml_document(table))


HUGE = st.sampled_from([10**19, -(10**30), 10**400, -(10**400), 10**4200, 2**64 + 0.5])
YAML_SCALARS = st.one_of(SCALARS, HUGE, st.none(), st.dates(), st.datetimes())


@FUZZ
@given(table=tables(YAML_SCALARS))
def test_any_yaml_mapping_gives_settings_or_a_config_error(folder: Path, table: dict[str, Any]) -> None:
    load(folder, "mltest.yaml", yaml.safe_dump(table, allow_unicode=True))


NASTY = st.one_of(
    st.sampled_from(
        [math.nan, math.inf, -math.inf, 1e308, -0.0, 5e-324, 2**63 - 1, -(2**63), "", " ", "\x00", "1e999"]
    ),
    st.sampled_from(["-1", "nan", "inf", "1/0", "0/1", "2/1", "-1/2", "a/b", "1" * 5000, "9%", "1000%", "%", "[]"]),
    st.just([]),
    st.just({}),
)
HUGE_INTS = st.sampled_from([2**64, 10**30, 10**400, -(10**400), 10**4200])
VALUE_KEYS = st.sampled_from(
    [o.name for o in OPTIONS] + ["metrics.acc." + k for k in ("unit", "higher_is_better", "tolerance", "tolerance_abs")]
)


@settings(FUZZ, max_examples=150)
@given(key=VALUE_KEYS, value=st.one_of(NASTY, HUGE_INTS, SCALARS), yaml_file=st.booleans())
def test_any_value_of_any_setting_gives_settings_or_a_config_error(
    folder: Path, key: str, value: Any, yaml_file: bool
) -> None:
    """Each setting (and metric option) with values at the edges: huge integers (YAML has no limit on
    them, TOML 64 bits), NaN, infinities, the largest double, text that parses as nothing."""
    if not yaml_file and isinstance(value, int) and not -(2**63) <= value < 2**63:
        yaml_file = True  # TOML has no such integer
    table: dict[str, Any] = (
        {"metrics": {"acc": {key.rsplit(".", 1)[1]: value}}} if key.startswith("metrics.") else {key: value}
    )
    if yaml_file:
        load(folder, "mltest.yaml", yaml.safe_dump(table, allow_unicode=True))
    else:
        load(folder, "pyproject.toml", toml_document(table))


DOCUMENT_PIECES = st.sampled_from(
    ["[tool.mltest]", "[tool]", "mltest = 1", "[tool.mltest.metrics.acc]", "tier = ", '"unit"', "seed: 5",
     "- 1", "metrics:", "  acc: {tolerance: 5%}", "since: 2020-13-45", "[[tool.mltest]]", "{", "}", "[", "]",
     "=", ":", "\n", " ", "'", '"', "#", "&a", "*a", "!!python/object:os.system", "%YAML 1.1", "---", "\t",
     "1" * 5000, "[" * 2000, "- " * 2000, "{a: " * 1000]
)  # fmt: skip


EDGE_LINES = st.sampled_from(
    ["seed = " + "1" * 5000, "seed: " + "1" * 5000, "tier = " + "[" * 1500, "tier: " + "[" * 1500,
     "tier:\n" + "  - " * 1500 + "x", "tier: " + "{a: " * 1500, "since: 2020-13-45", "unit_budget: " + "9" * 400,
     "x = 1979-13-45", "x = 2026-02-30T00:00:00", "tier = 'unit'", "tier: unit", "metrics = {acc = {tolerance = nan}}"]
)  # fmt: skip
"""Lines at the parsers' edges: integers past Python's digit limit, nesting past the recursion limit,
dates that do not exist."""


@FUZZ
@given(
    name=st.sampled_from(["pyproject.toml", "mltest.yaml"]),
    header=st.booleans(),
    line=EDGE_LINES,
    junk=st.lists(st.one_of(DOCUMENT_PIECES, TEXT), max_size=3),
    junk_first=st.booleans(),
)
def test_any_document_gives_settings_or_a_config_error(
    folder: Path, name: str, header: bool, line: str, junk: list[str], junk_first: bool
) -> None:
    start = ("[tool.mltest]\n" if name == "pyproject.toml" else "project: x\n") if header else ""
    rest = "".join(junk)
    load(folder, name, start + (rest + "\n" + line if junk_first else line + "\n" + rest))


@FUZZ
@given(environ=st.dictionaries(st.sampled_from([o.env_var for o in OPTIONS]), st.one_of(TEXT, WORDS), max_size=8))
def test_any_environment_gives_settings_or_a_config_error(environ: dict[str, str]) -> None:
    try:
        found = load_settings(None, environ=environ)
    except ConfigError as exc:
        error = exc
    else:
        check_settings(found)
        return
    assert str(error).startswith("environment variable MLTEST_")


# ============================================================================ commit order
class CountingLinks(dict[str, str]):
    """A links map that counts lookups: the walk's cost."""

    lookups = 0

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self.lookups += 1
        return super().get(key, default)


SHAS = [f"c{i:02d}" for i in range(24)]
OTHERS = [f"x{i}" for i in range(6)]  # commits never recorded: links pass through them
DATES = st.sampled_from(["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-01T00:00:00+05:00", ""])


def edges(commits: Mapping[str, str], links: Mapping[str, str]) -> dict[str, str]:
    """child -> recorded parent: the first recorded commit on the child's first-parent walk."""
    out = {}
    for sha in commits:
        seen = {sha}
        parent = links.get(sha)
        while parent is not None and parent not in commits and parent not in seen:
            seen.add(parent)
            parent = links.get(parent)
        if parent is not None and parent in commits and parent != sha:
            out[sha] = parent
    return out


def acyclic(before: Mapping[str, str]) -> bool:
    for start in before:
        seen, node = set(), start
        while node in before:
            if node in seen:
                return False
            seen.add(node)
            node = before[node]
    return True


@FUZZ
@given(
    commits=st.dictionaries(st.sampled_from(SHAS), DATES, max_size=24),
    links=st.dictionaries(st.sampled_from(SHAS + OTHERS), st.sampled_from(SHAS + OTHERS), max_size=30),
    cycle=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_commit_order_of_any_links_is_a_permutation_that_respects_them(
    commits: dict[str, str], links: dict[str, str], cycle: bool, seed: int
) -> None:
    if cycle:  # rewritten history: unrecorded commits whose links go round, and commits leading into them
        links = {**{sha: "x0" for sha in commits}, **links, "x0": "x1", "x1": "x2", "x2": "x0"}
    counted = CountingLinks(links)
    order = commit_order(commits, counted)
    assert sorted(order) == sorted(commits)
    # Cost: no walk is longer than the links it can follow (a cycle of unrecorded commits ends it).
    assert counted.lookups <= len(commits) * (len(links) + 1)
    before = edges(commits, links)
    position = {sha: i for i, sha in enumerate(order)}
    if acyclic(before):
        assert all(position[parent] < position[child] for child, parent in before.items())
    if not before:
        assert order == sorted(commits, key=lambda sha: (commits[sha], sha))
    # The same answer whatever order the maps were built in.
    shuffled = list(commits.items())
    random.Random(seed).shuffle(shuffled)
    assert commit_order(dict(shuffled), dict(reversed(list(links.items())))) == order


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[str], dict[str, str], set[str], dict[str, str]]:
    """A real history: commits in creation order, each with a first parent among the earlier ones
    (or none: a root, an orphan branch); some recorded, with commit times in any order (rebases,
    clock skew). Returns (creation order, links, recorded, sort keys)."""
    n = draw(st.integers(0, 40))
    shas = [f"h{i:02d}" for i in range(n)]
    links = {}
    for i in range(1, n):
        parent = draw(st.one_of(st.none(), st.integers(max(0, i - 3), i - 1), st.integers(0, i - 1)))
        if parent is not None:
            links[shas[i]] = shas[parent]
    recorded = {s for s in shas if draw(st.booleans())}
    keys = {s: draw(DATES) for s in recorded}
    return shas, links, recorded, keys


@FUZZ
@given(histories())
def test_commit_order_of_a_real_history_follows_it(
    history: tuple[list[str], dict[str, str], set[str], dict[str, str]],
) -> None:
    _, links, recorded, keys = history
    order = commit_order(keys, links)
    position = {sha: i for i, sha in enumerate(order)}
    assert set(order) == recorded
    for sha in recorded:  # every recorded first-parent ancestor comes first
        parent = links.get(sha)
        while parent is not None:
            if parent in recorded:
                assert position[parent] < position[sha], (parent, sha)
            parent = links.get(parent)
        # The commits after the nearest recorded ancestor, up to this one: the culprit range.
        walked, parent = [sha], links.get(sha)
        while parent is not None and parent not in recorded:
            walked.append(parent)
            parent = links.get(parent)
        if parent is not None:
            assert commits_between(links, parent, sha) == tuple(reversed(walked))


@FUZZ
@given(
    links=st.dictionaries(st.sampled_from(SHAS + OTHERS), st.sampled_from(SHAS + OTHERS), max_size=30),
    good=st.one_of(st.none(), st.sampled_from(SHAS + OTHERS)),
    bad=st.sampled_from(SHAS + OTHERS),
)
def test_commits_between_any_links_is_a_first_parent_path_or_nothing(
    links: dict[str, str], good: str | None, bad: str
) -> None:
    got = commits_between(links, good, bad)
    if not got:
        return
    assert got[-1] == bad
    assert good not in got
    assert len(set(got)) == len(got)
    assert links[got[0]] == good
    assert all(links[b] == a for a, b in itertools.pairwise(got))


@FUZZ
@given(
    orders=st.lists(st.lists(st.sampled_from(SHAS[:10]), max_size=10), max_size=5),
    dates=st.lists(DATES, min_size=10, max_size=10),
)
def test_the_reports_merged_history_keeps_every_consistent_series_order(
    orders: list[list[str]], dates: list[str]
) -> None:
    from mltest.cli.report_cmd import _history_order

    committed = dict(zip(SHAS[:10], dates, strict=True))
    series = [
        Series("t", f"m{i}", "cpu", tuple(SeriesPoint(sha, 1.0, committed_at=committed[sha] or None) for sha in order))
        for i, order in enumerate(orders)
    ]
    merged = _history_order(series)
    assert sorted(merged) == sorted({sha for order in orders for sha in order})
    pairs = {(a, b) for order in orders for a, b in itertools.pairwise(order) if a != b}
    graph: dict[str, set[str]] = {}
    for a, b in pairs:
        graph.setdefault(a, set()).add(b)
    position = {sha: i for i, sha in enumerate(merged)}
    try:
        import graphlib

        graphlib.TopologicalSorter({b: {a for a, bb in pairs if bb == b} for _, b in pairs}).prepare()
    except graphlib.CycleError:
        return  # the series disagree: any order will do
    assert all(position[a] < position[b] for a, b in pairs)


# ============================================================================ detection
ANY_FLOAT = st.one_of(
    st.floats(),  # NaN, infinities, the whole double range, subnormals
    st.floats(min_value=-1e-300, max_value=1e-300),
    st.sampled_from([0.0, -0.0, 5e-324, -5e-324, 1.7976931348623157e308, -1.7976931348623157e308, 1e154, 1e155]),
    st.floats(-10, 10),
)
FINITE = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.floats(-10, 10),
    st.sampled_from([0.0, 5e-324, 1.7976931348623157e308, -1.7976931348623157e308]),
)


@st.composite
def steps(draw: st.DrawFn) -> np.ndarray:
    """Piecewise-constant integer levels plus integer noise (so scaling by 2**k is exact)."""
    seed = draw(st.integers(0, 2**32 - 1))
    levels = draw(st.lists(st.integers(-20, 20), min_size=1, max_size=4))
    lengths = draw(st.lists(st.integers(0, 60), min_size=len(levels), max_size=len(levels)))
    spread = draw(st.integers(0, 4))
    rng = np.random.default_rng(seed)
    x = np.repeat(levels, lengths) + rng.integers(-spread, spread + 1, sum(lengths))
    return x.astype(float)


def check_points(values: np.ndarray, found: list[ChangePoint]) -> None:
    indices = [cp.index for cp in found]
    assert indices == sorted(set(indices))
    for cp in found:
        assert type(cp.index) is int
        assert 0 < cp.index < len(values)
        assert not math.isnan(values[cp.index])
        assert cp.n_before >= 1
        assert cp.n_after >= 1
        assert 0 <= cp.p_value <= 1
        assert math.isfinite(cp.before)
        assert math.isfinite(cp.after)
        assert math.isfinite(cp.statistic) or math.isinf(cp.statistic)


OPTION_VALUES = st.one_of(
    st.floats(), st.integers(-5, 400), st.booleans(), st.sampled_from([1e-320, 1e-16, 0.5, 2, 10**30, "5"])
)
OPTIONS_ = st.dictionaries(
    st.sampled_from(["alpha", "min_size", "tail_min", "tail_window", "tail_shift"]), OPTION_VALUES, max_size=3
)


@FUZZ
@given(
    values=st.lists(ANY_FLOAT, max_size=300),
    with_samples=st.booleans(),
    sample_values=st.lists(st.lists(ANY_FLOAT, max_size=4), max_size=300),
    noise=st.one_of(st.none(), ANY_FLOAT, st.lists(ANY_FLOAT, max_size=300)),
    options=st.one_of(st.just({}), OPTIONS_),
)
def test_change_points_of_anything_are_well_formed_or_a_detection_error(
    values: list[float],
    with_samples: bool,
    sample_values: list[list[float]],
    noise: float | list[float] | None,
    options: dict[str, Any],
) -> None:
    samples = (sample_values + [[]] * len(values))[: len(values)] if with_samples else None
    if with_samples and len(sample_values) > len(values) + 2:
        samples = sample_values  # the wrong length
    try:
        found = change_points(values, samples=samples, noise=noise, **options)
    except DetectionError as exc:
        error = exc
    else:
        error = None
    if error is not None:
        assert str(error)
        return
    assert not any(math.isinf(v) for v in values)  # an infinity is refused
    check_points(np.asarray(values, dtype=float), found)
    assert change_points(values, samples=samples, noise=noise, **options) == found  # deterministic


@FUZZ
@given(x=steps(), exponent=st.sampled_from([-1070, -600, -1, 1, 400, 600, 900, 1015, 1019]))
def test_change_points_do_not_move_when_a_series_is_scaled_by_a_power_of_two(x: np.ndarray, exponent: int) -> None:
    """Ranks, p-values and change points are scale-free; levels scale exactly (as long as the values stay
    normal doubles): near the largest double no sum, median or square may overflow."""
    scaled = np.ldexp(x, exponent)
    if np.any((scaled != 0) & (np.abs(scaled) < 2.0**-1022)):  # subnormal: precision (and ties) would be lost
        return
    found, moved = change_points(x), change_points(scaled)
    check_points(scaled, moved)
    assert [(cp.index, cp.p_value, cp.n_before, cp.n_after) for cp in moved] == [
        (cp.index, cp.p_value, cp.n_before, cp.n_after) for cp in found
    ]
    assert [(cp.before, cp.after) for cp in moved] == [
        (math.ldexp(cp.before, exponent), math.ldexp(cp.after, exponent)) for cp in found
    ]


@st.composite
def series(draw: st.DrawFn) -> Series:
    n = draw(st.integers(0, 80))
    points = []
    for i in range(n):
        points.append(
            SeriesPoint(
                sha=f"s{i:03d}",
                value=draw(FINITE),
                samples=tuple(draw(st.lists(FINITE, max_size=3))),
                support=draw(st.one_of(st.none(), st.integers(-1, 10**6))),
                fingerprint=draw(st.sampled_from(["gpu a", "gpu a", "gpu a", "gpu b"])),
            )
        )
    unit = draw(st.sampled_from([None, "s", "%", "bytes"]))
    return Series("t.py::test", "metric", "cpu", tuple(points), unit=unit)


@FEW
@given(
    s=series(),
    higher=st.booleans(),
    relative=st.one_of(st.none(), st.floats(0, 9.99)),
    absolute=st.one_of(st.none(), st.floats(0, 1e308)),
)
def test_find_shifts_in_any_series_never_fails(
    s: Series, higher: bool, relative: float | None, absolute: float | None
) -> None:
    links = {p.sha: q.sha for q, p in itertools.pairwise(s.points)}
    try:
        findings = find_shifts(s, tolerance=Tolerance(relative, absolute), higher_is_better=higher, links=links)
    except DetectionError as exc:
        error = exc
    else:
        error = None
    if error is not None:
        assert str(error).startswith("t.py::test metric [cpu]: ")
        return
    shas = {p.sha for p in s.points}
    for f in findings:
        assert f.kind in ("regression", "drift", "improvement", "environment")
        assert f.range.bad in shas
        assert f.range.good is None or f.range.good in shas
        assert set(f.range.commits) <= shas


@FUZZ
@given(
    baseline=st.one_of(
        st.lists(ANY_FLOAT, max_size=25),
        st.lists(st.sampled_from([1.7976931348623157e308, -1.7976931348623157e308, 1e308, 1.0]), min_size=3),
    ),
    new=ANY_FLOAT,
    higher=st.one_of(st.none(), st.booleans()),
    noise=st.one_of(st.none(), ANY_FLOAT),
    relative=st.one_of(st.none(), st.floats(0, 9.99)),
)
def test_compare_values_of_any_baseline_never_fails(
    baseline: list[float], new: float, higher: bool | None, noise: float | None, relative: float | None
) -> None:
    got = compare_values("t", "m", baseline, new, tolerance=Tolerance(relative), higher_is_better=higher, noise=noise)
    assert got.verdict in ("regression", "improvement", "changed", "unchanged", "no baseline")
    assert math.isnan(got.p_value) or 0 <= got.p_value <= 1
    assert got.baseline_runs == sum(1 for v in baseline if math.isfinite(v))
    if got.verdict == "regression":
        assert higher is not None
