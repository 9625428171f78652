"""Regression reports: one model (:mod:`mltest.report.model`), rendered as text, Markdown, HTML or JSON.

Renderers are pure functions of a :class:`~mltest.report.model.Report`, one module each (imported on
use, so that commands that print no report do not pay for them): ``text.render_text``,
``markdown.render_markdown``, ``html.render_html``, ``jsonout.render_json``; ``notify.notify`` posts
one. The CLI builds the report from the store and the detection results (``mltest report``).
"""

from mltest.report.model import (
    REPORT_SCHEMA_VERSION,
    CommitView,
    EntryView,
    FindingView,
    PointView,
    Report,
    SegmentView,
    SeriesView,
)

__all__ = [
    "REPORT_SCHEMA_VERSION",
    "CommitView",
    "EntryView",
    "FindingView",
    "PointView",
    "Report",
    "SegmentView",
    "SeriesView",
]
