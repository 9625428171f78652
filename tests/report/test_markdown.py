"""Markdown report: structure, inert untrusted text, and the size limit of a GitHub comment."""

from __future__ import annotations

import dataclasses
import re
from html.parser import HTMLParser

import pytest
from sample import HOSTILE_METRIC, HOSTILE_SUBJECT, HOSTILE_TEST, big_report, sample_report, sha, with_drift

from mltest.report.markdown import MIN_CHARS, md_text, render_markdown
from mltest.report.model import EntryView, Report

WORD_JOINER = "\u2060"


def table_blocks(text: str) -> list[list[str]]:
    """Every Markdown table: runs of consecutive lines that start with ``|``."""
    blocks: list[list[str]] = []
    current: list[str] = []
    for line in text.split("\n"):
        if line.startswith("|"):
            current.append(line)
        elif current:
            blocks.append(current)
            current = []
    if current:
        blocks.append(current)
    return blocks


def cell_separators(line: str) -> int:
    """Pipes GFM splits a row on: those not escaped by an odd number of backslashes."""
    return sum(1 for m in re.finditer(r"(\\*)\|", line) if len(m.group(1)) % 2 == 0)


def link_targets(text: str) -> list[str]:
    return re.findall(r"\]\(([^)\s]*)\)", text)


def many_entries(n_series: int = 300, n_commits: int = 50) -> Report:
    """big_report with one entry per finding (big_report puts all findings in one entry)."""
    big = big_report(n_series, n_commits)
    findings = big.entries[0].findings
    entries = tuple(EntryView(f"r-{i:03d}", "regression", "new", (f,)) for i, f in enumerate(findings))
    return dataclasses.replace(big, entries=entries)


# ----------------------------------------------------------------------------- structure
def test_sample_verdict_and_summary_table() -> None:
    report = sample_report()
    text = render_markdown(report)
    lines = text.split("\n")
    assert lines[0] == "## mltest regression report"
    assert "❌ **1 new regression**: 1 new, 1 acknowledged, 1 recovered, 1 improvement, 1 environment change" in text

    summary = table_blocks(text)[0]
    assert summary[0] == "| Status | Kind | Culprit or range | Largest change | Confidence |"
    assert summary[1] == "| --- | --- | --- | --- | --- |"
    rows = summary[2:]
    assert len(rows) == len(report.entries)
    # Rows in the report's order: new, acknowledged, recovered, improvement, environment.
    for row, status in zip(rows, ["❌ new", "☑️ acknowledged", "↩️ recovered", "🚀 open", "🔧 open"], strict=True):
        assert row.startswith(f"| {status} |")
    new = rows[0]
    assert f"[<code>{sha(6)[:10]}</code>](https://github.com/acme/model/commit/{sha(6)})" in new
    assert "Validate every training row for NaN/inf before the step" in new
    # The largest change of the two findings (+30% step time over -23% throughput), and the other counted.
    assert "<code>step\\_time</code>: 100 ms → 130 ms (+30.0%) and 1 more" in new
    assert "| 99.9% |" in new
    ack = rows[1]
    assert f"[<code>{sha(7)[:10]}</code>](https://github.com/acme/model/commit/{sha(7)})..[<code>" in ack
    assert "(2 commits)" in ack
    assert "<code>accuracy</code>: 0.91 → 0.89 (-2.2%)" in ack
    assert "<code>peak\\_memory\\_allocated</code>: 1.863 GiB → 2.421 GiB (+30.0%)" in rows[2]
    assert "<code>latency</code>: 20 ms → 15 ms (-25.0%)" in rows[3]


def test_sample_details_blocks() -> None:
    report = sample_report()
    text = render_markdown(report)
    blocks = re.findall(r"<details><summary>(.*?)</summary>\n\n(.*?)</details>", text, flags=re.S)
    assert len(blocks) == len(report.entries)
    assert text.count("<details>") == text.count("</details>") == len(report.entries)
    summaries = [summary for summary, _ in blocks]
    assert summaries[0] == f"<code>r-new</code> new regression, culprit <code>{sha(6)[:10]}</code>: 2 findings"
    assert summaries[1].startswith("<code>r-ack</code> acknowledged regression, <code>")
    assert "(2 commits): 1 finding" in summaries[1]

    new_body = blocks[0][1]
    findings_table = table_blocks(new_body)[0]
    assert findings_table[0] == "| Test | Metric | Before → after | Δ | Confidence | Environment | Notes |"
    assert len(findings_table) == 2 + 2
    assert findings_table[2].startswith("| <code>tests/test\\_train.py\\:\\:test\\_training</code> | <code>step\\_time")
    assert "| 100 ms → 130 ms | +30.0% | 99.9% | <code>A100-SXM4-80GB x1</code> |" in findings_table[2]
    assert "| 1000 samples/s → 770 samples/s | -23.0% | 99.9% |" in findings_table[3]
    assert 'If this is expected: `mltest ack r-new --reason "..."`' in new_body

    ack_body = blocks[1][1]
    assert "Acknowledged: bigger eval set, expected (alice, 2026-11-10)" in ack_body
    assert f"[compare](https://github.com/acme/model/compare/{sha(7)}...{sha(9)})" in ack_body
    # The commits of the range, oldest first, linked, with their subjects.
    assert f"- [<code>{sha(8)[:10]}</code>](https://github.com/acme/model/commit/{sha(8)}) commit number 8" in ack_body
    assert ack_body.index(f"- [<code>{sha(8)[:10]}") < ack_body.index(f"- [<code>{sha(9)[:10]}")

    rec_body = blocks[2][1]
    assert f"recovered at [<code>{sha(5)[:10]}</code>](https://github.com/acme/model/commit/{sha(5)})" in rec_body
    assert "<code>foo\\_metric</code>" in text  # the undirected metrics
    assert len(text) < 65_000


