"""``python -m benchmarks [--quick] [--only NAME[,NAME]] [--write] [--no-record]``.

Runs each benchmark in one process, one after another (our machines are noisy: the comparisons of a
row are measured in the same run, back to back), prints one Markdown table, and with ``--write``
replaces the summary and each benchmark's detail section in BENCHMARKS.md. Every row is recorded into
mltest's own store (the repository's ``[tool.mltest]`` store) as test ``benchmarks/NAME``: mltest
watches its own speed the way it watches yours.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import sys
import time
import traceback
from collections.abc import Sequence

from benchmarks._common import BENCHMARKS_MD, ROOT, Outcome, Row, machine, met_text, table, write_section

# In the order they run. Each is a module of this package with ``run(quick: bool) -> Outcome``.
BENCHMARKS = (
    "harness",
    "store",
    "timing",
    "detection",
    "incremental",
    "reports",
    "sheets",
    "demo",
    "sharding",
    "docker",
)
START, END = "<!-- summary:start -->", "<!-- summary:end -->"


def summary_table(rows: Sequence[Row]) -> str:
    return table(
        ["benchmark", "case", "mltest", "compared with (same run)", "ratio", "target", "met?"],
        [[r.benchmark, r.case, r.shown, r.comparison, r.ratio, r.target, met_text(r.met)] for r in rows],
    )


def summary_section(rows: Sequence[Row], command: str, seconds: float) -> str:
    missed = [r for r in rows if r.met is False]
    with_target = [r for r in rows if r.met is not None]
    verdict = f"{len(with_target) - len(missed)} of {len(with_target)} targets met" + (
        "; missed: " + "; ".join(f"{r.benchmark}: {r.case}" for r in missed) if missed else ""
    )
    return f"""## Summary

{START}
`{command}` on {dt.date.today().isoformat()}, {seconds / 60:.1f} minutes.
Machine: {machine()}.

{verdict}.

{summary_table(rows)}
{END}
"""


def merged_section(current: str, rows: Sequence[Row], command: str) -> str:
    """The summary of BENCHMARKS.md (``current``) with the rows of the benchmarks in ``rows`` replaced
    (in place, in their order) and the verdict recomputed; other rows are kept as they were."""
    if START not in current or END not in current:
        return summary_section(rows, command, 0.0)
    head, body = current.split(START, 1)[1].split(END, 1)[0].split("\n| benchmark |", 1)
    lines = ("| benchmark |" + body).strip("\n").splitlines()
    header, rule, old = lines[0], lines[1], lines[2:]
    replaced = {r.benchmark for r in rows}
    new = summary_table(rows).splitlines()[2:]
    out: list[str] = []
    for line in old:
        if line.split("|")[1].strip() in replaced:
            out += new
            new = []
        else:
            out.append(line)
    out += new  # benchmarks not in the table before go last
    cells = [[c.strip() for c in line.strip().strip("|").split("|")] for line in out]
    missed = [f"{c[0]}: {c[1]}" for c in cells if c[-1] == "**no**"]
    judged = [c for c in cells if c[-1] in ("yes", "**no**")]
    verdict = f"{len(judged) - len(missed)} of {len(judged)} targets met" + (
        "; missed: " + "; ".join(missed) if missed else ""
    )
    names = ", ".join(sorted(replaced))
    # Keep the full run's stamp and earlier partial updates, each naming only the benchmarks whose
    # rows it still holds (a line none are left of goes).
    kept = []
    for line in head.strip().splitlines():
        if line.startswith("`"):
            kept.append(line)
        elif line.startswith("Rows of ") and " since: " in line:
            listed, since = line[len("Rows of ") :].split(" since: ", 1)
            left = [n for n in listed.split(", ") if n not in replaced]
            if left:
                kept.append(f"Rows of {', '.join(left)} since: {since}")
    stamp = "\n".join(kept)
    return (
        f"""## Summary

{START}
{stamp}
Rows of {names} since: `{command}` on {dt.date.today().isoformat()}.
Machine: {machine()}.

{verdict}.

{header}
{rule}
"""
        + "\n".join(out)
        + f"""
{END}
"""
    )


def failed_outcome(name: str, exc: BaseException) -> Outcome:
    """What a benchmark that raised leaves: one row saying so (a missed target), and no section (its
    detail section in BENCHMARKS.md keeps its last numbers)."""
    why = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    why = (why if len(why) <= 300 else why[:299] + "…").replace("|", "\\|")  # a table cell
    return Outcome([Row(name, "the benchmark failed", 0.0, "bool", f"failed: {why}", target="runs", met=False)])


def record(name: str, rows: Sequence[Row]) -> None:
    import mltest

    with mltest.recording(f"benchmarks/{name}", project_dir=ROOT) as rec:
        for row in rows:
            rec(row.metric_name, row.value, row.unit, row.higher_is_better)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[1])
    parser.add_argument("--quick", action="store_true", help="smaller inputs: a smoke test in minutes")
    parser.add_argument(
        "--only", action="append", default=None, metavar="NAME", help=f"run only these (of {', '.join(BENCHMARKS)})"
    )
    parser.add_argument("--write", action="store_true", help=f"update {BENCHMARKS_MD.name}")
    parser.add_argument("--no-record", action="store_true", help="do not record the rows into mltest's store")
    args = parser.parse_args(argv)
    names = [n for given in args.only or [] for n in given.split(",") if n] or list(BENCHMARKS)
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}: choose from {', '.join(BENCHMARKS)}")
    started = time.perf_counter()
    rows: list[Row] = []
    outcomes: dict[str, Outcome] = {}
    failed: list[str] = []
    for name in names:
        print(f"== {name}", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            outcome = importlib.import_module(f"benchmarks.{name}").run(quick=args.quick)
        except Exception as exc:  # one broken benchmark must not lose the others' numbers
            traceback.print_exc()
            outcome = failed_outcome(name, exc)
            failed.append(name)
        print(f"   {name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        outcomes[name] = outcome
        rows += outcome.rows
        if not args.no_record and name not in failed:
            record(name, outcome.rows)
    command = (
        "python -m benchmarks" + (" --quick" if args.quick else "") + "".join(f" --only {n}" for n in args.only or [])
    )
    section = summary_section(rows, command + (" --write" if args.write else ""), time.perf_counter() - started)
    print(section)
    if args.write:
        if args.only:
            # Only these benchmarks' rows change; the others keep the numbers of their last run.
            current = BENCHMARKS_MD.read_text(encoding="utf-8") if BENCHMARKS_MD.exists() else ""
            section = merged_section(current, rows, command + " --write")
        write_section(section, START, END)
        for outcome in outcomes.values():
            if outcome.section:
                write_section(outcome.section, outcome.start, outcome.end)
        print(f"wrote {BENCHMARKS_MD}", file=sys.stderr)
    if failed:
        print(f"FAILED: {', '.join(failed)} (tracebacks above; the other benchmarks' rows stand)", file=sys.stderr)
        return 2
    return 1 if any(r.met is False for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
