"""Image builds, pushes and size breakdowns through the docker SDK (imported lazily: ``mltest[docker]``)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mltest.errors import DockerError, DockerUnavailable, MissingExtraError
from mltest.report.fmt import ellipsize

__all__ = [
    "BASE_DOCKERFILE",
    "DEBUG_DOCKERFILE",
    "TARGETS",
    "VARIANTS",
    "WHEELHOUSE_DIR",
    "BuildSpec",
    "BuiltImage",
    "ImageInfo",
    "Layer",
    "PathSize",
    "build_images",
    "connect",
    "image_info",
    "informative_dirs",
    "largest_paths",
    "push_image",
    "shares_layers",
    "staged_wheelhouse",
]

BASE_DOCKERFILE = "dockerfiles/base.Dockerfile"
DEBUG_DOCKERFILE = "dockerfiles/debug.Dockerfile"
WHEELHOUSE_DIR = ".mltest-wheelhouse"
"""The wheelhouse folder inside the build context; the Dockerfiles install from it when it holds wheels."""
VARIANTS = ("cpu", "cuda")
TARGETS = ("base", "debug")
START_ENGINE_HINT = "start one with `sudo systemctl start docker` (or `sudo dockerd &`), or point DOCKER_HOST at one"

Line = Callable[[str], None]
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _sdk() -> Any:
    try:
        import docker
    except ImportError:
        raise MissingExtraError("mltest docker", "docker", "docker") from None
    return docker


def connect() -> Any:
    """A docker SDK client for the engine that DOCKER_HOST (or the default socket) names, checked alive."""
    docker = _sdk()
    import requests

    where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    if where.startswith("unix://"):  # the SDK leaks the socket of a failed unix connect: look first
        with socket.socket(socket.AF_UNIX) as probe_socket:
            probe_socket.settimeout(15)
            try:
                probe_socket.connect(where[len("unix://") :])
            except OSError as exc:
                raise DockerUnavailable(f"no Docker engine answers at {where} ({exc}): {START_ENGINE_HINT}") from None
    try:
        kwargs = docker.utils.kwargs_from_env()
        # Ask the engine for its API version with a client that needs none, and close it either way
        # (the SDK's own version probe leaks its socket when the engine is down).
        probe = docker.APIClient(version="1.24", timeout=15, **kwargs)
        try:
            version = str(probe.version(api_version=False)["ApiVersion"])
        finally:
            probe.close()
        client = docker.DockerClient(version=version, timeout=600, **kwargs)
    except (docker.errors.DockerException, requests.RequestException, OSError, KeyError) as exc:
        reason = _first_line(exc)
        raise DockerUnavailable(f"no Docker engine answers at {where} ({reason}): {START_ENGINE_HINT}") from None
    return client


# ----------------------------------------------------------------------------- what an image is


@dataclass(frozen=True)
class Layer:
    """One step of an image's history (``docker history``), oldest first."""

    id: str
    created_by: str
    size: int


@dataclass(frozen=True)
class ImageInfo:
    ref: str
    id: str
    size: int
    """Bytes, as ``docker images`` shows (all layers, uncompressed)."""
    layers: tuple[str, ...]
    """The file-system layers (RootFS diff ids), base first: what ``shares_layers`` compares."""
    history: tuple[Layer, ...]
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def layer_count(self) -> int:
        return len(self.layers)

    def largest_layers(self, top: int = 5) -> list[Layer]:
        return sorted((h for h in self.history if h.size > 0), key=lambda h: -h.size)[:top]


@dataclass(frozen=True)
class BuiltImage:
    target: Literal["base", "debug"]
    ref: str
    info: ImageInfo
    seconds: float


@dataclass(frozen=True)
class PathSize:
    path: str
    size: int
    """Bytes."""


def _clean_step(created_by: str) -> str:
    """The Dockerfile step of a history entry, without the shell and build-argument prefix."""
    text = created_by.strip()
    shell = re.search(r"/bin/(?:ba)?sh (?:-o pipefail )?-c ", text)  # after "|N KEY=VALUE ..." when build args
    if shell is not None:
        text = text[shell.end() :]
    text = re.sub(r"^#\(nop\)\s+", "", text)
    return re.sub(r"\s+", " ", text).strip() or "(the base image's file system)"


