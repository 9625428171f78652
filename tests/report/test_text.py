"""Terminal report (rich): sections in order, aligned per-metric rows, colour only on request, and no
escape sequence, control character or rich markup from untrusted text.

Also the shared formatting helpers (mltest.report.fmt)."""

from __future__ import annotations

import dataclasses
import math
import re

import pytest
from rich.cells import cell_len
from sample import HOSTILE_SUBJECT, sample_report, sha, with_drift

from mltest.report.fmt import (
    clean_text,
    count_phrases,
    ellipsize,
    fmt_confidence,
    fmt_pct,
    fmt_value,
    note_text,
    safe_url,
    short_sha,
)
from mltest.report.model import EntryView, Report
from mltest.report.text import render_text

SGR = re.compile(r"\x1b\[[0-9;]*m")
OSC8 = re.compile(r"\x1b\]8;([^;\x1b\x07]*);([^\x1b\x07]*)\x1b\\")
"""An OSC 8 hyperlink (open: params and URL; close: both empty), ST-terminated as rich writes it."""
SECTIONS = [
    "NEW REGRESSIONS (1)",
    "ACKNOWLEDGED REGRESSIONS (1)",
    "RECOVERED REGRESSIONS (1)",
    "IMPROVEMENTS (1)",
    "ENVIRONMENT CHANGES (1)",
]
REPO = "https://github.com/acme/model"
# Rich markup, an emoji code, a terminal hyperlink, a colour, bidirectional overrides: all must stay text.
MARKUP = "[bold red]x[/] [link=http://evil]y[/link] :smile:"
HOSTILE = (
    f"{MARKUP} \x1b[31mred\x1b[0m \x1b]8;;http://evil\x1b\\z\x1b]8;;\x1b\\ \u202eevil\u202c \u2066iso\u2069 \x9b2J w"
)
HOSTILE_SHOWN = f"{MARKUP} red z evil iso  w"
"""What the terminal shows of :data:`HOSTILE`: its escape sequences, controls and overrides removed."""
LINK_ID = re.compile(r"(?<=\x1b\]8;)id=\d+(?=;)")
"""Rich gives every link a random id (terminals group the cells of one link by it)."""


def strip_ours(text: str) -> str:
    """``text`` without SGR codes and OSC 8 links: what a terminal shows."""
    return OSC8.sub("", SGR.sub("", text))


def hostile_everywhere() -> Report:
    """The sample with :data:`HOSTILE` in every untrusted field the terminal shows."""
    report = sample_report()
    entries = tuple(
        dataclasses.replace(
            e,
            id=e.id + HOSTILE if e.status == "new" else e.id,
            acknowledged=HOSTILE if e.acknowledged else None,
            findings=tuple(
                dataclasses.replace(f, test=f.test + HOSTILE, metric="m" + HOSTILE, env_key=HOSTILE, note=HOSTILE)
                for f in e.findings
            ),
        )
        for e in report.entries
    )
    commits = tuple(dataclasses.replace(c, subject=HOSTILE) for c in report.commits)
    return dataclasses.replace(
        report,
        project=HOSTILE,
        branch=HOSTILE,
        entries=entries,
        commits=commits,
        undirected=(HOSTILE,),
        notes=(HOSTILE,),
        since=HOSTILE,
    )


def test_sample_layout() -> None:
    text = render_text(sample_report())
    lines = text.split("\n")
    assert lines[0] == "mltest report: acme-model, branch main: 7 series over 12 commits"
    assert lines[1] == "1 new regression: 1 new, 1 acknowledged, 1 recovered, 1 improvement, 1 environment change"
    positions = [text.index(title) for title in SECTIONS]
    assert positions == sorted(positions)

    new = text[positions[0] : positions[1]]
    assert f"\nr-new  culprit {sha(6)[:10]}  Validate every training row for NaN/inf before the step\n" in new
    assert "\n    tests/test_train.py::test_training  [A100-SXM4-80GB x1]\n" in new
    step = next(line for line in new.split("\n") if "step_time" in line)
    assert re.fullmatch(r" {6}step_time +100 ms → 130 ms +\+30\.0%  confidence 99\.9%", step)
    thr = next(line for line in new.split("\n") if "samples_per_s" in line)
    assert re.fullmatch(r" {6}samples_per_s  1000 samples/s → 770 samples/s +-23\.0%  confidence 99\.9%", thr)
    assert step.index("→") == thr.index("→")  # the values align on the arrow
    assert step.index("+30.0%") == thr.index("-23.0%")  # and the changes on their last digit
    assert '\n    if this is expected: mltest ack r-new --reason "..."\n' in new

    ack = text[positions[1] : positions[2]]
    assert f"r-ack  between {sha(7)[:10]} (last good) and {sha(9)[:10]} (first bad): 2 commits" in ack
    assert f"\n      {sha(8)[:10]}  commit number 8\n      {sha(9)[:10]}  commit number 9\n" in ack
    assert re.search(r"\n {6}accuracy  0\.91 → 0\.89 +-2\.2%  confidence 99\.6%\n", ack)
    assert "\n    acknowledged: bigger eval set, expected (alice, 2026-11-10)\n" in ack
    assert "mltest ack" not in ack

    rec = text[positions[2] : positions[3]]
    assert "1.863 GiB → 2.421 GiB" in rec
    assert f"\n        recovered at {sha(5)[:10]}\n" in rec
    assert "20 ms → 15 ms" in text[positions[3] : positions[4]]
    assert "0.5 → 0.55" in text[positions[4] :]
    assert "\nskipped (direction unknown; set higher_is_better in [tool.mltest.metrics.NAME]): foo_metric\n" in text
    assert lines[-2] == "generated 2026-11-30T08:00:00+00:00"
    assert lines[-1] == ""
    assert not any(line.endswith(" ") for line in lines)  # grid padding is not left at line ends
    assert "CI job" not in text


