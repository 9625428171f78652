"""JSON report: strict JSON (no NaN), stable fields, valid against the shipped JSON Schema."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
from collections.abc import Callable
from typing import Any

import pytest
from sample import big_report, sample_report, sha, with_drift

from mltest.report.jsonout import render_json, report_data, report_schema
from mltest.report.model import REPORT_SCHEMA_VERSION, Report


def with_nonfinite(report: Report) -> Report:
    """The sample with NaN and infinities in findings, points and segments."""
    entry = report.entries[0]
    f0 = dataclasses.replace(entry.findings[0], rel_change=math.inf, p_value=math.nan, confidence=math.nan)
    f1 = dataclasses.replace(entry.findings[1], before=math.nan, after=-math.inf, rel_change=-math.inf)
    entries = (dataclasses.replace(entry, findings=(f0, f1)), *report.entries[1:])
    s = report.series[0]
    points = (dataclasses.replace(s.points[0], value=math.nan, low=-math.inf, high=math.inf), *s.points[1:])
    segments = (dataclasses.replace(s.segments[0], level=math.nan), *s.segments[1:])
    series = (dataclasses.replace(s, points=points, segments=segments), *report.series[1:])
    return dataclasses.replace(report, entries=entries, series=series)


REPORTS = {
    "sample": lambda: sample_report(),
    "hostile": lambda: sample_report(hostile=True),
    "no-repo": lambda: sample_report(repo_url=None),
    "nonfinite": lambda: with_nonfinite(sample_report()),
    "big": lambda: big_report(30, 20),
    "drift-ci": lambda: with_drift(sample_report(ci_url="https://github.com/acme/model/actions/runs/42")),
    "empty": lambda: dataclasses.replace(sample_report(), entries=(), series=(), commits=()),
}


def strict(schema: Any) -> Any:
    """The schema with ``additionalProperties: false`` wherever properties are listed and nothing else
    is said: the renderer writes exactly what the schema documents (the shipped schema stays open
    so fields can be added within a version)."""
    if isinstance(schema, dict):
        out = {k: strict(v) for k, v in schema.items()}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [strict(v) for v in schema]
    return schema


@pytest.mark.parametrize("name", sorted(REPORTS))
def test_strict_json_round_trip(name: str) -> None:
    text = render_json(REPORTS[name]())
    assert text.isascii()
    assert not re.search(r"[:\[,]\s*-?(NaN|Infinity)\b", text)
    data = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard constant {c}"))
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert data == json.loads(json.dumps(report_data(REPORTS[name]())))
    assert data["schema_version"] == REPORT_SCHEMA_VERSION


def test_sample_fields() -> None:
    report = sample_report()
    data = json.loads(render_json(report))
    assert list(data) == [
        "schema_version",
        "project",
        "branch",
        "generated_at",
        "store",
        "repo_url",
        "ci_url",
        "since",
        "counts",
        "entries",
        "series",
        "commits",
        "undirected",
        "notes",
    ]
    assert data["project"] == "acme-model"
    assert data["branch"] == "main"
    assert data["store"] == "sqlite:///.mltest/results.db"
    assert data["counts"] == {
        "entries": 5,
        "findings": 6,
        "series": 7,
        "commits": 12,
        "new": 1,
        "by_status": {"new": 1, "acknowledged": 1, "recovered": 1, "open": 2},
        "by_kind": {"regression": 3, "improvement": 1, "environment": 1},
    }
    assert [e["id"] for e in data["entries"]] == [e.id for e in report.entries]
    new = data["entries"][0]
    assert new["status"] == "new"
    assert new["culprit"] == sha(6)
    assert (new["good"], new["bad"], new["commits"]) == (sha(5), sha(6), [sha(6)])
    step = new["findings"][0]
    assert step["metric"] == "step_time"
    assert step["before"] == pytest.approx(0.10)
    assert step["after"] == pytest.approx(0.13)
    assert step["rel_change"] == pytest.approx(0.3)
    assert step["confidence"] == pytest.approx(0.999)
    assert step["unit"] == "s"
    assert step["higher_is_better"] is False
    ack = data["entries"][1]
    assert ack["culprit"] is None
    assert ack["commits"] == [sha(8), sha(9)]
    assert ack["acknowledged"] == "bigger eval set, expected (alice, 2026-11-10)"
    recovered = data["entries"][2]["findings"][0]
    assert (recovered["fixed_after"], recovered["fixed_by"]) == (sha(4), sha(5))
    assert step["steps"] == 1
    assert step["fixed_after"] is None
    assert data["ci_url"] is None

    series = data["series"][0]
    assert series["key"] == report.series[0].key
    assert series["regressed"] is True
    assert series["findings"] == ["f-step"]
    assert series["change_points"] == [6]
    assert series["segments"] == [{"start": 0, "end": 6, "level": 0.1}, {"start": 6, "end": 12, "level": 0.13}]
    assert series["points"][0] == {
        "sha": sha(0),
        "value": 0.1,
        "low": pytest.approx(0.098),
        "high": pytest.approx(0.102),
        "samples": 5,
        "runs": 1,
        "fingerprint": "fp-a100",
    }
    assert data["commits"][6] == {
        "sha": sha(6),
        "short": sha(6)[:10],
        "subject": "Validate every training row for NaN/inf before the step",
        "date": "2026-11-07T10:00:00+00:00",
        "url": f"https://github.com/acme/model/commit/{sha(6)}",
        "position": 6,
    }
    assert data["undirected"] == ["foo_metric"]


def test_drift_steps_and_ci_url() -> None:
    data = json.loads(render_json(with_drift(sample_report(ci_url="https://ci.example/job/7"))))
    assert data["ci_url"] == "https://ci.example/job/7"
    drift = data["entries"][0]
    assert (drift["kind"], drift["status"]) == ("drift", "new")
    [finding] = drift["findings"]
    assert finding["steps"] == 2
    assert finding["note"] == f"steps at {sha(2)[:10]}, {sha(8)[:10]}"
    assert data["counts"]["new"] == 2


def test_nonfinite_numbers_are_null() -> None:
    data = json.loads(render_json(with_nonfinite(sample_report())))
    f0, f1 = data["entries"][0]["findings"]
    assert (f0["rel_change"], f0["p_value"], f0["confidence"]) == (None, None, None)
    assert (f1["before"], f1["after"], f1["rel_change"]) == (None, None, None)
    point = data["series"][0]["points"][0]
    assert (point["value"], point["low"], point["high"]) == (None, None, None)
    assert data["series"][0]["segments"][0]["level"] is None


def test_hostile_strings_survive_as_data() -> None:
    report = sample_report(hostile=True)
    data = json.loads(render_json(report))
    assert data["commits"][0]["subject"] == report.commits[0].subject  # escape sequence included
    assert "\x1b" not in render_json(report)  # written as \u001b


# ----------------------------------------------------------------------------- schema
def schema_structure_check(schema: dict[str, Any], data: Any, node: dict[str, Any] | None = None) -> None:
    """A minimal check that needs no jsonschema: required properties present, no undocumented ones,
    types of the subset of JSON Schema the report schema uses."""
    node = schema if node is None else node
    if "$ref" in node:
        name = node["$ref"].removeprefix("#/$defs/")
        schema_structure_check(schema, data, schema["$defs"][name])
        return
    if "const" in node:
        assert data == node["const"]
    if "enum" in node:
        assert data in node["enum"]
    types = node.get("type")
    if types is not None:
        types = types if isinstance(types, list) else [types]
        checks = {
            "object": lambda v: isinstance(v, dict),
            "array": lambda v: isinstance(v, list),
            "string": lambda v: isinstance(v, str),
            "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
            "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
            "boolean": lambda v: isinstance(v, bool),
            "null": lambda v: v is None,
        }
        assert any(checks[t](data) for t in types), (types, data)
    if isinstance(data, dict):
        props = node.get("properties", {})
        assert set(node.get("required", [])) <= set(data)
        if props:
            assert set(data) <= set(props), set(data) - set(props)
        for key, value in data.items():
            sub = props.get(key, node.get("additionalProperties"))
            if isinstance(sub, dict):
                schema_structure_check(schema, value, sub)
    if isinstance(data, list) and "items" in node:
        for item in data:
            schema_structure_check(schema, item, node["items"])
    if "minimum" in node and isinstance(data, int):
        assert data >= node["minimum"]


def test_schema_is_shipped_and_complete() -> None:
    schema = report_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["properties"]["schema_version"]["const"] == REPORT_SCHEMA_VERSION
    # Every property listed is required (always present), top level and in every definition.
    nodes = [schema, *schema["$defs"].values()]
    nodes += [n["items"] for n in schema["$defs"]["series"]["properties"].values() if "items" in n]
    for node in nodes:
        if "properties" in node and node is not schema["$defs"]["counts"]["properties"]["by_kind"]:
            assert set(node["required"]) == set(node["properties"]), node.get("description")
    # The documented top level is what the renderer writes.
    assert list(schema["required"]) == list(json.loads(render_json(sample_report())))


@pytest.mark.parametrize("name", sorted(REPORTS))
def test_structure_matches_schema(name: str) -> None:
    data = json.loads(render_json(REPORTS[name]()))
    schema_structure_check(report_schema(), data)  # raises AssertionError naming the first mismatch
    assert data["schema_version"] == REPORT_SCHEMA_VERSION


@pytest.mark.parametrize("name", sorted(REPORTS))
def test_validates_against_schema(name: str) -> None:
    import jsonschema  # a test dependency (pyproject: test extra): never skipped

    schema = report_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    data = json.loads(render_json(REPORTS[name]()))
    jsonschema.Draft202012Validator(schema).validate(data)
    jsonschema.Draft202012Validator(strict(schema)).validate(data)  # validate() raises on any mismatch
    assert not list(jsonschema.Draft202012Validator(strict(schema)).iter_errors(data))


def test_schema_rejects_wrong_documents() -> None:
    import jsonschema  # a test dependency (pyproject: test extra): never skipped

    validator = jsonschema.Draft202012Validator(strict(report_schema()))
    good = json.loads(render_json(sample_report()))
    assert validator.is_valid(good)
    mutations: list[Callable[[dict[str, Any]], object]] = [
        lambda d: d.update(schema_version=2),
        lambda d: d.pop("entries"),
        lambda d: d["entries"][0].update(status="bogus"),
        lambda d: d["entries"][0]["findings"][0].update(rel_change="NaN"),
        lambda d: d["series"][0]["points"][0].pop("sha"),
        lambda d: d["commits"][0].update(position=-2),
        lambda d: d["entries"][0].update(extra=1),
        lambda d: d["entries"][0]["findings"][0].update(steps=0),
        lambda d: d["entries"][0]["findings"][0].pop("steps"),
        lambda d: d.pop("ci_url"),
    ]
    for mutate in mutations:
        bad = copy.deepcopy(good)
        mutate(bad)
        assert not validator.is_valid(bad)
