"""The HTML report: structure, data block, escaping of hostile text, offline-only, size at scale."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import math
import re
import time
from typing import Any

import pytest
from htmltree import Node, TreeBuilder
from sample import HOSTILE_METRIC, HOSTILE_SUBJECT, HOSTILE_TEST, big_report, sample_report, sha, with_drift

from mltest.report.html import _CSS, _JS, clean_text, fmt_value, render_html, safe_url
from mltest.report.model import Report


def parse(page: str) -> TreeBuilder:
    builder = TreeBuilder()
    builder.feed(page)
    builder.close()
    assert len(builder.stack) == 1, f"unclosed elements: {[n.tag for n in builder.stack]}"
    return builder


def data_of(doc: Node) -> Any:
    (block,) = doc.all("script", id="mltest-data")
    assert block.attrs["type"] == "application/json"
    return json.loads(block.text())


@pytest.fixture(scope="module")
def sample() -> Report:
    return sample_report()


@pytest.fixture(scope="module")
def page(sample: Report) -> str:
    return render_html(sample)


@pytest.fixture(scope="module")
def doc(page: str) -> Node:
    return parse(page).root


@pytest.fixture(scope="module")
def hostile_page() -> str:
    return render_html(sample_report(hostile=True))


# ----------------------------------------------------------------------------- structure


def test_is_one_html_document(page: str, doc: Node) -> None:
    assert page.startswith("<!DOCTYPE html>")
    (html_el,) = doc.all("html")
    assert html_el.attrs["lang"] == "en"
    assert doc.all("meta", charset="utf-8")
    assert "acme-model" in doc.all("title")[0].text()


def test_header_states_project_branch_store_and_counts(doc: Node) -> None:
    (header,) = doc.all("header")
    text = " ".join(header.text().split())
    for expected in ("acme-model", "main", "2026-11-30T08:00:00+00:00", "sqlite:///.mltest/results.db"):
        assert expected in text
    counts = [" ".join(li.text().split()) for li in header.all("li") if "count" in li.classes]
    assert counts == ["1 new", "1 acknowledged", "1 recovered", "1 improvements", "1 environment changes"]
    assert "foo_metric" in text  # the metrics skipped for lack of a direction


def test_drift_steps_and_ci_job_link() -> None:
    doc = parse(render_html(with_drift(sample_report(ci_url="https://ci.example/job/7?x=<b>")))).root
    (header,) = doc.all("header")
    [link] = [a for a in header.all("a") if a.text() == "https://ci.example/job/7?x=<b>"]
    assert link.attrs["href"] == "https://ci.example/job/7?x=<b>"  # attribute-escaped in the source
    notes = [" ".join(n.text().split()) for n in doc.all("span") if "note" in n.classes]
    assert f"2 steps at {sha(2)[:10]}, {sha(8)[:10]}" in notes
    plain = parse(render_html(sample_report(ci_url="javascript:alert(1)"))).root
    assert "CI job" not in plain.all("header")[0].text()


def test_index_lists_entries_in_report_order(sample: Report, doc: Node) -> None:
    (index,) = doc.all("section", id="index")
    entries = index.has("data-entry")
    assert [e.attrs["data-entry"] for e in entries] == [e.id for e in sample.entries]
    assert [e.attrs["id"] for e in entries] == [f"entry-{e.id}" for e in sample.entries]
    statuses = [e.all("span")[0].text() for e in entries]
    assert statuses == ["new", "acknowledged", "recovered", "open", "open"]
    assert "st-new" in entries[0].classes
    assert "k-environment" in entries[-1].classes


def test_entry_culprit_findings_and_chart_links(sample: Report, doc: Node) -> None:
    (new,) = doc.all("li", data_entry="r-new")
    culprit = sample.commit(sample.entries[0].culprit or "")
    links = [a for a in new.all("a") if a.attrs.get("href") == culprit.url]
    assert links
    assert links[0].text() == culprit.short
    assert "Validate every training row for NaN/inf before the step" in new.text()
    rows = new.all("tr", data_f="0") + new.all("tr", data_f="1")
    cells = [[" ".join(td.text().split()) for td in row.all("td")] for row in rows]
    assert cells[0][:6] == [
        "tests/test_train.py::test_training",
        "step_time",
        "100 ms → 130 ms",
        "+30.0%",
        "99.9%",
        "A100-SXM4-80GB x1",
    ]
    assert cells[1][1:4] == ["samples_per_s", "1000 samples/s → 770 samples/s", "-23.0%"]
    step_key = sample.entries[0].findings[0].series_key
    assert rows[0].all("a")[-1].attrs["href"] == f"#chart-{step_key}"
    assert "d-worse" in rows[0].classes


def test_range_acknowledgement_and_units(sample: Report, doc: Node) -> None:
    (ack,) = doc.all("li", data_entry="r-ack")
    text = " ".join(ack.text().split())
    assert "last good" in text
    assert "first bad" in text
    good, bad, commits = sample.entries[1].range
    assert good is not None
    assert sample.commit(good).short in text
    assert sample.commit(bad).short in text
    listed = ack.all("ol")[0].all("li")
    assert [li.all("code")[0].text() for li in listed] == [sample.commit(c).short for c in commits]
    assert "Acknowledged: bigger eval set, expected (alice, 2026-11-10)" in text
    (rec,) = doc.all("li", data_entry="r-rec")
    assert "1.863 GiB → 2.421 GiB" in " ".join(rec.text().split())
    assert "fixed by" in rec.text()
    (imp,) = doc.all("li", data_entry="r-imp")
    assert "20 ms → 15 ms" in imp.text()
    assert imp.all("tr", data_f="4")[0].classes == ["d-better"]


def test_every_affected_series_has_a_chart(sample: Report, doc: Node) -> None:
    (charts,) = doc.all("section", id="charts")
    figures = charts.all("figure")
    affected = [s.key for s in sample.series if s.findings]
    assert sorted(f.attrs["data-key"] or "" for f in figures) == sorted(affected)
    assert all(f.attrs["id"] == f"chart-{f.attrs['data-key']}" for f in figures)
    assert all(f.all("div", data_s=f.attrs["data-s"] or "") for f in figures)  # the plot container
    # new regressions first, as in the index
    assert [f.attrs["data-key"] for f in figures[:2]] == [f.series_key for f in sample.entries[0].findings]
    ids = {n.attrs["id"] for n in doc.has("id")}
    for a in doc.all("a"):
        href = a.attrs.get("href") or ""
        if href.startswith("#"):
            assert href[1:] in ids, href


def test_ids_are_unique(doc: Node) -> None:
    ids = [n.attrs["id"] for n in doc.has("id")]
    assert len(ids) == len(set(ids))


def test_filters_and_browser_controls(sample: Report, doc: Node) -> None:
    assert doc.all("input", id="f-test")
    assert doc.all("input", id="f-metric")
    (env,) = doc.all("select", id="f-env")
    assert [o.attrs["value"] for o in env.all("option")] == ["", "A100-SXM4-80GB x1"]
    (browse,) = doc.all("section", id="browse")
    assert browse.all("ol", id="b-list")
    assert f"All series ({len(sample.series)})" in browse.text()


# ----------------------------------------------------------------------------- data block


def test_data_block_has_every_series_and_point(sample: Report, doc: Node) -> None:
    data = data_of(doc)
    commits = data["commits"]
    assert isinstance(commits, dict)
    assert commits["sha"] == [c.sha for c in sample.commits]
    assert commits["subject"][6] == "Validate every training row for NaN/inf before the step"
    assert commits["url"][0] == sample.commits[0].url
    series = data["series"]
    assert isinstance(series, list)
    assert [s["key"] for s in series] == [s.key for s in sample.series]
    for view, item in zip(sample.series, series, strict=True):
        assert len(item["y"]) == len(view.points)
        assert item["y"] == pytest.approx([p.value for p in view.points], rel=1e-5)
        assert item["lo"] == pytest.approx([p.low for p in view.points], rel=1e-5)
        assert item["hi"] == pytest.approx([p.high for p in view.points], rel=1e-5)
        assert "x" not in item  # 0..n-1: implied
        assert "c" not in item
        assert item["smp"] == 5
        assert item["cp"] == list(view.change_points)
        assert len(item["seg"]) == 3 * len(view.segments)
    findings = data["findings"]
    assert isinstance(findings, list)
    assert [f["id"] for f in findings] == [f.id for e in sample.entries for f in e.findings]
    step = findings[0]
    assert (step["entry"], step["kind"], step["estatus"], step["gx"], step["bx"]) == (
        "r-new",
        "regression",
        "new",
        5,
        6,
    )
    assert series[step["s"]]["f"] == [0]
    assert findings[-1]["kind"] == "environment"


def test_data_block_positions_and_missing_values(sample: Report) -> None:
    """Points off 0..n-1 get explicit commit positions; nan and inf become null (strict JSON)."""
    s = sample.series[0]
    points = list(s.points[::2])
    points[1] = dataclasses.replace(points[1], value=math.nan, low=math.nan, high=math.inf)
    report = dataclasses.replace(sample, series=(dataclasses.replace(s, points=tuple(points)), *sample.series[1:]))
    data = data_of(parse(render_html(report)).root)
    first = data["series"][0]
    assert first["x"] == list(range(0, 12, 2))
    assert first["c"] == list(range(0, 12, 2))
    assert first["y"][1] is None
    assert first["hi"][1] is None
    finding = data["findings"][0]
    assert finding["bx"] == 6  # by commit position: the bad commit is still on the chart


def test_nonfinite_finding_values_render(sample: Report) -> None:
    entry = sample.entries[0]
    odd = dataclasses.replace(entry.findings[0], before=0.0, rel_change=math.inf, confidence=math.nan, p_value=math.nan)
    report = dataclasses.replace(sample, entries=(dataclasses.replace(entry, findings=(odd,)), *sample.entries[1:]))
    doc = parse(render_html(report)).root
    (row,) = doc.all("tr", data_f="0")
    cells = [td.text() for td in row.all("td")]
    assert cells[3:5] == ["+inf", "n/a"]
    data_of(doc)


def test_empty_report() -> None:
    report = Report("p", None, "2026-01-01T00:00:00+00:00", "sqlite:///x.db", (), (), ())
    page = render_html(report)
    doc = parse(page).root
    assert "No regressions, improvements or environment changes." in page
    assert "all branches" in doc.all("header")[0].text()
    assert data_of(doc)["series"] == []


def test_medium_report_structure() -> None:
    report = big_report(40, 60)
    doc = parse(render_html(report)).root
    assert len(doc.all("figure")) == 4
    assert len(doc.all("li", data_entry="r-big")[0].has("data-f")) == 4
    data = data_of(doc)
    assert len(data["series"]) == 40
    assert all(len(s["y"]) == 60 for s in data["series"])


# ----------------------------------------------------------------------------- safety

_ALLOWED_TAGS = {
    "html", "head", "meta", "title", "style", "body", "header", "h1", "h2", "span", "b", "dl", "dt", "dd", "code", "ul",
    "ol", "li", "a", "div", "label", "input", "datalist", "option", "select", "button", "main", "section", "p",
    "table", "thead", "tbody", "tr", "th", "td", "figure", "figcaption", "noscript", "footer", "script",
}  # fmt: skip


def test_hostile_text_is_escaped(hostile_page: str) -> None:
    builder = parse(hostile_page)
    assert {tag for tag, _ in builder.tags} <= _ALLOWED_TAGS
    for tag, attrs in builder.tags:
        assert not [name for name, _ in attrs if name.startswith("on")], (tag, attrs)
    scripts = [dict(attrs) for tag, attrs in builder.tags if tag == "script"]
    assert scripts == [{"type": "application/json", "id": "mltest-data"}, {}]
    for raw in ("<img src=x", "<script>alert", "<b>x1</b>", "<i>model</i>", "</td><script>", "\x1b"):
        assert raw not in hostile_page
    rest = hostile_page.replace("&lt;img src=x onerror=", "").replace("\\u003cimg src=x onerror=", "")
    assert "onerror=" not in rest
    assert hostile_page.lower().count("</script") == 2  # the two closing tags of the page's own scripts
    # shown, escaped
    assert "&lt;img src=x onerror=alert(1)&gt;" in hostile_page
    assert "step_time&lt;/td&gt;&lt;script&gt;alert(2)&lt;/script&gt;" in hostile_page
    assert "acme &lt;i&gt;model&lt;/i&gt;" in hostile_page
    doc = builder.root
    assert clean_text(HOSTILE_TEST) in doc.all("tr", data_f="0")[0].text()


def test_hostile_json_block(hostile_page: str) -> None:
    start = hostile_page.index('id="mltest-data">') + len('id="mltest-data">')
    block = hostile_page[start : hostile_page.index("</script>", start)]
    for raw in ("<", ">", "&", "\u2028", "\u2029"):
        assert raw not in block
    data = json.loads(block)
    subject = clean_text(HOSTILE_SUBJECT)
    assert subject == '<img src=x onerror=alert(1)> =HYPERLINK("http://evil") | ] ) [x](javascript:alert(1)) red'
    assert data["commits"]["subject"][0] == subject
    assert data["series"][0]["metric"] == HOSTILE_METRIC
    assert data["series"][0]["test"] == HOSTILE_TEST


def test_script_breakout_in_every_field() -> None:
    evil = "</script><script>alert(1)</script><!--\u2028\u2029&amp;"
    report = sample_report()
    commits = tuple(dataclasses.replace(c, subject=evil, date=evil) for c in report.commits)
    series = tuple(dataclasses.replace(s, test=evil, env_key=evil, unit=evil) for s in report.series)
    report = dataclasses.replace(report, commits=commits, series=series, project=evil, store=evil, notes=(evil,))
    page = render_html(report)
    assert page.lower().count("</script") == 2
    assert "<!--" not in page
    assert data_of(parse(page).root)["commits"]["subject"][0] == clean_text(evil)


def test_offline_only(page: str, hostile_page: str) -> None:
    for text in (page, hostile_page):
        builder = parse(text)
        for tag, attrs in builder.tags:
            assert tag not in ("link", "img", "iframe", "object", "embed", "base")
            for name, value in attrs:
                assert name not in ("src", "srcset", "action", "formaction", "background"), (tag, name, value)
                if name == "href":
                    assert value is not None
                    assert value.startswith(("#", "https://github.com/acme/model")), value
        assert "@import" not in text
        assert "url(" not in _CSS
        assert "fetch(" not in _JS
        assert "XMLHttpRequest" not in _JS


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def test_content_security_policy_allows_only_the_page_itself(page: str, doc: Node) -> None:
    (meta,) = doc.all("meta", **{"http_equiv": "Content-Security-Policy"})
    policy = meta.attrs["content"] or ""
    assert "default-src 'none'" in policy
    (script,) = [s for s in doc.all("script") if "type" not in s.attrs]
    (style,) = doc.all("style")
    assert f"script-src {_csp_hash(script.text())};" in policy
    assert f"style-src {_csp_hash(style.text())};" in policy
    assert "unsafe-inline" not in policy
    assert "style=" not in page  # inline style attributes would be blocked by the policy


def test_script_inserts_text_only() -> None:
    for api in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "Function(", "srcdoc"):
        assert api not in _JS
    assert "</script" not in _JS.lower()
    assert "<!--" not in _JS
    assert "</style" not in _CSS.lower()


@pytest.mark.parametrize("url", ["javascript:alert(1)", " JavaScript:alert(1)", "java\tscript:alert(1)", "data:x"])
def test_unsafe_repo_url_is_not_a_link(url: str) -> None:
    page = render_html(sample_report(repo_url=url))
    builder = parse(page)
    hrefs = [v or "" for tag, attrs in builder.tags for k, v in attrs if k == "href"]
    assert hrefs
    assert all(h.startswith("#") for h in hrefs), hrefs
    assert set(data_of(builder.root)["commits"]["url"]) == {""}
    assert clean_text(url).strip() in builder.root.all("header")[0].text()  # shown as text, not linked


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://github.com/a/b/commit/1", "https://github.com/a/b/commit/1"),
        ("http://git.example/x", "http://git.example/x"),
        ("HTTPS://Git.Example/x", "HTTPS://Git.Example/x"),
        ("javascript:alert(1)", None),
        ("vbscript:x", None),
        ("//evil.example/x", None),
        ("https:evil", None),
        ("", None),
        (None, None),
    ],
)
def test_safe_url(url: str | None, expected: str | None) -> None:
    assert safe_url(url) == expected


def test_clean_text() -> None:
    assert clean_text("\x1b[31mred\x1b[0m plain") == "red plain"
    assert clean_text("a\x1b]8;;http://x\x07link\x1b]8;;\x07b") == "alinkb"
    assert clean_text("line\nbreak\ttab\r") == "line break tab "
    assert clean_text("bidi \u202eevil\u202c \u2066x\u2069") == "bidi evil x"
    assert clean_text("nul\x00 del\x7f c1\x9b") == "nul del c1"
    assert clean_text("lone \udcff") == "lone \ufffd"
    assert clean_text("x" * 10, 5) == "xxxx…"
    assert clean_text(None) == ""


@pytest.mark.parametrize(
    ("value", "unit", "expected"),
    [
        (0.13, "s", "130 ms"),
        (4.724e-4, "s", "472.4 µs"),
        (2.5, "s", "2.5 s"),
        (3e-9, "s", "3 ns"),
        (2e9, "bytes", "1.863 GiB"),
        (3 * 2**20, "bytes", "3 MiB"),
        (512, "bytes", "512 bytes"),
        (0, "s", "0 s"),
        (0.91, None, "0.91"),
        (1000.0, "samples/s", "1000 samples/s"),
        (math.nan, "s", "n/a"),
        (-math.inf, "s", "-inf s"),
    ],
)
def test_fmt_value(value: float, unit: str | None, expected: str) -> None:
    assert fmt_value(value, unit) == expected


# ----------------------------------------------------------------------------- scale


@pytest.mark.integration
def test_big_report_size_and_time() -> None:
    """1,000 series x 1,000 commits: well under 40 MB and 20 s (about 17 MiB and 1.5 s when written)."""
    report = big_report(1000, 1000)
    start = time.perf_counter()
    page = render_html(report)
    elapsed = time.perf_counter() - start
    size = len(page.encode())
    print(f"big_report(1000, 1000): {size / 2**20:.1f} MiB in {elapsed:.2f} s")
    assert size < 40e6
    assert elapsed < 20
    start = page.index('id="mltest-data">') + len('id="mltest-data">')
    data = json.loads(page[start : page.index("</script>", start)])
    assert len(data["series"]) == 1000
    assert all(len(s["y"]) == 1000 for s in data["series"])
    assert len(re.findall(r'<figure class="chart"', page)) == 100
    assert "<svg" not in page  # charts are drawn lazily by the script