def test_plain_output_has_no_escape_and_no_box_drawing() -> None:
    text = render_text(with_drift(sample_report(ci_url="https://ci.example/job/7")), width=120)
    assert "\x1b" not in text
    assert not re.search(r"[\u2500-\u257f]", text)  # no box-drawing characters: a CI log shows it as is
    assert all(line.isprintable() for line in text.split("\n"))  # no control character, no escape


def test_colour_on_request() -> None:
    plain = render_text(sample_report())
    text = render_text(sample_report(), color=True)
    lines = text.split("\n")
    assert any(line.startswith("\x1b[1;31mNEW REGRESSIONS (1)\x1b[0m") for line in lines)
    assert any(line.startswith("\x1b[1;33mACKNOWLEDGED REGRESSIONS") for line in lines)
    assert any(line.startswith("\x1b[1;32mIMPROVEMENTS") for line in lines)
    assert any(line.startswith("\x1b[1;2mRECOVERED") for line in lines)
    assert "\x1b[1;31m1 new regression\x1b[0m" in lines[1]
    assert "\x1b[1;31m +30.0%\x1b[0m" in text  # the new regression's change, red
    assert "\x1b[1;32m -25.0%\x1b[0m" in text  # the improvement, green
    # Commits link to their page (OSC 8), and only there.
    links = [url for _, url in OSC8.findall(text) if url]
    assert f"{REPO}/commit/{sha(6)}" in links
    assert all(url.startswith(f"{REPO}/commit/") for url in links)
    # Without its codes, the coloured text is the plain text.
    assert strip_ours(text) == plain


def test_no_links_without_a_repository_url() -> None:
    text = render_text(sample_report(repo_url=None), color=True)
    assert "\x1b[1;31m" in text
    assert "\x1b]" not in text


@pytest.mark.parametrize("color", [False, True])
def test_hostile_text_is_shown_literally_and_cannot_inject(color: bool) -> None:
    text = render_text(hostile_everywhere(), color=color, width=400)
    shown = strip_ours(text) if color else text
    assert "\x1b" not in shown  # nothing of the data's escapes survives: no colour, hyperlink or erase
    assert "\x9b" not in shown
    assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", shown)
    # Rich markup and emoji codes are printed as they are, never interpreted.
    assert clean_text(HOSTILE) == HOSTILE_SHOWN
    assert shown.count(HOSTILE_SHOWN) >= 12
    assert "😄" not in shown
    for line in shown.split("\n"):
        if "[bold red]" in line:  # markup would vanish (some fields are cut short: "[link=http://evil]y…")
            assert "[bold red]x[/] [link=http://evil]y" in line
    if color:
        # Every link is ours: a commit of the repository; the data's OSC 8 link is gone.
        assert all(url.startswith(f"{REPO}/commit/") for _, url in OSC8.findall(text) if url)
        assert "http://evil\x1b" not in text
        # Our styles only: the data's \x1b[31m did not turn into a colour code of ours either.
        line = next(line for line in text.split("\n") if "acknowledged:" in line)
        assert SGR.findall(line) == ["\x1b[2m", "\x1b[0m"]  # the whole line dim, nothing else


def test_hostile_sample_subject() -> None:
    text = render_text(sample_report(hostile=True), width=200)
    assert clean_text(HOSTILE_SUBJECT) in text
    assert "\x1b" not in text
    assert "HYPERLINK" in text


@pytest.mark.parametrize("width", [40, 60, 80, 100, 140])
@pytest.mark.parametrize("hostile", [False, True])
def test_lines_fit_width(width: int, hostile: bool) -> None:
    report = hostile_everywhere() if hostile else with_drift(sample_report(ci_url="https://ci.example/job/7"))
    text = render_text(report, width=width)
    assert max(cell_len(line) for line in text.split("\n")) <= width
    colored = render_text(report, width=width, color=True)
    assert max(cell_len(strip_ours(line)) for line in colored.split("\n")) <= width
    assert strip_ours(colored) == text