def image_info(client: Any, ref: str) -> ImageInfo:
    """Size, layers and history of an image the engine has."""
    docker = _sdk()
    try:
        data = client.api.inspect_image(ref)
        history = client.api.history(ref)
    except docker.errors.ImageNotFound:
        raise DockerError(f"no image {ref!r} in the Docker engine: build it first (mltest docker build)") from None
    except docker.errors.APIError as exc:
        raise DockerError(f"inspecting image {ref!r} failed: {_first_line(exc)}") from None
    steps = tuple(
        Layer(str(h.get("Id") or ""), _clean_step(str(h.get("CreatedBy") or "")), int(h.get("Size") or 0))
        for h in reversed(history)
    )
    config = data.get("Config") or {}
    return ImageInfo(
        ref=ref,
        id=str(data["Id"]),
        size=int(data.get("Size") or 0),
        layers=tuple((data.get("RootFS") or {}).get("Layers") or ()),
        history=steps,
        labels=dict(config.get("Labels") or {}),
    )


def shares_layers(base: ImageInfo, derived: ImageInfo) -> bool:
    """True when ``derived`` starts with every file-system layer of ``base``, in order."""
    return len(derived.layers) >= len(base.layers) and derived.layers[: len(base.layers)] == base.layers


# ----------------------------------------------------------------------------- building


@dataclass(frozen=True)
class BuildSpec:
    """What ``mltest docker build`` builds: one variant, base and/or debug, from one build context."""

    context: Path
    name: str
    """The repository part of the tags (``myproject`` or ``ghcr.io/org/myproject``)."""
    tag: str
    """The commit's short sha (or ``dev`` outside git)."""
    variant: str = "cpu"
    targets: tuple[str, ...] = TARGETS
    base_image: str | None = None
    """BASE_IMAGE for the base build (the OS/Python base); None keeps the Dockerfile's pinned default."""
    extras: str = "test"
    torch: str | None = None
    build_args: Mapping[str, str] = field(default_factory=dict)
    labels: Mapping[str, str] = field(default_factory=dict)
    """COMMIT and VERSION build arguments, which become the OCI labels."""
    no_cache: bool = False

    def __post_init__(self) -> None:
        if self.variant not in VARIANTS:
            raise DockerError(f"unknown image variant {self.variant!r}: choose one of {', '.join(VARIANTS)}")
        for target in self.targets:
            if target not in TARGETS:
                raise DockerError(f"unknown image target {target!r}: choose base, debug or all")
        if not re.fullmatch(r"[a-z0-9]+(?:[._/:-][a-z0-9]+)*", self.name.lower()) or self.name != self.name.lower():
            raise DockerError(
                f"image name {self.name!r} is not a valid repository name: use lowercase letters, digits, '.', '-', "
                "'_' and '/' (for example ghcr.io/org/project)"
            )
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,100}", self.tag):
            raise DockerError(f"image tag {self.tag!r} is not valid: letters, digits, '_', '.', '-', at most 101")

    def ref(self, target: str) -> str:
        suffix = "" if self.variant == "cpu" else f"-{self.variant}"
        return f"{self.name}:{self.tag}{suffix}{'-debug' if target == 'debug' else ''}"


def _build_args(spec: BuildSpec, target: str, ref: str) -> dict[str, str]:
    args = {"VARIANT": spec.variant, "IMAGE": ref, **spec.labels}
    if target == "base":
        from mltest import __version__

        args["EXTRAS"] = spec.extras
        args["MLTEST"] = f"mltest=={__version__}"  # what `mltest run` needs; dropped in mltest's own repository
        if spec.torch is not None:
            args["TORCH"] = spec.torch
        if spec.base_image:
            args["BASE_IMAGE"] = spec.base_image
    else:
        args["BASE_IMAGE"] = spec.ref("base")
    args.update(spec.build_args)
    return args


