"""Tests of mltest/envinfo.py on a CPU machine: versions, GPU facts, the key, flags and the container image."""

from __future__ import annotations

import json
import os
import platform
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import mltest
from mltest.envinfo import capture_environment, container_image

CPU_ONLY = pytest.mark.skipif(
    torch.cuda.is_available() or shutil.which("nvidia-smi") is not None,
    reason="checks what a machine without GPUs reports",
)


def test_versions_and_host_facts() -> None:
    env = capture_environment({}, {}, import_torch=True)
    assert env.python == platform.python_version()
    assert env.torch == str(torch.__version__)
    assert env.cuda == torch.version.cuda
    assert env.platform.startswith(sys.platform)
    assert env.hostname == socket.gethostname()
    assert env.cpu_count == (os.cpu_count() or 1)
    assert env.cpu_model
    assert env.mltest_version == mltest.__version__


@CPU_ONLY
def test_a_cpu_machine_has_no_gpus_and_a_cpu_key() -> None:
    env = capture_environment({}, {}, import_torch=True)
    assert env.gpu_count == 0
    assert env.gpu_model is None
    assert env.driver is None
    assert env.key.startswith("cpu: ")
    assert env.key == f"cpu: {env.cpu_model} x{env.cpu_count}"


def test_flags_are_sorted_string_pairs() -> None:
    env = capture_environment({"seed": 3, "deterministic": True, "amp": None}, {})
    assert env.flags == (("amp", "None"), ("deterministic", "True"), ("seed", "3"))
    assert capture_environment(None, {}).flags == ()
    assert capture_environment({}, {}).flags == ()


def test_import_torch_false_does_not_import_torch_yet_reports_its_version() -> None:
    code = (
        "import json, sys\n"
        "from mltest.envinfo import capture_environment\n"
        "assert 'torch' not in sys.modules, 'imported before the call'\n"
        "env = capture_environment({}, {}, import_torch=False)\n"
        "print(json.dumps({'torch': env.torch, 'cuda': env.cuda, 'imported': 'torch' in sys.modules}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    facts = json.loads(proc.stdout.strip().splitlines()[-1])
    assert facts["imported"] is False
    assert facts["torch"] == str(torch.__version__)
    assert facts["cuda"] is None  # not knowable without importing torch


def test_import_torch_false_uses_torch_when_it_is_already_imported() -> None:
    assert "torch" in sys.modules  # tests/conftest.py imports it
    env = capture_environment({}, {}, import_torch=False)
    assert env.torch == str(torch.__version__)
    assert env.cuda == torch.version.cuda


def test_container_image_honours_mltest_image() -> None:
    assert container_image({"MLTEST_IMAGE": "ghcr.io/org/ml:1.2"}) == "ghcr.io/org/ml:1.2"
    assert capture_environment({}, {"MLTEST_IMAGE": "ghcr.io/org/ml:1.2"}).container_image == "ghcr.io/org/ml:1.2"


def test_container_image_precedence() -> None:
    assert container_image({"MLTEST_IMAGE": "a", "MLTEST_IMAGE_DIGEST": "b", "IMAGE_DIGEST": "c"}) == "a"
    assert container_image({"MLTEST_IMAGE_DIGEST": "sha256:b", "IMAGE_DIGEST": "c"}) == "sha256:b"
    assert container_image({"IMAGE_DIGEST": "sha256:c"}) == "sha256:c"
    assert container_image({"MLTEST_IMAGE": "", "IMAGE_DIGEST": "sha256:c"}) == "sha256:c"


def test_container_image_without_variables() -> None:
    in_container = os.path.exists("/.dockerenv") or os.path.exists("/run/.containerenv")
    image = container_image({})
    if in_container:
        assert image is not None
        assert image == "container" or image.startswith("container:")
    else:
        assert image is None


def test_capture_environment_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLTEST_IMAGE", "from-os-environ")
    assert capture_environment().container_image == "from-os-environ"


# ----------------------------------------------------------------------------- GPUs seen through nvidia-smi


def run_with_fake_smi(tmp_path: Path, prelude: str) -> dict[str, object]:
    """capture_environment(import_torch=False) in a fresh interpreter whose PATH has a fake nvidia-smi."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    smi.write_text(
        "#!/bin/sh\necho 'NVIDIA H100 80GB HBM3, 550.54.15'\necho 'NVIDIA H100 80GB HBM3, 550.54.15'\n",
        encoding="utf-8",
    )
    smi.chmod(0o755)
    code = (
        f"import json, sys\n{prelude}\n"
        "from mltest.envinfo import capture_environment\n"
        "env = capture_environment({}, {}, import_torch=False)\n"
        "print(json.dumps({'gpu_count': env.gpu_count, 'gpu_model': env.gpu_model, 'driver': env.driver, "
        "'key': env.key, 'torch': env.torch, 'imported': sys.modules.get('torch') is not None}))\n"
    )
    environ = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False, env=environ
    )
    assert proc.returncode == 0, proc.stderr
    facts: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return facts


def test_without_torch_the_gpus_come_from_nvidia_smi(tmp_path: Path) -> None:
    facts = run_with_fake_smi(tmp_path, "sys.modules['torch'] = None  # as if torch were not installed")
    assert facts["torch"] is None
    assert facts["gpu_count"] == 2
    assert facts["gpu_model"] == "NVIDIA H100 80GB HBM3"
    assert facts["driver"] == "550.54.15"
    assert facts["key"] == "NVIDIA H100 80GB HBM3 x2"


def test_torch_installed_but_not_imported_still_sees_the_gpus_through_nvidia_smi(tmp_path: Path) -> None:
    facts = run_with_fake_smi(tmp_path, "")
    assert facts["imported"] is False
    assert facts["torch"] == str(torch.__version__)
    assert facts["gpu_count"] == 2
    assert facts["gpu_model"] == "NVIDIA H100 80GB HBM3"