def test_links_only_to_commits_of_the_repository() -> None:
    text = render_markdown(sample_report())
    targets = link_targets(text)
    assert targets
    assert all(t.startswith("https://github.com/acme/model/") for t in targets)


def test_no_entries_is_a_green_verdict() -> None:
    report = dataclasses.replace(sample_report(), entries=())
    text = render_markdown(report)
    assert "✅ **no new regressions**" in text
    assert "<details>" not in text


def test_entry_without_findings() -> None:
    report = sample_report()
    report = dataclasses.replace(report, entries=(EntryView("r-x", "drift", "new", ()), *report.entries))
    text = render_markdown(report)
    assert table_blocks(text)[0][2] == "| ❌ new | drift | ? |  |  |"
    assert "<details><summary><code>r-x</code> new drift, no findings</summary>" in text


def test_only_acknowledged_is_green() -> None:
    report = sample_report()
    report = dataclasses.replace(report, entries=report.entries[1:])
    text = render_markdown(report, title="Benchmarks")
    assert text.startswith("## Benchmarks\n")
    assert "✅ **no new regressions**: 0 new, 1 acknowledged" in text


def test_drift_steps_and_ci_job_link() -> None:
    text = render_markdown(with_drift(sample_report(ci_url="https://github.com/acme/model/actions/runs/42")))
    meta = next(line for line in text.splitlines() if line.startswith("<sub>"))
    assert meta.endswith(" · [CI job](https://github.com/acme/model/actions/runs/42)</sub>")
    row = next(line for line in text.splitlines() if line.startswith("| <code>tests/test\\_train.py\\:\\:test\\_step"))
    assert row.endswith(f"| 2 steps at {sha(2)[:10]}, {sha(8)[:10]} |")
    # Only an http(s) CI URL becomes a link; another is not shown at all.
    assert "CI job" not in render_markdown(sample_report(ci_url="javascript:alert(1)"))
    assert "CI job" not in render_markdown(sample_report())


def test_without_repository_url_no_links() -> None:
    text = render_markdown(sample_report(repo_url=None))
    assert link_targets(text) == []
    assert f"<code>{sha(6)[:10]}</code>" in text


# ----------------------------------------------------------------------------- untrusted text
@pytest.mark.parametrize("repo_url", ["https://github.com/acme/model", "javascript:alert(1)", None])
def test_hostile_text_is_inert(repo_url: str | None) -> None:
    text = render_markdown(sample_report(hostile=True, repo_url=repo_url))
    for table in table_blocks(text):
        expected = cell_separators(table[0])
        assert expected >= 2
        for row in table:
            assert cell_separators(row) == expected, row
    lowered = text.lower()
    for needle in ("<script", "<img", "<b>", "<i>", "</td", "](javascript:", "javascript:alert(1)/commit"):
        assert needle not in lowered
    assert "\x1b" not in text
    # The subject's URL is no autolink: every http(s):// left is one of our link targets.
    assert "http://" not in text
    for m in re.finditer(r"https?://", text):
        assert text[m.start() - 2 : m.start()] == "](", text[m.start() - 40 : m.start() + 40]
    # Raw HTML is only ours.
    tags = set(re.findall(r"</?([a-zA-Z]+)", text))
    assert tags <= {"code", "details", "summary", "sub"}
    # The summary lines are raw HTML: there the text is HTML-escaped.
    for summary in re.findall(r"<summary>(.*?)</summary>", text):
        assert "<" not in re.sub(r"</?code>", "", summary)


def test_javascript_repo_url_never_links() -> None:
    text = render_markdown(sample_report(repo_url="javascript:alert(1)"))
    assert link_targets(text) == []
    assert "javascript" not in text