def _stream_build(client: Any, spec: BuildSpec, dockerfile: str, ref: str, args: dict[str, str], on_line: Line) -> str:
    docker = _sdk()
    tail: deque[str] = deque(maxlen=12)
    step = ""
    image_id = ""
    try:
        stream = client.api.build(
            path=str(spec.context),
            dockerfile=dockerfile,
            tag=ref,
            buildargs=args,
            rm=True,
            forcerm=True,
            pull=False,
            nocache=spec.no_cache,
            decode=True,
        )
        for chunk in stream:
            for line in _ANSI.sub("", str(chunk.get("stream") or "")).splitlines():
                if line.strip():
                    tail.append(line)
                    step = line if line.startswith("Step ") else step
                    on_line(line)
            if "aux" in chunk and isinstance(chunk["aux"], dict) and "ID" in chunk["aux"]:
                image_id = str(chunk["aux"]["ID"])
            if "error" in chunk:
                message = " ".join(_ANSI.sub("", str(chunk["error"])).split())
                code = re.fullmatch(r"The command .* returned a non-zero code: (\d+)", message)
                message = f"exit code {code.group(1)}" if code else message
                at = f" at '{ellipsize(step, 100)}'" if step else ""
                said = [t for t in tail if not t.startswith(("Step ", " --->", "Removing intermediate"))]
                why = f"{ellipsize(' '.join(said[-1].split()), 300)} " if said else ""
                raise DockerError(f"building {ref} from {dockerfile} failed{at}: {why}({ellipsize(message, 300)})")
    except docker.errors.APIError as exc:
        raise DockerError(f"building {ref} from {dockerfile} failed: {_first_line(exc)}") from None
    except docker.errors.DockerException as exc:
        raise DockerError(f"building {ref} from {dockerfile} failed: {_first_line(exc)}") from None
    if not image_id and not any(line.startswith("Successfully built") for line in tail):
        raise DockerError(f"building {ref} from {dockerfile}: the engine ended the build without an image")
    return image_id


def build_images(client: Any, spec: BuildSpec, on_line: Line = lambda line: None) -> list[BuiltImage]:
    """Build the spec's targets in order (base before debug), each tagged ``spec.ref(target)``."""
    built: list[BuiltImage] = []
    for target in [t for t in TARGETS if t in spec.targets]:
        dockerfile = BASE_DOCKERFILE if target == "base" else DEBUG_DOCKERFILE
        if not (spec.context / dockerfile).is_file():
            raise DockerError(f"no {dockerfile} in {spec.context}: `mltest init` writes the Dockerfiles into a project")
        ref = spec.ref(target)
        if target == "debug" and "base" not in spec.targets:
            image_info(client, spec.ref("base"))  # the debug image builds FROM it: say so if it is missing
        started = time.perf_counter()
        _stream_build(client, spec, dockerfile, ref, _build_args(spec, target, ref), on_line)
        seconds = time.perf_counter() - started
        built.append(BuiltImage(target, ref, image_info(client, ref), seconds))  # type: ignore[arg-type]
    return built


def push_image(client: Any, ref: str, on_line: Line = lambda line: None) -> None:
    """Push one tag to its registry (credentials from ``docker login``'s config)."""
    docker = _sdk()
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    repository, tag = (ref[:colon], ref[colon + 1 :]) if colon > slash else (ref, "latest")
    try:
        for chunk in client.api.push(repository, tag=tag, stream=True, decode=True):
            if "error" in chunk:
                raise DockerError(f"pushing {ref} failed: {' '.join(str(chunk['error']).split())[:300]}")
            if chunk.get("status") and not chunk.get("id"):
                on_line(str(chunk["status"]))
    except docker.errors.APIError as exc:
        raise DockerError(f"pushing {ref} failed: {_first_line(exc)}") from None


def _distribution_name(context: Path) -> str | None:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on Python 3.10 only
        import tomli as tomllib
    try:
        with open(context / "pyproject.toml", "rb") as f:
            name = tomllib.load(f).get("project", {}).get("name")
    except (OSError, ValueError):
        return None
    return re.sub(r"[-_.]+", "_", name).lower() if isinstance(name, str) else None


