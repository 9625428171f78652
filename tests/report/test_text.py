"""Terminal report: sections in order, per-metric lines, colour only on request, no injected escapes.

Also the shared formatting helpers (mltest.report.fmt)."""

from __future__ import annotations

import dataclasses
import math
import re

import pytest
from sample import sample_report, sha

from mltest.report.fmt import (
    clean_text,
    count_phrases,
    ellipsize,
    fmt_confidence,
    fmt_pct,
    fmt_value,
    safe_url,
    short_sha,
)
from mltest.report.model import EntryView
from mltest.report.text import render_text

OUR_SGR = re.compile(r"\x1b\[[0-9;]*m")
SECTIONS = [
    "NEW REGRESSIONS (1)",
    "ACKNOWLEDGED REGRESSIONS (1)",
    "RECOVERED REGRESSIONS (1)",
    "IMPROVEMENTS (1)",
    "ENVIRONMENT CHANGES (1)",
]


def test_sample_layout() -> None:
    text = render_text(sample_report())
    lines = text.split("\n")
    assert lines[0] == "mltest report: acme-model, branch main: 7 series over 12 commits"
    assert lines[1] == "1 new regression: 1 new, 1 acknowledged, 1 recovered, 1 improvement, 1 environment change"
    positions = [text.index(title) for title in SECTIONS]
    assert positions == sorted(positions)

    new = text[positions[0] : positions[1]]
    assert f"r-new  culprit {sha(6)[:10]}  Validate every training row for NaN/inf before the step" in new
    assert "    tests/test_train.py::test_training  [A100-SXM4-80GB x1]" in new
    step = next(line for line in new.split("\n") if "step_time" in line)
    assert re.fullmatch(r" {6}step_time +100 ms → 130 ms +\+30\.0%  confidence 99\.9%", step)
    thr = next(line for line in new.split("\n") if "samples_per_s" in line)
    assert re.fullmatch(r" {6}samples_per_s +1000 samples/s → 770 samples/s +-23\.0%  confidence 99\.9%", thr)
    assert step.index("+30.0%") == thr.index("-23.0%")  # aligned
    assert 'if this is expected: mltest ack r-new --reason "..."' in new

    ack = text[positions[1] : positions[2]]
    assert f"r-ack  between {sha(7)[:10]} (last good) and {sha(9)[:10]} (first bad): 2 commits" in ack
    assert f"      {sha(8)[:10]}  commit number 8\n      {sha(9)[:10]}  commit number 9" in ack
    assert re.search(r"\n {6}accuracy +0\.91 → 0\.89 +-2\.2%  confidence 99\.6%\n", ack)
    assert "-2.2%  confidence 99.6%" in ack
    assert "acknowledged: bigger eval set, expected (alice, 2026-11-10)" in ack

    rec = text[positions[2] : positions[3]]
    assert "1.863 GiB → 2.421 GiB" in rec
    assert f"recovered at {sha(5)[:10]}" in rec
    assert "20 ms → 15 ms" in text[positions[3] : positions[4]]
    assert "0.5 → 0.55" in text[positions[4] :]
    assert "skipped (direction unknown" in text
    assert "foo_metric" in text


def test_no_colour_by_default_and_colour_on_request() -> None:
    assert "\x1b" not in render_text(sample_report())
    text = render_text(sample_report(), color=True)
    lines = text.split("\n")
    assert any(line.startswith("\x1b[1;31mNEW REGRESSIONS") for line in lines)
    assert any(line.startswith("\x1b[1;32mIMPROVEMENTS") for line in lines)
    assert any(line.startswith("\x1b[1;2mRECOVERED") for line in lines)
    assert "\x1b[1;31m +30.0%\x1b[0m" in text  # the new regression's change, red
    assert "\x1b[1;32m -25.0%\x1b[0m" in text  # the improvement, green
    # Without its codes, the coloured text is the plain text.
    assert OUR_SGR.sub("", text) == render_text(sample_report())


@pytest.mark.parametrize("color", [False, True])
def test_hostile_text_cannot_inject_escapes(color: bool) -> None:
    report = sample_report(hostile=True)
    nasty = (
        "a\x1b]0;window title\x07b\x1b]8;;http://evil\x1b\\link\x1b]8;;\x1b\\ c\x9b31m d\rover\x08\x07"
        " \u202eevil\u202c \x1bPdcs\x1b\\ e\x1b(0f\x00g\x7f"
    )
    commits = tuple(dataclasses.replace(c, subject=nasty) if c.sha == sha(6) else c for c in report.commits)
    report = dataclasses.replace(report, commits=commits, notes=("note\x1b[2J\x1b[Hcleared",))
    text = render_text(report, color=color, width=200)
    plain = OUR_SGR.sub("", text) if color else text
    assert "\x1b" not in plain
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", text.replace("\x1b", ""))
    # Whole sequences go (OSC title and hyperlink, 8-bit CSI, DCS, charset), not just the ESC.
    assert f"culprit {sha(6)[:10]}  ablink c d over evil  efg" in plain
    # The sample's hostile subject (\x1b[31mred\x1b[0m) is plain "red": nothing after it is coloured.
    for line in text.split("\n"):
        if "HYPERLINK" in line:
            assert "\x1b" not in line[line.index("HYPERLINK") :]