def test_md_text_escapes() -> None:
    assert md_text("a|b") == "a\\|b"
    assert md_text("a\\|b") == "a\\\\\\|b"  # GFM: \\ then \| -> one cell showing a\|b
    assert md_text("x\ny\r\tz") == "x y z"
    assert md_text("\x1b[31mred\x1b[0m\x07") == "red"
    assert md_text("see http://evil.example and www.evil.example") == (
        "see http\\://evil.example and www\\.evil.example"
    )
    assert md_text("[x](javascript:alert(1))") == "\\[x\\](javascript\\:alert(1))"
    assert md_text("<b>*a*_b_`c`~d~$e$&amp;</b>") == "&lt;b&gt;\\*a\\*\\_b\\_\\`c\\`\\~d\\~\\$e\\$&amp;amp;&lt;/b&gt;"
    # No @mention, issue reference or e-mail autolink in prose; code-ish text keeps its characters.
    assert md_text("fix #12 for @alice") == f"fix \\#{WORD_JOINER}12 for \\@{WORD_JOINER}alice"
    assert md_text("fix #12", prose=False) == "fix \\#12"
    assert md_text("see GH-12, gh-3 and GHOST-4") == f"see GH{WORD_JOINER}-12, gh{WORD_JOINER}-3 and GHOST-4"
    assert md_text("GH-12", prose=False) == "GH-12"
    assert md_text("x" * 200, 10) == "x" * 9 + "…"


def test_mentions_and_bidi_in_subjects() -> None:
    report = sample_report()
    commits = tuple(
        dataclasses.replace(c, subject="Fix @alice's bug (#123) \u202eevil\u202c http://x.example")
        if c.sha == sha(6)
        else c
        for c in report.commits
    )
    text = render_markdown(dataclasses.replace(report, commits=commits))
    assert "@alice" not in text
    assert "#123" not in text
    assert "\u202e" not in text
    assert "http://" not in text
    assert f"\\@{WORD_JOINER}alice's bug (\\#{WORD_JOINER}123) evil http\\://x.example" in text


# ----------------------------------------------------------------------------- size
def test_big_report_fits_a_comment() -> None:
    text = render_markdown(big_report(300, 50))
    assert len(text) <= 65_000
    assert "not shown" not in text  # 30 findings fit whole


def test_big_report_truncated_keeps_table_and_says_so() -> None:
    full = render_markdown(big_report(300, 50))
    text = render_markdown(big_report(300, 50), max_chars=4_000)
    assert len(full) > 4_000 >= len(text)
    assert table_blocks(text)[0][0].startswith("| Status |")
    # The only entry keeps its details, with fewer findings, and says how many are left out.
    assert text.count("<details>") == text.count("</details>") == 1
    m = re.search(r"… (\d+) more findings not shown \(full report: `mltest report --format html`\)", text)
    assert m
    shown = len(table_blocks(text)[1]) - 2
    assert shown + int(m.group(1)) == 30