def test_narrow_lines_keep_the_change() -> None:
    text = render_text(sample_report(), width=40)
    step = next(line for line in text.split("\n") if line.startswith("      step_t"))
    assert "+30.0%" in step
    assert "…" in step


def test_wide_characters_count_as_two_cells() -> None:
    report = sample_report()
    commits = tuple(dataclasses.replace(c, subject="訓練ループを高速化" * 10) for c in report.commits)
    text = render_text(dataclasses.replace(report, commits=commits), width=60)
    assert max(cell_len(line) for line in text.split("\n")) <= 60
    assert "訓練ループを高速化" in text


def test_the_environment_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    plain, colored = render_text(sample_report()), render_text(sample_report(), color=True)
    for name, value in (
        ("FORCE_COLOR", "1"),
        ("NO_COLOR", "1"),
        ("COLUMNS", "30"),
        ("TERM", "dumb"),
        ("TTY_COMPATIBLE", "1"),
    ):
        monkeypatch.setenv(name, value)
    assert render_text(sample_report()) == plain
    # The caller decides (the CLI: a TTY and no NO_COLOR).
    assert LINK_ID.sub("", render_text(sample_report(), color=True)) == LINK_ID.sub("", colored)


def test_no_entries() -> None:
    text = render_text(dataclasses.replace(sample_report(), entries=()))
    assert (
        text.split("\n")[1]
        == "no new regressions: 0 new, 0 acknowledged, 0 recovered, 0 improvements, 0 environment changes"
    )
    assert "REGRESSIONS (" not in text


def test_entry_without_findings_and_other_kinds() -> None:
    report = sample_report()
    odd = EntryView("r-x", "drift", "new", ())
    other = dataclasses.replace(report.entries[0], id="r-y", kind="mystery", status="open")
    text = render_text(dataclasses.replace(report, entries=(odd, *report.entries, other)))
    assert "NEW REGRESSIONS (2)" in text
    assert "\nr-x  drift  no findings\n" in text
    assert text.index("ENVIRONMENT CHANGES") < text.index("OTHER (1)") < text.index("r-y  mystery  culprit")


def test_long_range_is_cut() -> None:
    report = sample_report()
    entry = report.entries[1]
    f = dataclasses.replace(entry.findings[0], commits=tuple(sha(i) for i in range(100, 150)))
    report = dataclasses.replace(report, entries=(dataclasses.replace(entry, findings=(f,)),))
    text = render_text(report)
    assert ": 50 commits" in text
    assert f"      {sha(119)[:10]}\n      … and 30 more\n" in text
    assert sha(120)[:10] not in text


def test_drift_steps_ci_job_title_and_hidden_entries() -> None:
    report = with_drift(sample_report(ci_url="https://ci.example/job/7"))
    text = render_text(report, title="mltest check", show_all=False)
    lines = text.split("\n")
    assert lines[0] == "mltest check: acme-model, branch main: 7 series over 12 commits"
    assert lines[1].startswith("2 new regressions: 2 new, 1 acknowledged, 1 recovered,")
    assert lines[2] == "CI job: https://ci.example/job/7"
    drift = text[text.index("r-drift") : text.index("r-new")]
    assert drift.startswith(
        f"r-drift  drift  between {sha(1)[:10]} (last good) and {sha(8)[:10]} (first bad): 7 commits"
    )
    step = "\n      step_time  100 ms → 106 ms    +6.0%  confidence 99.9%\n"
    assert f"{step}        2 steps at {sha(2)[:10]}, {sha(8)[:10]}\n" in drift
    # Without show_all: new and acknowledged only, and a line counting the rest.
    assert "ACKNOWLEDGED REGRESSIONS (1)" in text
    for title in ("RECOVERED", "IMPROVEMENTS", "ENVIRONMENT CHANGES"):
        assert title not in text
    assert "(3 recovered, improvement and environment entries not shown: --all shows them)" in lines
    full = render_text(report, title="mltest check")
    assert "RECOVERED REGRESSIONS (1)" in full
    assert "not shown" not in full
    # The CI job links on a terminal; a URL that is not http(s) is not shown.
    colored = render_text(report, color=True)
    assert "https://ci.example/job/7" in [url for _, url in OSC8.findall(colored)]
    assert "CI job" not in render_text(sample_report(ci_url="javascript:alert(1)"))


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
    drift = dataclasses.replace(sample_report().entries[0].findings[0], steps=3, note="steps at a, b, c")
    assert note_text(drift) == "3 steps at a, b, c"
    assert note_text(dataclasses.replace(drift, note="")) == "3 steps"
    assert note_text(dataclasses.replace(drift, note="odd")) == "3 steps: odd"
    assert note_text(dataclasses.replace(drift, steps=1, note="driver 550 -> 560")) == "driver 550 -> 560"
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
