"""Image sizes, layer counts and build times (issue 8), against the floor measured in the same run.

Usage (from the repository root; needs a running Docker engine, root for debootstrap)::

    python -m benchmarks --only docker [--quick] [--write]
    python -m benchmarks.docker [--quick] [--write]

What it builds, offline (no registry is reachable here), all from the same local Debian bookworm
minbase image (``dockerfiles/local-base.sh``; ``MLTEST_DOCKER_BASE_IMAGE`` names another):

* **the floor**: that base + Debian's python3 + a virtualenv holding only torch 2.13.0 (CPU) and its
  dependencies, copied in from a builder stage; what any image that runs torch tests must hold;
* **base and debug, cold**: ``mltest docker build`` of a copy of this repository, CPU variant, from
  a host-built wheelhouse (``.bench/wheelhouse-cpu``, made with ``pip wheel``), on a base image id
  that no build has used yet (so nothing is cached);
* **a rebuild after a source-only change**: one line added to ``mltest/__init__.py``, committed, and
  ``mltest docker build --target base`` again, with the engine's cache;
* **the CUDA variant** (not with ``--quick``): base with torch 2.14.1 and its ``nvidia-*`` wheels
  (about 3 GB from PyPI, cached in ``.bench/wheelhouse-cuda``).

Targets: base within 15 % of the floor, debug adds at most 400 MB, a source-only rebuild takes under
20 % of the cold build's time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks._common import BENCHMARKS_MD, ROOT, Outcome, Row, emit, machine, met_text, table
from mltest.cli.docker_cmd import build as build_images
from mltest.config import load_settings
from mltest.docker import BuiltImage, ImageInfo, connect, image_info
from mltest.report.fmt import fmt_value

NAME = "docker"
START, END = "<!-- docker:start -->", "<!-- docker:end -->"
HEADING = "## Docker images (issue 8)"
FLOOR_RATIO = 1.15
DEBUG_LIMIT = 400 * 10**6
REBUILD_RATIO = 0.20
LOCAL_BASE = "mltest-local/debian:bookworm-minbase"
CPU_TORCH = "torch==2.13.0"
CUDA_TORCH = "torch==2.14.1"
EXTRAS = "testing"
DEBUG_WHEELS = ("ipython", "matplotlib", "py-spy")
WHEELHOUSES = ROOT / ".bench"
PUBLISHED = (
    # Not measured here (no registry is reachable): sizes as published or widely reported, for scale.
    (
        "pytorch/pytorch:2.7.0-cuda11.8-cudnn8-runtime (official PyTorch runtime image)",
        "about 2.9 GB as reported, a compressed download size (unpacked it is larger; ours is unpacked)",
    ),
    (
        "nvcr.io/nvidia/pytorch:25.xx-py3 (NVIDIA NGC framework image)",
        "15-20 GB unpacked as reported (it carries the CUDA toolkit, compilers and sources)",
    ),
)

FLOOR_DOCKERFILE = """\
ARG BASE_IMAGE
FROM ${BASE_IMAGE} AS venv
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 python3-venv
COPY *.whl /wheels/
RUN python3 -m venv /opt/venv && /opt/venv/bin/pip install --no-cache-dir --no-index --find-links /wheels TORCH
FROM ${BASE_IMAGE}
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 \\
    && apt-get clean && rm -rf /var/lib/apt/lists/*
COPY --from=venv /opt/venv /opt/venv
"""


@dataclass(frozen=True)
class Measured:
    floor: ImageInfo
    os_base: ImageInfo
    base: BuiltImage
    debug: BuiltImage
    cold_seconds: float
    rebuild: BuiltImage
    cuda: BuiltImage | None
    engine: str


def _run(*args: str, cwd: Path | None = None) -> str:
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:4])} ... failed ({proc.returncode}):\n{proc.stdout[-3000:]}{proc.stderr}")
    return proc.stdout


def local_base() -> str:
    tag = os.environ.get("MLTEST_DOCKER_BASE_IMAGE") or LOCAL_BASE
    _run("bash", str(ROOT / "dockerfiles" / "local-base.sh"), tag)
    return tag


def wheelhouse(variant: str) -> Path:
    """A host-built wheelhouse for this repository's image: made once, then reused until
    ``pyproject.toml`` changes (a new dependency must be in it: the image installs from wheels only)."""
    folder = WHEELHOUSES / f"wheelhouse-{variant}"
    torch = CPU_TORCH if variant == "cpu" else CUDA_TORCH
    marker = folder / ".complete"
    made_for = f"{torch} {hashlib.sha256((ROOT / 'pyproject.toml').read_bytes()).hexdigest()}"
    if not marker.exists() or marker.read_text() != made_for:
        folder.mkdir(parents=True, exist_ok=True)
        _run(
            sys.executable, "-m", "pip", "wheel", "-q", "-w", str(folder), f".[{EXTRAS}]", torch,
            "setuptools>=68", "wheel", *DEBUG_WHEELS, *(("nvitop",) if variant == "cuda" else ()),
            cwd=ROOT,
        )  # fmt: skip
        marker.write_text(made_for)
    return folder


def copy_repository(dest: Path) -> Path:
    """Tracked and unignored files of this checkout, as a one-commit git repository."""
    listed = _run("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=ROOT).split("\0")
    for rel in filter(None, listed):
        src = ROOT / rel
        if not src.exists() and not src.is_symlink():
            continue
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if src.is_symlink():
            target.symlink_to(os.readlink(src))
        else:
            shutil.copy2(src, target)
    ident = ("-c", "user.name=bench", "-c", "user.email=bench@mltest.invalid", "-c", "commit.gpgsign=false")
    _run("git", "init", "-q", "-b", "main", cwd=dest)
    _run("git", "add", "-A", cwd=dest)
    _run("git", *ident, "commit", "-qm", "benchmark checkout", cwd=dest)
    return dest


def build_floor(client: Any, base_image: str, wheels: Path, tag: str) -> ImageInfo:
    with tempfile.TemporaryDirectory() as tmp:
        context = Path(tmp)
        names = ("torch-", "sympy-", "mpmath-", "networkx-", "jinja2-", "markupsafe-", "filelock-", "fsspec-")
        names += ("typing_extensions-", "setuptools-")
        for wheel in wheels.glob("*.whl"):
            if wheel.name.lower().startswith(names):
                os.link(wheel, context / wheel.name)
        (context / "Dockerfile").write_text(FLOOR_DOCKERFILE.replace("TORCH", CPU_TORCH))
        for chunk in client.api.build(
            path=str(context), tag=tag, buildargs={"BASE_IMAGE": base_image}, rm=True, forcerm=True, decode=True
        ):
            if "error" in chunk:
                raise RuntimeError(f"the floor image failed to build: {chunk['error']}")
    return image_info(client, tag)


def fresh_base(client: Any, base_image: str, stamp: str) -> str:
    """A new image id on top of ``base_image`` (one label): no build has used it, so the first build
    from it is cold without ``--no-cache``, and the rebuild finds exactly that build's layers in the
    cache (an engine that has built other chains from the same base may otherwise pick a stale one)."""
    tag = f"mltest-bench-base:{stamp}"
    dockerfile = f"FROM {base_image}\nLABEL io.mltest.benchmark={stamp}\n".encode()
    for chunk in client.api.build(fileobj=io.BytesIO(dockerfile), tag=tag, rm=True, decode=True):
        if "error" in chunk:
            raise RuntimeError(f"tagging a fresh base image failed: {chunk['error']}")
    return tag


def cleanup(client: Any, stamp: str) -> None:
    """Remove this run's images (several GB with the CUDA variant) and the dangling build stages."""
    for image in client.images.list():
        for tag in image.tags:
            if tag.startswith(("mltest-bench-", "mltest-bench-base:", "mltest-bench-floor:")) and stamp in tag:
                client.images.remove(tag, force=True)
    client.images.prune(filters={"dangling": True})


def _quiet(line: str) -> None:
    if not line.startswith("  Step"):
        print(f"    {line.strip()}", file=sys.stderr)


def measure(quick: bool) -> Measured:
    client = connect()
    try:
        engine = str(client.version().get("Version", "?"))
        stamp = time.strftime("%Y%m%d%H%M%S")
        os_base = image_info(client, local_base())
        base_image = fresh_base(client, os_base.ref, stamp)
        cpu_wheels = wheelhouse("cpu")
        print("docker: the floor image", file=sys.stderr)
        floor = build_floor(client, base_image, cpu_wheels, f"mltest-bench-floor:{stamp}")
        with tempfile.TemporaryDirectory() as tmp:
            project = copy_repository(Path(tmp) / "project")
            settings = load_settings(project, environ={})
            name = f"mltest-bench-{stamp}"
            print("docker: base and debug, cold (a base image no build has used)", file=sys.stderr)
            cold = build_images(
                settings, wheelhouse=cpu_wheels, tag=name, base_image=base_image, extras=EXTRAS, out=_quiet
            )
            base, debug = cold
            init = project / "mltest" / "__init__.py"
            init.write_text(init.read_text() + "\n# a source-only change\n")
            _run("git", "-c", "user.name=b", "-c", "user.email=b@x.invalid", "commit", "-qam", "edit", cwd=project)
            print("docker: base after a source-only change (cache)", file=sys.stderr)
            (rebuild,) = build_images(
                settings, targets=("base",), wheelhouse=cpu_wheels, tag=name, base_image=base_image, extras=EXTRAS,
                out=_quiet,
            )  # fmt: skip
            cuda = None
            if not quick:
                print("docker: base, CUDA variant", file=sys.stderr)
                (cuda,) = build_images(
                    settings, variant="cuda", targets=("base",), wheelhouse=wheelhouse("cuda"), tag=name,
                    base_image=base_image, extras=EXTRAS, out=_quiet,
                )  # fmt: skip
        return Measured(floor, os_base, base, debug, base.seconds + debug.seconds, rebuild, cuda, engine)
    finally:
        if "stamp" in locals():
            cleanup(client, stamp)
        client.close()


def _gb(size: float) -> str:
    return f"{size / 1e9:.2f} GB"


def rows(m: Measured) -> list[Row]:
    ratio = m.base.info.size / m.floor.size
    added = m.debug.info.size - m.base.info.size
    rebuild_ratio = m.rebuild.seconds / m.base.seconds
    out = [
        Row(NAME, "base image size", float(m.base.info.size), "bytes", _gb(m.base.info.size),
            f"floor {_gb(m.floor.size)}", f"{ratio:.3f}", f"<= {FLOOR_RATIO:.2f}x floor", ratio <= FLOOR_RATIO,
            higher_is_better=False, metric="base_image_size"),
        Row(NAME, "debug image adds", float(added), "bytes", _gb(added), f"base {_gb(m.base.info.size)}", "",
            f"<= {DEBUG_LIMIT / 1e6:.0f} MB", added <= DEBUG_LIMIT, higher_is_better=False,
            metric="debug_image_added"),
        Row(NAME, "base rebuild after a source-only change", m.rebuild.seconds, "s", f"{m.rebuild.seconds:.1f} s",
            f"cold base build {m.base.seconds:.1f} s", f"{rebuild_ratio:.3f}", f"< {REBUILD_RATIO:.0%} of cold",
            rebuild_ratio < REBUILD_RATIO, higher_is_better=False, metric="rebuild_seconds"),
        Row(NAME, "base layers", float(m.base.info.layer_count), "layers", str(m.base.info.layer_count),
            f"floor {m.floor.layer_count}", "", "", None, higher_is_better=False, metric="base_layers"),
    ]  # fmt: skip
    if m.cuda is not None:
        out.append(
            Row(NAME, "CUDA base image size", float(m.cuda.info.size), "bytes", _gb(m.cuda.info.size),
                "; ".join(f"{n}: {s}" for n, s in PUBLISHED[:1]), "", "", None, higher_is_better=False,
                metric="cuda_image_size")
        )  # fmt: skip
    return out


def report(m: Measured, command: str) -> str:
    images = [
        ("floor: minbase + python3 + torch venv", m.floor, None),
        ("base (CPU), cold", m.base.info, m.base.seconds),
        ("debug (CPU), cold", m.debug.info, m.debug.seconds),
        ("base (CPU), after a source-only change", m.rebuild.info, m.rebuild.seconds),
    ]
    if m.cuda is not None:
        images.append(("base (CUDA: torch 2.14.1 + nvidia-* wheels)", m.cuda.info, m.cuda.seconds))
    image_rows = [
        [label, _gb(info.size), fmt_value(info.size, "bytes"), str(info.layer_count), "" if s is None else f"{s:.1f} s"]
        for label, info, s in images
    ]
    base_layers = [
        [fmt_value(layer.size, "bytes"), f"`{layer.created_by[:90]}`"] for layer in m.base.info.history if layer.size
    ]
    venv_index = next(i for i, h in enumerate(m.base.info.history) if h.created_by.endswith("in /opt/venv"))
    kept = sum(1 for a, b in zip(m.base.info.history, m.rebuild.info.history, strict=False) if a.id == b.id)
    met = rows(m)
    published = "\n".join(f"- {name}: {size}" for name, size in PUBLISHED)
    cuda = (
        f"The CUDA variant's base is **{_gb(m.cuda.info.size)}** ({m.cuda.info.layer_count} layers): no CUDA base "
        "image, the torch wheel's `nvidia-*` dependencies carry the CUDA libraries and the host driver comes from "
        "the NVIDIA container runtime (`docker run --gpus all`). For scale (not measured here, no registry is "
        f"reachable):\n{published}\n"
        if m.cuda is not None
        else "The CUDA variant is built by the full run only (not `--quick`).\n"
    )
    return f"""{HEADING}

{START}
`{command}` on {dt.date.today().isoformat()}; Docker engine {m.engine}, classic builder. Machine: {machine()}.
All images from the same local Debian bookworm minbase image ({_gb(m.os_base.size)}), offline from a
host-built wheelhouse.

{table(["image", "size", "", "layers", "build time"], image_rows)}

{table(["check", "value", "target", "met?"], [[r.case, r.shown, r.target, met_text(r.met)] for r in met if r.target])}

The base image is {m.base.info.size / m.floor.size:.3f}x the floor: it adds git (CI checkouts inside the
container need it), mltest and its test dependencies to the floor's python3 + torch, and prunes what
cannot run there (torch's C/C++ headers, its C++ test binaries, third-party test suites). After a
source-only change the rebuild reused {kept} of the {len(m.base.info.history)} history steps of the cold
build, every one up to the dependency venv (step {venv_index + 1}), and took
{m.rebuild.seconds:.1f} s against {m.base.seconds:.1f} s cold ({m.rebuild.seconds / m.base.seconds:.1%}).

Base layers (oldest first; steps that add no files left out):

{table(["size", "step"], base_layers)}

{cuda}
{END}
"""


def run(quick: bool) -> Outcome:
    m = measure(quick)
    command = "python -m benchmarks --only docker" + (" --quick" if quick else "") + " --write"
    return Outcome(rows(m), report(m, command), START, END)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="skip the CUDA variant")
    parser.add_argument("--write", action="store_true", help=f"replace the docker section of {BENCHMARKS_MD.name}")
    args: Any = parser.parse_args(argv)
    m = measure(args.quick)
    section = report(m, "python -m benchmarks.docker" + (" --quick" if args.quick else "") + " --write")
    emit(section, START, END, args.write)


if __name__ == "__main__":
    main()
