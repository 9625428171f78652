"""pytest-xdist: -n 2 in both tiers, GPU pinning of workers (simulated), and the per-test hand-off."""

from __future__ import annotations

import json

import pytest

from mltest.harness import gpu

pytestmark = pytest.mark.integration  # each test starts worker processes

SUITE = """
import os, pytest

def test_unit_1(seed):
    assert seed == 7

def test_unit_2(device):
    assert device.type == "cpu"

@pytest.mark.integration
def test_integration(device, seed):
    assert device.type == "cpu"
"""

RECEIVER_CONFTEST = """
import json
from mltest.harness import handoff

RECEIVED = []

def pytest_configure(config):
    if not hasattr(config, "workerinput"):
        handoff.add_receiver(config, lambda nodeid, entry: RECEIVED.append([nodeid, entry]))

def pytest_sessionfinish(session):
    if not hasattr(session.config, "workerinput"):
        with open("received.json", "w") as f:
            json.dump(RECEIVED, f)
"""


@pytest.mark.parametrize(("tier", "passed", "deselected"), [("unit", 2, 1), ("integration", 1, 2), ("all", 3, 0)])
def test_n2_runs_each_tier(pytester: pytest.Pytester, tier: str, passed: int, deselected: int) -> None:
    pytester.makepyprojecttoml("[tool.mltest]\nseed = 7\ndevice = 'cpu'\n")
    pytester.makepyfile(test_suite=SUITE)
    result = pytester.runpytest("-n", "2", f"--mltest-tier={tier}")
    result.assert_outcomes(passed=passed)
    result.stdout.fnmatch_lines([f"{tier} tier: {passed} test{'s' if passed > 1 else ''} ran in*"])
    if tier == "unit":  # the deselection count comes back from the workers
        result.stdout.fnmatch_lines(["1 integration test deselected by the unit tier*"])


def test_per_test_data_from_workers_reaches_the_controller(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml("[tool.mltest]\nseed = 7\ndevice = 'cpu'\n")
    pytester.makeconftest(RECEIVER_CONFTEST)
    pytester.makepyfile(test_suite=SUITE)
    pytester.runpytest("-n", "2", "--mltest-tier=all").assert_outcomes(passed=3)
    received = json.loads((pytester.path / "received.json").read_text())
    by_test: dict[str, list[dict[str, object]]] = {}
    for nodeid, entry in received:
        by_test.setdefault(nodeid, []).append(entry)
    assert by_test == {
        "test_suite.py::test_unit_1": [{"kind": "seed", "value": 7}],
        "test_suite.py::test_unit_2": [{"kind": "device", "value": "cpu"}],
        "test_suite.py::test_integration": [{"kind": "device", "value": "cpu"}, {"kind": "seed", "value": 7}],
    }


def test_handoff_without_xdist_takes_the_same_path(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml("[tool.mltest]\nseed = 7\n")
    pytester.makeconftest(RECEIVER_CONFTEST)
    pytester.makepyfile(test_suite=SUITE)
    pytester.runpytest().assert_outcomes(passed=2, deselected=1)
    received = json.loads((pytester.path / "received.json").read_text())
    assert sorted(map(tuple, ((n, e["kind"]) for n, e in received))) == [
        ("test_suite.py::test_unit_1", "seed"),
        ("test_suite.py::test_unit_2", "device"),
    ]


PINNING_CONFTEST = """
import os
from mltest.harness import gpu
from mltest.harness.gpu import DeviceMemory

# Simulated GPUs inside the worker processes: each sees the devices its CUDA_VISIBLE_DEVICES names.
if os.environ.get("PYTEST_XDIST_WORKER"):
    gpu.device_count = lambda environ=None: len([t for t in os.environ["CUDA_VISIBLE_DEVICES"].split(",") if t])
    gpu.memory = lambda i: DeviceMemory(i, "Simulated", 10 * 2**30, 16 * 2**30)
"""

PINNING_SUITE = """
import os, pytest

@pytest.mark.gpu
@pytest.mark.parametrize("i", range(4))
def test_where(i, tmp_path_factory):
    worker = os.environ["PYTEST_XDIST_WORKER"]
    out = tmp_path_factory.getbasetemp().parent.parent / f"{worker}-{i}.cvd"
    out.write_text(os.environ["CUDA_VISIBLE_DEVICES"])
"""


def _simulate_controller(monkeypatch: pytest.MonkeyPatch) -> None:
    """The controller (this process) sees as many devices as the caller's CUDA_VISIBLE_DEVICES lists."""
    import os

    monkeypatch.setattr(
        gpu, "device_count", lambda environ=None: len([t for t in os.environ["CUDA_VISIBLE_DEVICES"].split(",") if t])
    )


def _seen(pytester: pytest.Pytester) -> dict[str, set[str]]:
    seen: dict[str, set[str]] = {}
    for path in pytester.path.rglob("*.cvd"):
        seen.setdefault(path.name.split("-")[0], set()).add(path.read_text())
    return seen


def test_simulated_workers_are_pinned_to_the_callers_gpus(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")  # the caller's choice must be respected
    _simulate_controller(monkeypatch)
    pytester.makepyprojecttoml("[tool.mltest]\n")
    pytester.makeconftest(PINNING_CONFTEST)
    pytester.makepyfile(test_pin=PINNING_SUITE)
    result = pytester.runpytest("-n", "2", "--mltest-tier=integration", f"--basetemp={pytester.path / 'bt'}")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["GPU pinning: gw0->GPU 2, gw1->GPU 3"])
    result.stdout.no_fnmatch_line("*share*")
    assert _seen(pytester) == {"gw0": {"2"}, "gw1": {"3"}}


def test_simulated_more_workers_than_gpus_share_with_a_warning(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-aaaa")
    _simulate_controller(monkeypatch)
    pytester.makepyprojecttoml("[tool.mltest]\n")
    pytester.makeconftest(PINNING_CONFTEST)
    pytester.makepyfile(test_pin=PINNING_SUITE)
    result = pytester.runpytest("-n", "2", "--mltest-tier=integration", f"--basetemp={pytester.path / 'bt'}")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["mltest: WARNING: 2 workers share 1 GPU (gw0->GPU GPU-aaaa, gw1->GPU GPU-aaaa)*"])
    seen = _seen(pytester)
    assert seen
    assert all(devices == {"GPU-aaaa"} for devices in seen.values())


def test_unit_tier_workers_see_no_gpu(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    pytester.makepyprojecttoml("[tool.mltest]\n")
    pytester.makepyfile(
        test_env="import os\ndef test_a():\n    assert os.environ['CUDA_VISIBLE_DEVICES'] == ''\n"
        "def test_b():\n    assert os.environ['CUDA_VISIBLE_DEVICES'] == ''\n"
    )
    pytester.runpytest("-n", "2").assert_outcomes(passed=2)


def test_workers_get_their_share_of_cpu_threads_unless_the_caller_chose(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    pytester.makepyprojecttoml("[tool.mltest]\n")
    pytester.makepyfile(test_env="import os\ndef test_a():\n    assert os.environ['OMP_NUM_THREADS'] == '4'\n")
    result = pytester.runpytest("-n", "2")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["CPU threads per worker: OMP_NUM_THREADS=4*"])
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    pytester.makepyfile(test_env="import os\ndef test_a():\n    assert os.environ['OMP_NUM_THREADS'] == '3'\n")
    pytester.runpytest("-n", "2").assert_outcomes(passed=1)