@contextmanager
def staged_wheelhouse(context: Path, wheelhouse: Path | None) -> Iterator[int]:
    """Put the wheels of ``wheelhouse`` into the build context's ``.mltest-wheelhouse/`` for one build.

    Yields how many wheels the build will see (0: pip installs from the index). The project's own
    wheel is left out: the image builds it from source, and keeping it out keeps the dependency
    layer cached across commits. Files this added are removed afterwards; a wheelhouse folder that
    was already there is left as it was.
    """
    target = context / WHEELHOUSE_DIR
    if wheelhouse is None:
        yield len(list(target.glob("*.whl"))) if target.is_dir() else 0
        return
    if not wheelhouse.is_dir():
        raise DockerError(
            f"--wheelhouse {wheelhouse}: no such directory; make one with: "
            f"pip wheel -w {wheelhouse} '.[test]' torch setuptools wheel"
        )
    own = _distribution_name(context)
    wheels = sorted(w for w in wheelhouse.glob("*.whl") if own is None or not w.name.lower().startswith(f"{own}-"))
    if not wheels:
        raise DockerError(f"--wheelhouse {wheelhouse}: it holds no wheels of the project's dependencies")
    created = not target.exists()
    target.mkdir(exist_ok=True)
    added: list[Path] = []
    try:
        for wheel in wheels:
            dest = target / wheel.name
            if dest.exists():
                continue
            try:
                os.link(wheel, dest)
            except OSError:  # another file system: copy (keeping the time stamps the cache compares)
                shutil.copy2(wheel, dest)
            added.append(dest)
        yield len(list(target.glob("*.whl")))
    finally:
        for dest in added:
            dest.unlink(missing_ok=True)
        if created:
            shutil.rmtree(target, ignore_errors=True)


# ----------------------------------------------------------------------------- where the bytes are

_LIST_PATHS = (
    "du -xk -d 8 / 2>/dev/null; echo '--files--'; find / -xdev -type f -size +8M -exec du -k {} + 2>/dev/null; true"
)


def informative_dirs(entries: Sequence[PathSize], top: int, share: float = 0.7) -> list[PathSize]:
    """The directories that say where the bytes are: no single listed child holds ``share`` of them.

    ``/opt`` is left out when ``/opt/venv`` holds nearly all of it; ``site-packages``, whose bytes
    are spread over many packages, is kept. Leaves of the listing are kept too. Largest first.
    """
    largest_child: dict[str, int] = {}
    for entry in entries:
        parent = entry.path.rsplit("/", 1)[0] or "/"
        if parent != entry.path:
            largest_child[parent] = max(largest_child.get(parent, 0), entry.size)
    total = max((e.size for e in entries if e.path == "/"), default=0) or max((e.size for e in entries), default=0)
    keep = [
        e for e in entries if e.path != "/" and e.size >= total * 0.01 and largest_child.get(e.path, 0) < share * e.size
    ]
    return sorted(keep, key=lambda e: (-e.size, e.path))[:top]


def largest_paths(client: Any, ref: str, top: int = 12) -> tuple[list[PathSize], list[PathSize]]:
    """(directories, files): where an image's bytes are, read with ``du``/``find`` in a throwaway container."""
    docker = _sdk()
    image_info(client, ref)
    try:
        output = client.containers.run(
            ref, ["-c", _LIST_PATHS], entrypoint=["sh"], user="0", remove=True, network_disabled=True, stderr=False
        )
    except (docker.errors.ContainerError, docker.errors.APIError) as exc:
        raise DockerError(
            f"cannot list the paths of {ref}: running `sh`, `du` and `find` in it failed ({_first_line(exc)})"
        ) from None
    dirs: list[PathSize] = []
    files: list[PathSize] = []
    into = dirs
    for raw in output.decode("utf-8", "replace").splitlines():
        if raw == "--files--":
            into = files
            continue
        size, _, path = raw.partition("\t")
        if size.isdigit() and path.startswith("/"):
            into.append(PathSize(path, int(size) * 1024))
    files.sort(key=lambda p: (-p.size, p.path))
    return informative_dirs(dirs, top), files[:top]
