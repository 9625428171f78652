"""The HTML report in a real browser: headless Chromium draws the charts, with no console message, no
request beyond the page itself, and hostile text that stays text.

Each page is opened in its own Chromium with the network off (see ``browser.py``). Every check is a
function that lists problems, and the negative controls at the end show that each one does find a
broken page: a JavaScript error, a CSP violation, an external request, an injected element that runs,
a tampered script that leaves the charts blank, and a blank screenshot.

Chromium is a required service: missing, these tests skip, or fail under MLTEST_REQUIRE_SERVICES=1.
A screenshot of the sample report is kept in $MLTEST_ARTIFACTS_DIR when it is set.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
import struct
import time
import zlib
from pathlib import Path

import pytest
from browser import MISSING_MESSAGE, Chromium, Node, Page, find_chromium, parse_html, png_stats
from pgserver import service_missing  # tests/pgserver.py: tests/ is on sys.path (tests/conftest.py's directory)
from sample import big_report, sample_report

from mltest.report.fmt import clean_text
from mltest.report.html import render_html
from mltest.report.model import Report

pytestmark = pytest.mark.integration  # each test starts a browser

# Read at import: tests/conftest.py removes every MLTEST_* variable (but MLTEST_REQUIRE_SERVICES) for each test.
ARTIFACTS_DIR = os.environ.get("MLTEST_ARTIFACTS_DIR")

DRAW_TIMEOUT = 10.0
"""Seconds the charts in view may take to be drawn after the load event."""

# What the page itself draws (markup, script-made rows and tooltip, SVG charts): anything else is injected.
ALLOWED_TAGS = {
    "html", "head", "meta", "title", "style", "body", "header", "h1", "h2", "span", "b", "dl", "dt", "dd", "code",
    "ul", "ol", "li", "a", "div", "label", "input", "datalist", "option", "select", "button", "main", "section", "p",
    "table", "thead", "tbody", "tr", "th", "td", "figure", "figcaption", "noscript", "footer", "script", "details",
    "summary", "svg", "g", "line", "text", "rect", "path", "circle",
}  # fmt: skip

# Each payload, if it ever ran, would say so in the page title.
PAYLOADS = (
    "<img src=x onerror=\"document.title='PWNED img'\">",
    "</script><script>document.title='PWNED script'</script>",
    "<svg onload=\"document.title='PWNED svg'\"></svg>",
    "<details open ontoggle=\"document.title='PWNED details'\">x</details>",
    '"><iframe srcdoc="<script>parent.document.title=\'PWNED iframe\'</script>"></iframe>',
    "<style>@import 'http://evil.example/x.css';</style><base href=\"http://evil.example/\">",
    '<meta http-equiv="refresh" content="0; url=http://evil.example/">',
)

CHARTS_IN_VIEW_DRAWN = """(() => {
  const plots = Array.from(document.querySelectorAll("figure.chart .plot[data-s]"));
  const near = plots.filter(p => { const r = p.getBoundingClientRect();
    return r.height > 0 && r.bottom > -400 && r.top < innerHeight + 400; });
  return near.length > 0 && near.every(p => p.hasAttribute("data-drawn"));
})()"""
FIRST_CHART_BOX = """(() => {
  const r = document.querySelector("figure.chart svg").getBoundingClientRect();
  return [r.left, r.top, r.width, r.height];
})()"""
TOOLTIP = """(() => {
  const tip = document.getElementById("tip");
  return {hidden: tip.hidden, text: tip.textContent, markup: tip.innerHTML};
})()"""


# ----------------------------------------------------------------------------- the checks


def chart_problems(doc: Node, report: Report, *, all_drawn: bool = True) -> list[str]:
    """What is wrong with the affected-series charts in the DOM after the script ran: one per series
    with findings, each drawn as an SVG with a line through every point (one dot each up to 150 points),
    the spread band, axis labels, change points and the shaded findings; no NaN coordinate.
    With ``all_drawn=False`` charts not drawn yet are fine, as long as they come after the drawn ones."""
    figures = doc.by_class("chart", "figure")
    affected = sum(1 for s in report.series if s.findings)
    problems = [] if len(figures) == affected else [f"{len(figures)} charts for {affected} affected series"]
    drawn = [f.by_class("plot", "div")[0].attrs.get("data-drawn") == "1" for f in figures]
    if not any(drawn):
        return [*problems, "no chart is drawn"]
    if all_drawn and not all(drawn):
        problems.append(f"{drawn.count(False)} of {len(figures)} charts not drawn")
    if drawn != sorted(drawn, reverse=True):
        problems.append(f"charts drawn out of order: {drawn}")
    for figure, is_drawn in zip(figures, drawn, strict=True):
        if not is_drawn:
            continue
        plot = figure.by_class("plot", "div")[0]
        series = report.series[int(plot.attrs["data-s"] or -1)]
        name = f"chart {series.metric!r}"
        n = sum(1 for p in series.points if math.isfinite(p.value))
        if len(plot.all("svg")) != 1:
            problems.append(f"{name}: {len(plot.all('svg'))} <svg> elements")
            continue
        values = " ".join(v or "" for node in plot.all() for v in node.attrs.values())
        if "NaN" in values or "Infinity" in values:
            problems.append(f"{name}: NaN or Infinity in its coordinates")
        lines = plot.by_class("line", "path")
        steps = sum(d.count("M") + d.count("L") for d in (p.attrs.get("d") or "" for p in lines))
        if len(lines) != 1 or steps != n:
            problems.append(f"{name}: line through {steps} of {n} points")
        dots = len(plot.by_class("dot", "circle"))
        if dots != (n if len(series.points) <= 150 else 0):
            problems.append(f"{name}: {dots} dots for {n} points")
        spread = any(p.low != p.high for p in series.points)
        if spread and not any((p.attrs.get("d") or "").count("L") >= 2 for p in plot.by_class("band", "path")):
            problems.append(f"{name}: no spread band")
        for cls, least in (("ylab", 2), ("xlab", 2), ("cp", len(series.change_points)), ("span", 1)):
            found = len(plot.by_class(cls))
            if found < least:
                problems.append(f"{name}: {found} .{cls} elements, expected at least {least}")
    return problems


def console_problems(browser: Chromium, page: Page) -> list[str]:
    """Anything the page said: the report never logs, so every console message, uncaught exception,
    CSP violation or dialog is a problem (reported over the DevTools protocol and, independently, as
    CONSOLE lines on Chromium's stderr, read once the browser has ended)."""
    return [*page.console, *(f"dialog {d}" for d in page.dialogs), *browser.stderr_console]


def network_problems(page: Page) -> list[str]:
    """Every request but the page's own (attempted ones too: one that CSP blocks is still listed)."""
    return [url for url in page.requests if url != page.url]


def injection_problems(doc: Node, *, scripts: int = 2) -> list[str]:
    """Markup in the DOM that the report does not make: tags it never uses, event-handler attributes,
    script elements beyond its own two, links that are neither fragments nor http(s)."""
    problems = []
    for node in doc.all():
        if node.tag not in ALLOWED_TAGS:
            problems.append(f"<{node.tag}> element {node.attrs}")
        handlers = [name for name in node.attrs if name.startswith("on")]
        if handlers:
            problems.append(f"<{node.tag}> with {handlers}")
        href = node.attrs.get("href")
        if node.tag == "a" and href is not None and not href.startswith(("#", "https://", "http://")):
            problems.append(f"<a href={href!r}>")
    found = doc.all("script")
    if len(found) != scripts:
        problems.append(f"{len(found)} <script> elements, expected {scripts}")
    return problems


def png_problems(data: bytes) -> list[str]:
    """A screenshot that shows something: a PNG of the viewport, over 100 KB, where over 500 rows vary
    (a blank page: about 40 KB and under 20 rows; the sample report: about 480 KB and 2,000 rows)."""
    try:
        stats = png_stats(data)
    except (ValueError, struct.error, zlib.error) as exc:
        return [f"not a readable PNG: {exc}"]
    problems = []
    if len(data) < 100_000:
        problems.append(f"only {len(data)} bytes")
    if stats.varied_rows < 500:
        problems.append(f"only {stats.varied_rows} of {stats.height} rows vary")
    return problems


def title_of(markup: str) -> str:
    (title,) = parse_html(markup).all("title")
    return " ".join(title.text().split())


# ----------------------------------------------------------------------------- fixtures and helpers


@pytest.fixture(scope="module")
def chromium() -> str:
    binary = find_chromium()
    if binary is None:
        service_missing(MISSING_MESSAGE)
    return binary


def write_page(directory: Path, name: str, markup: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(markup, encoding="utf-8")
    return path


@dataclasses.dataclass
class Visit:
    """One page in one browser, after the browser has ended (so its stderr is complete)."""

    browser: Chromium
    page: Page
    doc: Node
    title: str
    drawn: bool
    """The charts in view were drawn in time."""
    screenshot: bytes = b""
    tip: dict[str, object] = dataclasses.field(default_factory=dict)


def visit(
    chromium: str,
    workdir: Path,
    markup: str,
    *,
    screenshot: bool = False,
    hover: bool = False,
    draw_timeout: float = DRAW_TIMEOUT,
) -> Visit:
    """Opens ``markup`` as a file, waits for the charts in view (at most ``draw_timeout``), then records
    the DOM, the title, a screenshot, and the tooltip after hovering the first chart."""
    path = write_page(workdir, "page.html", markup)
    shot, tip = b"", {}
    with Chromium(chromium, workdir) as browser:
        page = browser.open(path)
        drawn = browser.wait_until(page, CHARTS_IN_VIEW_DRAWN, draw_timeout)
        browser.settle(page)
        if hover:
            left, top, width, height = browser.evaluate(page, FIRST_CHART_BOX)
            browser.mouse_move(page, left + width * 0.7, top + height * 0.5)
            browser.settle(page)
            tip = browser.evaluate(page, TOOLTIP)
        if screenshot:
            shot = browser.screenshot(page)
        dom = browser.dom(page)
        title = str(browser.evaluate(page, "document.title"))
    return Visit(browser, page, parse_html(dom), " ".join(title.split()), drawn, shot, tip)


@pytest.fixture(scope="module")
def sample() -> Report:
    return sample_report()


@pytest.fixture(scope="module")
def sample_visit(chromium: str, sample: Report, tmp_path_factory: pytest.TempPathFactory) -> Visit:
    return visit(chromium, tmp_path_factory.mktemp("sample"), render_html(sample), screenshot=True)


def pwned_report() -> Report:
    """The hostile sample with payloads that would change the page title in every commit subject, the
    project name, the notes and an acknowledgement (test ids and metric names keep their alert())."""
    report = sample_report(hostile=True)
    commits = tuple(dataclasses.replace(c, subject=PAYLOADS[i % len(PAYLOADS)]) for i, c in enumerate(report.commits))
    entries = tuple(dataclasses.replace(e, acknowledged=PAYLOADS[3]) if e.acknowledged else e for e in report.entries)
    return dataclasses.replace(report, commits=commits, entries=entries, project=PAYLOADS[0], notes=PAYLOADS[1:])


# ----------------------------------------------------------------------------- the sample report


def test_sample_charts_are_drawn(sample: Report, sample_visit: Visit) -> None:
    assert sample_visit.drawn, f"charts not drawn within {DRAW_TIMEOUT} s"
    doc = sample_visit.doc
    assert chart_problems(doc, sample) == []
    assert "js" in doc.all("html")[0].classes
    # the script built the rest of the page too: the series browser and the filter count
    assert len(doc.by_id("b-list").all("li")) == len(sample.series)
    assert doc.by_id("f-count").text() == "6 of 6 findings, 6 of 6 charts, 7 of 7 series shown"


def test_sample_says_nothing_on_the_console(sample_visit: Visit) -> None:
    assert console_problems(sample_visit.browser, sample_visit.page) == []


def test_sample_renders_offline(sample_visit: Visit) -> None:
    """The browser has no network (no DNS, a dead proxy) and the page asks for nothing but itself."""
    assert sample_visit.page.requests == [sample_visit.page.url]
    assert network_problems(sample_visit.page) == []
    assert sample_visit.page.failed == []


def test_sample_screenshot_is_kept(sample_visit: Visit, tmp_path: Path) -> None:
    directory = Path(ARTIFACTS_DIR) if ARTIFACTS_DIR else tmp_path
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "html-report-sample.png"
    path.write_bytes(sample_visit.screenshot)
    print(f"screenshot of the sample report: {path}")
    assert png_problems(path.read_bytes()) == []
    assert png_stats(sample_visit.screenshot).width == 1400


# ----------------------------------------------------------------------------- hostile text


def test_hostile_text_stays_text(chromium: str, tmp_path: Path) -> None:
    report = pwned_report()
    markup = render_html(report)
    seen = visit(chromium, tmp_path, markup, hover=True)
    doc = seen.doc
    # nothing ran: no title change, no alert, no console message or CSP violation, no request
    assert seen.title == title_of(markup)
    assert console_problems(seen.browser, seen.page) == []
    assert network_problems(seen.page) == []
    # nothing was inserted as markup, before or after the script ran ...
    assert injection_problems(doc) == []
    # ... though the payloads are on the page, as text (some cut short), and the charts are drawn regardless
    subjects = [node.text() for node in doc.by_class("subject", "span")]
    for payload in PAYLOADS:
        assert any(subject.startswith(clean_text(payload)[:50]) for subject in subjects), payload
    assert clean_text(PAYLOADS[0]) in subjects
    assert seen.drawn
    assert chart_problems(doc, report) == []
    # the tooltip (the one place the script shows a commit subject) holds it as text as well
    assert seen.tip["hidden"] is False
    assert any(clean_text(p) in str(seen.tip["text"]) for p in PAYLOADS), seen.tip
    tip = parse_html(str(seen.tip["markup"]))
    assert {node.tag for node in tip.all()} <= {"div", "code", "span"}, seen.tip["markup"]
    assert injection_problems(tip, scripts=0) == []


# ----------------------------------------------------------------------------- a bigger report


def test_big_report_loads_and_draws_as_it_scrolls(chromium: str, tmp_path: Path) -> None:
    report = big_report(200, 300)
    markup = render_html(report)
    page_path = write_page(tmp_path, "big.html", markup)
    started = time.monotonic()
    with Chromium(chromium, tmp_path) as browser:
        page = browser.open(page_path)
        drawn_at_load = browser.wait_until(page, CHARTS_IN_VIEW_DRAWN, DRAW_TIMEOUT)
        seconds = time.monotonic() - started
        first = parse_html(browser.dom(page))
        # the charts below the viewport are drawn when they scroll into view
        browser.evaluate(page, "document.querySelector('figure.chart:last-of-type').scrollIntoView()")
        drawn_after_scroll = browser.wait_until(page, CHARTS_IN_VIEW_DRAWN, DRAW_TIMEOUT)
        browser.settle(page)
        last = parse_html(browser.dom(page))
    print(f"big_report(200, 300): {len(markup) / 2**20:.1f} MiB, loaded in {page.load_s:.2f} s, "
          f"charts in view drawn {seconds:.2f} s after start")  # fmt: skip
    assert drawn_at_load
    assert chart_problems(first, report, all_drawn=False) == []
    assert drawn_after_scroll
    assert chart_problems(last, report) == []
    assert console_problems(browser, page) == []
    assert network_problems(page) == []
    assert len(last.by_id("b-list").all("li")) == 50  # the first page of "All series"
    assert last.by_id("b-info").text() == "1\u201350 of 200 series (page 1 of 4)"


# ----------------------------------------------------------------------------- negative controls

CONTROL_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>control</title></head>
<body><p>A page that does everything the report must not.</p>
<img src="x" onerror="document.title='PWNED'">
<img src="http://example.com/pixel.png" alt="">
<script>console.log("from the page"); null.x;</script>
<script>alert("a dialog");</script>
<script>document.body.appendChild(document.createElement("iframe"));</script>
</body></html>
"""


def test_checks_catch_a_misbehaving_page(chromium: str, sample: Report, tmp_path: Path) -> None:
    """No CSP: an inline handler runs, an error is thrown, a dialog opens, an external image is asked for."""
    seen = visit(chromium, tmp_path, CONTROL_PAGE, screenshot=True, draw_timeout=1.0)
    assert seen.title == "PWNED"
    console = console_problems(seen.browser, seen.page)
    assert "console.log: from the page" in console
    assert any(line.startswith("uncaught: TypeError") for line in console), console
    assert "dialog alert: a dialog" in console
    assert any(":CONSOLE" in line and "Uncaught TypeError" in line for line in seen.browser.stderr_console)
    assert "http://example.com/pixel.png" in network_problems(seen.page)
    assert any(url.endswith("/x") for url in network_problems(seen.page))
    injected = injection_problems(seen.doc)
    assert any(p.startswith("<img> element") for p in injected), injected
    assert any("['onerror']" in p for p in injected), injected
    assert any(p.startswith("<iframe> element") for p in injected), injected  # made by a script
    assert "3 <script> elements, expected 2" in injected
    assert chart_problems(seen.doc, sample) == ["0 charts for 6 affected series", "no chart is drawn"]
    assert not seen.drawn
    assert png_problems(seen.screenshot)  # a nearly blank page


def test_checks_catch_a_tampered_report(chromium: str, sample: Report, tmp_path: Path) -> None:
    """The real report, its script changed by one character and an element injected: the CSP blocks
    both, so nothing runs, and the violations, the blank charts and the element are all found."""
    markup = render_html(sample)
    tampered = markup.replace('"use strict";', '"use strict"; ', 1)
    assert tampered != markup
    tampered = tampered.replace("<body>\n", "<body>\n<img src=x onerror=\"document.title='PWNED'\">", 1)
    seen = visit(chromium, tmp_path, tampered, draw_timeout=1.0)
    assert seen.title == title_of(markup)  # the CSP kept the handler from running
    console = console_problems(seen.browser, seen.page)
    violations = [line for line in console if "Content Security Policy" in line]
    assert any("Executing inline script" in line for line in violations), console
    assert any("Loading the image" in line for line in violations), console
    assert any(":CONSOLE" in line and "Content Security Policy" in line for line in seen.browser.stderr_console)
    assert any(url.endswith("/x") for url in network_problems(seen.page))  # attempted, then blocked
    assert not seen.drawn
    assert chart_problems(seen.doc, sample) == ["no chart is drawn"]
    assert any("['onerror']" in p for p in injection_problems(seen.doc))


def test_chart_check_finds_blank_and_broken_charts(sample: Report, sample_visit: Visit) -> None:
    """The sample's drawn charts, spoiled three ways: emptied, dots gone, a NaN coordinate."""
    doc = copy.deepcopy(sample_visit.doc)
    plots = [figure.by_class("plot", "div")[0] for figure in doc.by_class("chart", "figure")]
    plots[0].all("svg")[0].children = []
    for node in plots[1].all("g")[0].children:
        if isinstance(node, Node) and "dot" in node.classes:
            node.attrs["class"] = "gone"
    plots[2].by_class("line", "path")[0].attrs["d"] = "M0,NaN"
    metric = [sample.series[int(plot.attrs["data-s"] or -1)].metric for plot in plots]
    problems = chart_problems(doc, sample)
    assert f"chart {metric[0]!r}: line through 0 of 12 points" in problems
    assert f"chart {metric[0]!r}: 0 dots for 12 points" in problems
    assert f"chart {metric[0]!r}: 0 .ylab elements, expected at least 2" in problems
    assert f"chart {metric[1]!r}: 0 dots for 12 points" in problems
    assert f"chart {metric[2]!r}: NaN or Infinity in its coordinates" in problems
    assert f"chart {metric[2]!r}: line through 1 of 12 points" in problems
    assert {p.split(":")[0] for p in problems} == {f"chart {m!r}" for m in metric[:3]}  # the others are fine


def _png(rows: list[bytes], width: int) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, len(rows), 8, 2, 0, 0, 0)
    body = zlib.compress(b"".join(rows))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def test_png_check_finds_one_colour() -> None:
    """An image of one colour, its rows filtered every way a PNG can (None, Sub, Up, Average, Paeth),
    has no varied row; one changed pixel makes one."""
    width, colour = 600, bytes([250, 251, 252])
    first = bytes([0]) + colour * width
    rows = [first]
    for i in range(1, 1000):
        kind = i % 5
        if kind == 0:
            rows.append(bytes([0]) + colour * width)
        else:  # after the first pixel the prediction is exact; the first pixel's residue varies by filter
            lead = {1: colour, 2: bytes(3), 3: bytes(c - c // 2 for c in colour), 4: bytes(3)}[kind]
            rows.append(bytes([kind]) + lead + bytes(3 * (width - 1)))
    blank = _png(rows, width)
    assert png_stats(blank).varied_rows == 0
    assert png_problems(blank)[-1] == "only 0 of 1000 rows vary"
    rows[500] = bytes([2]) + bytes(30) + b"\x05" + bytes(3 * width - 31)
    assert png_stats(_png(rows, width)).varied_rows == 1
    assert png_problems(b"GIF89a") == ["not a readable PNG: not a PNG"]


def test_missing_chromium_is_found_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert find_chromium() is None
    assert "apt-get install chromium" in MISSING_MESSAGE
