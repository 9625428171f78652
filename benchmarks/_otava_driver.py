"""Run Apache Otava on a JSON corpus; started by ``benchmarks/detection.py`` with Otava's own interpreter.

Usage: ``python _otava_driver.py CORPUS.json WINDOW_LEN MAX_PVALUE WARMUP``

``CORPUS.json`` is a list of series (lists of floats). The first ``WARMUP`` series are run once untimed;
then every series is run inside one ``time.perf_counter`` interval (import and JSON load excluded). The
last line of stdout is ``{"indices": [[...], ...], "seconds": float}``. Standard library and Otava only.
"""

from __future__ import annotations

import json
import sys
import time

from otava.analysis import compute_change_points


def main(argv: list[str]) -> None:
    path, window_len, max_pvalue, warmup = argv[0], int(argv[1]), float(argv[2]), int(argv[3])
    with open(path, encoding="utf-8") as handle:
        corpus: list[list[float]] = json.load(handle)
    for values in corpus[:warmup]:
        compute_change_points(values, window_len=window_len, max_pvalue=max_pvalue)
    indices: list[list[int]] = []
    start = time.perf_counter()
    for values in corpus:
        found, _weak = compute_change_points(values, window_len=window_len, max_pvalue=max_pvalue)
        indices.append([int(cp.index) for cp in found])
    seconds = time.perf_counter() - start
    print(json.dumps({"indices": indices, "seconds": seconds}))


if __name__ == "__main__":
    main(sys.argv[1:])
