"""The environment fingerprint of a run: python, torch, CUDA, GPUs, driver, CPU, container image.

Captured once per run, in the process that records (never in a worker), without creating a CUDA
context: GPU names come from ``torch.cuda.get_device_name`` only when CUDA is already initialised,
else from ``nvidia-smi``.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from mltest.model import Environment

__all__ = ["capture_environment", "container_image", "nvidia_smi", "torch_facts"]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def nvidia_smi(fields: str) -> list[list[str]]:
    """Rows of ``nvidia-smi --query-gpu=FIELDS`` (no CUDA context is created); [] without a driver."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        out = subprocess.run(
            [exe, f"--query-gpu={fields}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [[cell.strip() for cell in line.split(",")] for line in out.splitlines() if line.strip()]


def container_image(environ: Mapping[str, str]) -> str | None:
    """The container image, when inside one: ``MLTEST_IMAGE`` or the OCI/Docker labels our images export,
    else ``container:<id>`` from the cgroup, else None."""
    for name in ("MLTEST_IMAGE", "MLTEST_IMAGE_DIGEST", "IMAGE_DIGEST"):
        if environ.get(name):
            return environ[name]
    if not (Path("/.dockerenv").exists() or Path("/run/.containerenv").exists()):
        return None
    try:
        text = Path("/proc/self/mountinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "container"
    match = re.search(r"/containers/([0-9a-f]{64})/", text)
    return f"container:{match.group(1)[:12]}" if match else "container"


def torch_facts(import_torch: bool) -> dict[str, object]:
    """What torch says about itself and the GPUs (JSON-safe values); {} when torch is not installed.

    Without ``import_torch``, torch is not imported: only its version is read, unless another part
    of this process has imported it already."""
    if importlib.util.find_spec("torch") is None:
        return {}
    if not import_torch and "torch" not in sys.modules:
        # Importing torch costs seconds; the unit tier of a project that never imports it pays nothing.
        return {"torch": importlib.metadata.version("torch")}
    import torch

    facts: dict[str, object] = {"torch": str(torch.__version__), "cuda": torch.version.cuda}
    try:
        cudnn = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None  # type: ignore[no-untyped-call]
    except RuntimeError:
        cudnn = None
    facts["cudnn"] = str(cudnn) if cudnn else None
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        facts["gpu_count"] = count
        if torch.cuda.is_initialized() and count:  # type: ignore[no-untyped-call]
            facts["gpu_model"] = torch.cuda.get_device_name(0)
    return facts


def capture_environment(
    flags: Mapping[str, object] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    import_torch: bool = True,
    torch: Mapping[str, object] | None = None,
) -> Environment:
    """The environment of this run. ``torch``: :func:`torch_facts` as another process (the one that
    runs the tests) found them; None: ask torch here, importing it only with ``import_torch``."""
    environ = os.environ if environ is None else environ
    try:
        mltest_version = importlib.metadata.version("mltest")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - source tree not installed
        mltest_version = "0+unknown"
    facts = dict(torch) if torch is not None else torch_facts(import_torch)
    # nvidia-smi when torch did not look (not installed, or not imported to save seconds) or saw GPUs
    smi = nvidia_smi("name,driver_version") if facts.get("gpu_count") or "gpu_count" not in facts else []
    gpu_count = int(facts.get("gpu_count") or len(smi))  # type: ignore[call-overload]
    gpu_model = facts.get("gpu_model") or (smi[0][0] if smi else None)
    return Environment(
        python=platform.python_version(),
        platform=f"{sys.platform}-{platform.machine()}",
        hostname=socket.gethostname(),
        cpu_model=_cpu_model(),
        cpu_count=os.cpu_count() or 1,
        mltest_version=mltest_version,
        torch=facts.get("torch"),  # type: ignore[arg-type]
        cuda=facts.get("cuda"),  # type: ignore[arg-type]
        cudnn=facts.get("cudnn"),  # type: ignore[arg-type]
        gpu_model=str(gpu_model) if gpu_model and gpu_count else None,
        gpu_count=gpu_count,
        driver=smi[0][1] if smi else None,
        container_image=container_image(environ),
        flags=tuple(sorted((str(k), str(v)) for k, v in (flags or {}).items())),
    )