@pytest.mark.parametrize("width", [40, 60, 80, 100, 140])
@pytest.mark.parametrize("hostile", [False, True])
def test_lines_fit_width(width: int, hostile: bool) -> None:
    text = render_text(sample_report(hostile=hostile), width=width)
    assert max(len(line) for line in text.split("\n")) <= width
    colored = render_text(sample_report(hostile=hostile), width=width, color=True)
    assert max(len(OUR_SGR.sub("", line)) for line in colored.split("\n")) <= width


def test_no_entries() -> None:
    text = render_text(dataclasses.replace(sample_report(), entries=()))
    assert text.split("\n")[1].startswith("no new regressions: 0 new")
    assert "REGRESSIONS (" not in text


def test_entry_without_findings_and_other_kinds() -> None:
    report = sample_report()
    odd = EntryView("r-x", "drift", "new", ())
    other = dataclasses.replace(report.entries[0], id="r-y", kind="mystery", status="open")
    text = render_text(dataclasses.replace(report, entries=(odd, *report.entries, other)))
    assert "NEW REGRESSIONS (2)" in text
    assert "r-x  no findings" in text
    assert text.index("ENVIRONMENT CHANGES") < text.index("OTHER (1)") < text.index("r-y  culprit")


def test_long_range_is_cut() -> None:
    report = sample_report()
    entry = report.entries[1]
    f = dataclasses.replace(entry.findings[0], commits=tuple(sha(i) for i in range(100, 150)))
    report = dataclasses.replace(report, entries=(dataclasses.replace(entry, findings=(f,)),))
    text = render_text(report)
    assert ": 50 commits" in text
    assert "… and 30 more" in text


# ----------------------------------------------------------------------------- fmt
@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        (0.13, "s", "130 ms"),
        (4.724e-4, "s", "472.4 µs"),
        (3e-9, "s", "3 ns"),
        (1e-12, "s", "0.001 ns"),
        (12.5, "s", "12.5 s"),
        (2.6e9, "bytes", "2.421 GiB"),
        (3 * 2**20, "bytes", "3 MiB"),
        (1536, "bytes", "1.5 KiB"),
        (100, "bytes", "100 bytes"),
        (770.0, "samples/s", "770 samples/s"),
        (0.912345, None, "0.9123"),
        (123456.0, None, "123,456"),
        (3.2e17, None, "3.2e+17"),
        (0, "s", "0 s"),
        (math.nan, "s", "nan s"),
        (math.inf, None, "inf"),
    ],
)
def test_fmt_value(value: float, unit: str | None, expected: str) -> None:
    assert fmt_value(value, unit) == expected


def test_fmt_helpers() -> None:
    assert fmt_pct(0.3) == "+30.0%"
    assert fmt_pct(-0.2298) == "-23.0%"
    assert fmt_pct(math.inf) == "+inf"
    assert fmt_pct(-math.inf) == "-inf"
    assert fmt_pct(math.nan) == "n/a"
    assert fmt_confidence(0.999) == "99.9%"
    assert fmt_confidence(0.99999) == ">99.9%"
    assert fmt_confidence(1.0) == "100.0%"
    assert fmt_confidence(math.nan) == "n/a"
    assert short_sha(sha(1)) == sha(1)[:10]
    assert short_sha(None) == "?"
    assert ellipsize("abcdef", 4) == "abc…"
    assert ellipsize("abcdef", 4, keep_end=True) == "…def"
    assert ellipsize("abc", 4) == "abc"
    assert clean_text("a\nb\x1b[1mc\x1b[0m\u202e", 10) == "a bc"
    assert clean_text(None) == ""
    assert count_phrases(sample_report()) == [
        "1 new",
        "1 acknowledged",
        "1 recovered",
        "1 improvement",
        "1 environment change",
    ]


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://github.com/acme/model/commit/abc", True),
        ("HTTP://example.com/x", True),
        ("javascript:alert(1)", False),
        ("javascript:alert(1)/commit/abc", False),
        (" https://example.com", False),
        ("https://exa mple.com", False),
        ("https:///path-only", False),
        ("data:text/html,<script>", False),
        ("//example.com/x", False),
        ("https://example.com/\x00", False),
        ("", False),
        (None, False),
    ],
)
def test_safe_url(url: str | None, ok: bool) -> None:
    assert safe_url(url) == (url if ok else None)
