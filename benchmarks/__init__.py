"""mltest's own benchmarks: ``python -m benchmarks [--quick] [--only NAME] [--write]``.

Each module has ``run(quick: bool) -> Outcome``: table rows (value, the comparison measured in the
same run, the ratio, the target) and a detail section for BENCHMARKS.md. See ``__main__``.
"""
