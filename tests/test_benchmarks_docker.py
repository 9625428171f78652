"""The Docker benchmark (benchmarks/docker.py) without building: its rows judge the three targets
right, its report carries the tables, and the floor it measures is what the issue defines."""

from __future__ import annotations

from types import ModuleType

import pytest

from mltest.docker import BuiltImage, ImageInfo, Layer

BENCHMARK = "docker"  # the module the shared ``bench`` fixture (tests/conftest.py) imports
GB = 10**9


def _info(ref: str, size: float, layers: int) -> ImageInfo:
    history = [
        Layer(f"id{i}", "(the base image's file system)" if i == 0 else f"RUN step {i}", 10) for i in range(layers)
    ]
    if layers > 2:
        history[-2] = Layer("venv", "COPY dir:abc in /opt/venv", 10)
    return ImageInfo(ref, f"sha256:{ref}", int(size * GB), tuple(f"l{i}" for i in range(layers)), tuple(history))


def _measured(bench: ModuleType, base: float, debug: float, cold: float, rebuild: float) -> object:
    floor = _info("floor", 1.04, 3)
    built = BuiltImage("base", "p:1", _info("p:1", base, 6), cold)
    return bench.Measured(
        floor=floor,
        os_base=_info("os", 0.117, 1),
        base=built,
        debug=BuiltImage("debug", "p:1-debug", _info("p:1-debug", debug, 9), 30.0),
        cold_seconds=cold + 30.0,
        rebuild=BuiltImage("base", "p:2", _info("p:2", base, 6), rebuild),
        cuda=None,
        engine="20.10",
    )


@pytest.mark.parametrize(
    ("base", "debug", "rebuild", "met"),
    [
        (1.13, 1.38, 10.0, [True, True, True]),
        (1.21, 1.70, 30.0, [False, False, False]),
    ],
)
def test_rows_judge_size_debug_and_rebuild_targets(
    bench: ModuleType, base: float, debug: float, rebuild: float, met: list[bool]
) -> None:
    rows = bench.rows(_measured(bench, base, debug, 100.0, rebuild))
    judged = {r.metric_name: r.met for r in rows if r.met is not None}
    assert judged == dict(zip(["base_image_size", "debug_image_added", "rebuild_seconds"], met, strict=True))
    assert all(r.higher_is_better is False for r in rows)
    size = next(r for r in rows if r.metric_name == "base_image_size")
    assert size.ratio == f"{base / 1.04:.3f}"


def test_the_report_has_the_images_the_checks_and_the_layers(bench: ModuleType) -> None:
    section = bench.report(_measured(bench, 1.13, 1.38, 100.0, 10.0), "python -m benchmarks.docker --write")
    assert section.startswith(bench.HEADING)
    assert section.count(bench.START) == section.count(bench.END) == 1
    assert "| floor: minbase + python3 + torch venv | 1.04 GB |" in section
    assert "| base rebuild after a source-only change | 10.0 s | < 20% of cold | yes |" in section
    assert "The CUDA variant is built by the full run only" in section


def test_the_floor_is_minbase_python3_and_a_torch_venv(bench: ModuleType) -> None:
    dockerfile = bench.FLOOR_DOCKERFILE.replace("TORCH", bench.CPU_TORCH)
    assert "pip install --no-cache-dir --no-index --find-links /wheels torch==2.13.0" in dockerfile
    final = dockerfile.split("FROM ${BASE_IMAGE}\n", 1)[1]
    assert "--no-install-recommends python3 " in final
    assert "COPY --from=venv /opt/venv /opt/venv" in final
    assert "COPY *.whl" not in final  # the wheels stay in the builder stage
