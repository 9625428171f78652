"""Hostile text end to end: recorded into a real store, rendered through every output.

One store (tests/reliability/hostile.py) holds commit subjects from a real git history, test ids,
metric names, a unit, an environment key and an acknowledgement full of spreadsheet formulas
(``=HYPERLINK``, ``=IMPORTXML``), HTML (``<script>``, ``<img onerror>``), Markdown and Slack structure
(``|``, newlines, backticks, ``[x](javascript:...)``, ``<!channel>``) and terminal escape sequences
(``ESC[2J``, OSC 8 hyperlinks, ``\\r``, bidi overrides, 8-bit CSI). Each test renders it through one
output, with the real ``mltest`` commands, and checks what that output must guarantee:

* the Google Sheet (local Sheets API): every cell is the stored text, written RAW, never a formula;
* the HTML report: no markup, script, event handler or link comes from the data (parsed);
* Markdown (report, compare, the CI job summary): every table row keeps the header's cells, no raw
  HTML and no link but ours (checked on the source and through GitHub's cmark-gfm);
* terminal text (report, check, compare, runs, history, ci nightly): no escape sequence or control
  character reaches stdout or stderr;
* webhooks: Slack text holds no Slack control sequence or control character; the JSON payload carries
  the exact text, JSON-escaped, over pure ASCII.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from hostile import (
    CONTROL,
    CULPRIT,
    GPU,
    HOSTILE,
    METRIC_A,
    METRIC_B,
    SPREADSHEET,
    TEST_A,
    TEST_B,
    Formula,
    HostileProject,
    Ran,
    SheetsServer,
    build_hostile_project,
    make_service_account,
    run_cli,
    running_server,
    running_webhook,
)

from mltest.report.fmt import clean_text


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> HostileProject:
    return build_hostile_project(tmp_path_factory.mktemp("hostile"))


@pytest.fixture(scope="module")
def nightly(hostile: HostileProject) -> tuple[Ran, Path]:
    """``mltest ci nightly --report-only`` once: its log, and the artefact folder it wrote."""
    artifacts = hostile.root.parent / "artifacts"
    ran = run_cli(
        hostile, "ci", "nightly", "--report-only", "--any-branch", "--device", "cpu", "--artifacts", str(artifacts)
    )
    assert ran.code == 1, ran  # one new regression, --policy fail
    return ran, artifacts


# ============================================================================ the Google Sheet
@pytest.fixture(scope="module")
def sheet(hostile: HostileProject) -> Iterator[tuple[SheetsServer, list[dict[str, Any]], Ran]]:
    """``mltest sync`` into the local Sheets API, then ``mltest sync --check``."""
    with running_server() as server:
        server.add_spreadsheet(SPREADSHEET, "Sheet1")
        info, public = make_service_account(server.base_url + "/token")
        server.public_keys.append(public)
        env = {
            "MLTEST_SHEETS_CREDENTIALS_JSON": json.dumps(info),
            "MLTEST_SHEETS_ENDPOINT": server.base_url,
            "MLTEST_SHEETS_URL": f"gsheets://{SPREADSHEET}/results",
        }
        synced = run_cli(hostile, "sync", env=env)
        assert synced.code == 0, synced
        checked = run_cli(hostile, "sync", "--check", env=env)
        worksheet = server.worksheet(SPREADSHEET, "results")
        records = [dict(zip(worksheet.rows[0], row, strict=False)) for row in worksheet.data_rows()]
        yield server, records, checked


@pytest.mark.integration  # a local Sheets API server
@pytest.mark.parametrize("column", ["subject", "test", "metric", "gpu", "every cell"])
def test_the_sheet_holds_hostile_text_as_raw_text(
    hostile: HostileProject, sheet: tuple[SheetsServer, list[dict[str, Any]], Ran], column: str
) -> None:
    server, records, checked = sheet
    assert len(records) == 31  # 16 runs x 2 metrics, less the commit series B skipped
    if column == "every cell":
        cells = [v for r in records for v in r.values()]
        assert not [c for c in cells if isinstance(c, Formula)]
        appends = [query for op, _, query in server.calls if op in ("append", "values_update")]
        assert appends
        assert {q.get("valueInputOption") for q in appends} == {"RAW"}
        # What went in comes back: the check compares every stored text column with the store.
        assert checked.code == 0, checked
        assert "agrees with the store: 16 run(s) checked" in checked.out
        return
    expected = {
        "subject": set(hostile.subjects.values()),
        "test": {TEST_A, TEST_B},
        "metric": {METRIC_A, METRIC_B},
        "gpu": {f"{GPU} x1"},
    }[column]
    values = [r[column] for r in records]
    assert all(isinstance(v, str) for v in values), [v for v in values if not isinstance(v, str)]
    assert set(values) == expected  # stored exactly: a formula stays text, nothing is cut or cleaned
    if column in ("subject", "test", "metric"):
        assert any(v.startswith("=") or "=HYPERLINK(" in v or "=IMPORTXML(" in v for v in values)


# ============================================================================ the HTML report
class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.scripts: list[tuple[dict[str, str | None], str]] = []
        self.text: list[str] = []
        self._in_script: dict[str, str | None] | None = None
        self._script: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._in_script, self._script = dict(attrs), []

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._in_script is not None:
            self.scripts.append((self._in_script, "".join(self._script)))
            self._in_script = None

    def handle_data(self, data: str) -> None:
        if self._in_script is not None:
            self._script.append(data)
        else:
            self.text.append(data)


def check_html(page: str) -> _Page:
    from mltest.report.html import _CSS, _JS

    parsed = _Page()
    parsed.feed(page)
    parsed.close()
    names = {tag for tag, _ in parsed.tags}
    assert not names & {"img", "iframe", "object", "embed", "form", "base", "link", "audio", "video", "frame"}
    handlers = [(tag, a) for tag, attrs in parsed.tags for a in attrs if a.lower().startswith("on")]
    assert not handlers
    for tag, attrs in parsed.tags:
        for name in ("href", "src", "action", "formaction", "xlink:href"):
            value = (attrs.get(name) or "").strip()
            assert not value or value.startswith("#") or re.match(r"https?://", value), (tag, name, value)
    # Exactly the page's own two scripts: the data block (JSON, not executed) and its code.
    assert len(parsed.scripts) == 2
    assert len(re.findall(r"<script\b", page, re.IGNORECASE)) == 2
    (data_attrs, data), (code_attrs, code) = parsed.scripts
    assert data_attrs == {"type": "application/json", "id": "mltest-data"}
    assert code_attrs == {}
    assert code == _JS
    json.loads(data)  # parses: nothing in it closed the element early
    assert "<" not in data
    styles = [attrs for tag, attrs in parsed.tags if tag == "style"]
    assert len(styles) == 1
    assert _CSS in page
    return parsed


@pytest.mark.parametrize("source", ["report", "ci nightly artefact"])
def test_the_html_report_shows_hostile_text_as_text(
    hostile: HostileProject, source: str, request: pytest.FixtureRequest
) -> None:
    if source == "report":
        out = hostile.root.parent / "report.html"
        ran = run_cli(hostile, "report", "--format", "html", "--out", str(out))
        assert ran.code == 0, ran
    else:
        _, artifacts = request.getfixturevalue("nightly")
        out = artifacts / "report.html"
    page = out.read_text(encoding="utf-8")
    parsed = check_html(page)
    text = "".join(parsed.text)
    # The hostile text is there, as text (cleaned of control characters only).
    assert HOSTILE["script"] in text
    assert HOSTILE["img"] in text
    assert clean_text(HOSTILE["formula"]) in text
    assert clean_text(HOSTILE["terminal"]) in text
    assert not CONTROL.search(text)


# ============================================================================ Markdown
def _cells(row: str) -> list[str]:
    """The cells of a GFM table row: split on ``|`` not escaped by a backslash."""
    cells, cell, escaped = [], [], False
    for c in row.strip():
        if escaped:
            cell.append(c)
            escaped = False
        elif c == "\\":
            cell.append(c)
            escaped = True
        elif c == "|":
            cells.append("".join(cell))
            cell = []
        else:
            cell.append(c)
    cells.append("".join(cell))
    return cells[1:-1]  # a row starts and ends with a pipe


class _Rendered(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


MARKDOWN_TAGS = {
    "a", "blockquote", "code", "details", "em", "h2", "li", "p", "strong", "sub", "summary",
    "table", "tbody", "td", "th", "thead", "tr", "ul",
}  # fmt: skip


def check_markdown(text: str) -> int:
    """Tables keep their shape, no raw HTML or link comes from data; returns the table rows seen."""
    import cmarkgfm

    lines = text.splitlines()
    rows = 0
    width: int | None = None
    for line in lines:
        ends = line.rstrip().endswith("|") and not line.rstrip().endswith("\\|")
        if line.startswith("|") or ends:
            assert line.startswith("|"), f"a broken table row: {line!r}"
            assert ends, f"a broken table row: {line!r}"
            cells = len(_cells(line))
            if width is None:
                width = cells
            assert cells == width, f"{cells} cells, the header has {width}: {line!r}"
            rows += 1
        else:
            width = None
    assert not re.search(r"(?<!\\)\]\(\s*(?i:javascript|data|vbscript):", text)
    assert not CONTROL.search(text)
    rendered = _Rendered()
    rendered.feed(cmarkgfm.github_flavored_markdown_to_html(text, options=cmarkgfm.Options.CMARK_OPT_UNSAFE))
    assert {tag for tag, _ in rendered.tags} <= MARKDOWN_TAGS
    for tag, attrs in rendered.tags:
        assert not [a for a in attrs if a.lower().startswith("on")]
        if tag == "a":
            assert re.match(r"https://github\.com/acme/model/", attrs.get("href") or ""), attrs
    return rows


@pytest.mark.parametrize("source", ["report", "compare", "ci nightly job summary"])
def test_markdown_tables_keep_their_cells_and_links_stay_ours(
    hostile: HostileProject, source: str, request: pytest.FixtureRequest
) -> None:
    if source == "report":
        ran = run_cli(hostile, "report", "--format", "markdown")
        assert ran.code == 0, ran
        text = ran.out
    elif source == "compare":
        ran = run_cli(hostile, "compare", "--format", "markdown")
        assert ran.code in (0, 1), ran
        text = ran.out
    else:
        _, artifacts = request.getfixturevalue("nightly")
        text = (artifacts / "summary-nightly.md").read_text(encoding="utf-8")
    rows = check_markdown(text)
    assert rows >= 3  # header, delimiter and at least one row of hostile cells
    assert "HYPERLINK" in text  # the data is shown, escaped
    assert "IMPORTXML" in text


# ============================================================================ terminal text
TERMINAL = {
    "report": ["report"],
    "check": ["check"],
    "check --all": ["check", "--all"],
    "compare": ["compare"],
    "runs": ["runs"],
    "history": ["history", TEST_A, METRIC_A],
    "ack (no such id)": ["ack", f"r-{HOSTILE['terminal']}", "--reason", HOSTILE["terminal"]],
}


@pytest.mark.parametrize("command", [*TERMINAL, "ci nightly"])
def test_no_control_character_reaches_the_terminal(
    hostile: HostileProject, command: str, request: pytest.FixtureRequest
) -> None:
    if command == "ci nightly":
        ran, _ = request.getfixturevalue("nightly")
    else:
        ran = run_cli(hostile, *TERMINAL[command])
    assert ran.code in (0, 1, 2), ran
    for stream in (ran.out, ran.err):
        found = CONTROL.search(stream)
        assert found is None, f"{found.group()!r} at {found.start()}: {stream[max(found.start() - 80, 0) :][:160]!r}"
    if command not in ("ack (no such id)", "ci nightly"):
        assert ran.out.strip()
        assert "alert(" in ran.out or "HYPERLINK" in ran.out or "IMPORTXML" in ran.out  # the text is shown


# ============================================================================ webhooks
_OUR_LINK = re.compile(r"<(https?://[^\s|<>]+)\|[^<>]*>")


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)


@pytest.mark.integration  # a local webhook receiver
@pytest.mark.parametrize("kind", ["slack", "json"])
def test_webhook_payloads_carry_hostile_text_inert(hostile: HostileProject, kind: str) -> None:
    with running_webhook() as hook:
        ran = run_cli(hostile, "notify", "--kind", kind, env={"MLTEST_WEBHOOK_URL": hook.url})
    assert ran.code == 0, ran
    assert "posted 1 new regression" in ran.out
    (body,) = hook.bodies
    assert all(0x20 <= b < 0x7F or b in b"\n" for b in body)  # ASCII, control characters JSON-escaped
    payload = json.loads(body)
    if kind == "json":
        (regression,) = payload["regressions"]
        assert regression["subject"] == hostile.subjects[hostile.shas[CULPRIT]]  # exact: the receiver escapes
        assert [(f["test"], f["metric"], f["env_key"]) for f in regression["findings"]] == [
            (TEST_A, METRIC_A, f"{GPU} x1")
        ]
        return
    texts = list(_strings(payload))
    shown = " ".join(texts)
    assert "alert(1)" in shown  # the hostile text is there
    assert "HYPERLINK" in shown
    for text in texts:
        assert not CONTROL.search(text), text
        for url in _OUR_LINK.findall(text):
            assert url.startswith("https://github.com/acme/model/commit/"), url
        rest = _OUR_LINK.sub("", text)
        assert "<" not in rest, rest  # no <!channel>, <@U123>, <url|text> from data
        assert ">" not in rest, rest