def test_many_entries_details_dropped_then_rows() -> None:
    report = many_entries()
    full = render_markdown(report)
    assert len(report.entries) == 30
    assert "not shown" not in full

    text = render_markdown(report, max_chars=len(full) // 2)
    assert len(text) <= len(full) // 2
    rows = table_blocks(text)[0][2:]
    assert len(rows) == 30  # every row, fewer details
    shown = text.count("<details>")
    assert 0 < shown < 30
    assert text.count("</details>") == shown
    assert f"_… details of {30 - shown} more entries not shown (full report: `mltest report --format html`)._" in text
    # Dropped from the end: the details shown are those of the first entries.
    assert re.findall(r"<summary><code>(r-\d+)</code>", text) == [f"r-{i:03d}" for i in range(shown)]

    text = render_markdown(report, max_chars=2_000)
    assert len(text) <= 2_000
    rows = table_blocks(text)[0][2:]
    assert 0 < len(rows) < 30
    assert "<details>" not in text
    assert f"_… {30 - len(rows)} more entries not shown (full report: `mltest report --format html`)._" in text


@pytest.mark.parametrize("max_chars", [MIN_CHARS, 1_500, 3_000, 7_777, 12_000, 20_000])
def test_truncation_always_within_limit_and_well_formed(max_chars: int) -> None:
    for report in (many_entries(), big_report(300, 50), sample_report(hostile=True)):
        text = render_markdown(report, max_chars=max_chars)
        assert len(text) <= max_chars
        assert text.count("<details>") == text.count("</details>")
        for table in table_blocks(text):
            assert len({cell_separators(row) for row in table}) == 1


def test_long_project_name_and_title_are_cut() -> None:
    report = dataclasses.replace(many_entries(), project="p" * 5_000, notes=("n" * 5_000,) * 50)
    text = render_markdown(report, max_chars=MIN_CHARS, title="t" * 5_000)
    assert len(text) <= MIN_CHARS


def test_max_chars_too_small() -> None:
    with pytest.raises(ValueError, match="max_chars"):
        render_markdown(sample_report(), max_chars=MIN_CHARS - 1)


def test_hostile_subject_is_the_sample_one() -> None:
    # Guards the hostile test above against a sample without hostile subjects.
    assert sample_report(hostile=True).commit(sha(6)).subject == HOSTILE_SUBJECT


# ----------------------------------------------------------------------------- GitHub's own parser
class _Html(HTMLParser):
    """Tags, link targets, table row widths and text of rendered HTML."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.hrefs: list[str | None] = []
        self.row_cells: list[int] = []
        self.text: list[str] = []
        self._cells = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        if tag == "tr":
            self._cells = 0
        elif tag in ("td", "th"):
            self._cells += 1
        elif tag == "a":
            self.hrefs.append(dict(attrs).get("href"))

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self.row_cells.append(self._cells)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


@pytest.mark.parametrize("repo_url", ["https://github.com/acme/model", "javascript:alert(1)"])
def test_github_renders_hostile_text_as_text(repo_url: str) -> None:
    """Through cmark-gfm (what github.com uses, via cmarkgfm): tables keep their cells, the only links
    and tags are ours, and the hostile text reads back exactly (escape sequences removed)."""
    import cmarkgfm  # GitHub's own Markdown parser, a test dependency: never skipped

    extra = " a\\|b @alice #12 www.evil.example bob@evil.example :smile: $x$ ~~s~~ &lt;i&gt;"
    report = sample_report(hostile=True, repo_url=repo_url)
    commits = tuple(dataclasses.replace(c, subject=f"commit {c.position}{extra}") for c in report.commits)
    commits = tuple(dataclasses.replace(c, subject=HOSTILE_SUBJECT) if c.sha == sha(6) else c for c in commits)
    report = dataclasses.replace(report, commits=commits)
    html = cmarkgfm.github_flavored_markdown_to_html(render_markdown(report), options=cmarkgfm.Options.CMARK_OPT_UNSAFE)
    parsed = _Html()
    parsed.feed(html)
    ours = {"a", "code", "details", "h2", "li", "p", "strong", "sub", "summary", "table", "thead", "tbody", "tr"}
    assert parsed.tags <= ours | {"th", "td", "ul"}
    assert set(parsed.row_cells) == {5, 7}
    hrefs = {re.sub(r"[0-9a-f]{40}", "SHA", str(h)) for h in parsed.hrefs}
    if repo_url.startswith("https"):
        assert hrefs == {f"{repo_url}/commit/SHA", f"{repo_url}/compare/SHA...SHA"}
    else:
        assert hrefs == set()
    text = "".join(parsed.text)
    assert HOSTILE_SUBJECT.replace("\x1b[31m", "").replace("\x1b[0m", "")[:80] in text
    assert HOSTILE_TEST in text
    assert HOSTILE_METRIC in text
    assert "A100 <b>x1</b> | `env`" in text
    # Mentions and references are broken by an invisible word joiner; the rest reads as written.
    wj = WORD_JOINER
    assert (
        f"commit 8 a\\|b @{wj}alice #{wj}12 www.evil.example bob@{wj}evil.example :smile: $x$ ~~s~~ &lt;i&gt;" in text
    )


def test_comparison_markdown_keeps_hostile_names_inside_their_cells() -> None:
    from mltest.report.markdown import render_comparison_markdown
    from mltest.report.model import ComparisonReport, ComparisonView

    hostile = "a|b](javascript:alert(1)) <img src=x onerror=alert(1)> @team \x1b[31m"
    rows = tuple(
        ComparisonView(hostile, hostile, "s", 0.1, 0.13, 0.3, 0.001, verdict, 10)
        for verdict in ("unchanged", "regression", "no baseline")
    )
    text = render_comparison_markdown(
        ComparisonReport("run-1", "f" * 40, hostile, "main", hostile, rows, "javascript:alert(1)")
    )
    assert "<img" not in text
    assert not re.search(r"(?<!\\)\]\(javascript", text)  # only escaped brackets: no link
    assert "\x1b" not in text
    table = [line for line in text.splitlines() if line.startswith("| ")]
    assert len({line.replace("\\|", "").count("|") for line in table}) == 1  # every row has the header's cells
    assert "❌ regression" in table[2]  # regressions first
    long = render_comparison_markdown(
        ComparisonReport("r", "f" * 40, "b", "main", "e", rows * 400, None), max_chars=5_000
    )
    assert len(long) <= 5_000
    assert "more metrics not shown" in long
