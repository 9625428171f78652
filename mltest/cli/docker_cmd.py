"""``mltest docker build`` and ``mltest docker inspect``: the project's base and debug images.

``build`` drives the engine through the docker SDK (classic builder), streams the build steps, tags
``NAME:SHA`` and ``NAME:SHA-debug``, prints size, layer count and the largest layers, and with
``--record`` stores the sizes as metrics of the current commit so image bloat is flagged like any
other regression. ``inspect`` shows where an image's bytes are, by layer and by path.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mltest.cli.options import add_store_flags, store_settings
from mltest.config import Settings
from mltest.docker import (
    TARGETS,
    VARIANTS,
    BuildSpec,
    BuiltImage,
    ImageInfo,
    build_images,
    connect,
    image_info,
    largest_paths,
    push_image,
    shares_layers,
    staged_wheelhouse,
)
from mltest.errors import DockerError, MltestError
from mltest.gitinfo import current_commit
from mltest.model import UNKNOWN_SHA, Measurement
from mltest.report.fmt import clean_text, ellipsize, fmt_value, plural

__all__ = ["IMAGE_TEST_PREFIX", "add_parser", "build", "default_extras", "image_name", "inspect", "record_sizes"]

IMAGE_TEST_PREFIX = "docker::"
"""Image sizes are recorded as the test ``docker::TARGET[VARIANT]`` (metrics image_size, image_layers)."""
EXTRA_CANDIDATES = ("test", "tests", "testing", "dev")
Out = Callable[[str], None]


def image_name(settings: Settings) -> str:
    """The default repository name: the project's name, lowercased, with anything else turned into '-'."""
    name = re.sub(r"[^a-z0-9._/-]+", "-", settings.project_name.lower()).strip("-._/")
    return name or "mltest-project"


def default_extras(root: Path) -> str:
    """The project's test extra (the first of test, tests, testing, dev that pyproject.toml defines), or ''."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on Python 3.10 only
        import tomli as tomllib
    try:
        with open(root / "pyproject.toml", "rb") as f:
            extras = tomllib.load(f).get("project", {}).get("optional-dependencies", {})
    except (OSError, ValueError):
        return ""
    return next((e for e in EXTRA_CANDIDATES if e in extras), "")


def _project_version(root: Path) -> str:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    try:
        with open(root / "pyproject.toml", "rb") as f:
            return str(tomllib.load(f).get("project", {}).get("version") or "unknown")
    except (OSError, ValueError):
        return "unknown"


def _split_tag(tag: str | None, settings: Settings, sha: str) -> tuple[str, str]:
    """``--tag NAME`` or ``--tag NAME:TAG`` -> (repository, tag); the tag defaults to the short sha."""
    default_tag = sha[:12] if sha and sha != UNKNOWN_SHA else "dev"
    if not tag:
        return image_name(settings), default_tag
    slash, colon = tag.rfind("/"), tag.rfind(":")
    if colon > slash:
        return tag[:colon], tag[colon + 1 :]
    return tag, default_tag


def _describe(image: ImageInfo, out: Out, top: int = 5) -> None:
    out(f"  {fmt_value(image.size, 'bytes')}, {plural(image.layer_count, 'layer')}; largest layers:")
    for layer in image.largest_layers(top):
        out(f"    {fmt_value(layer.size, 'bytes'):>10}  {ellipsize(clean_text(layer.created_by), 96)}")


def record_sizes(settings: Settings, images: Sequence[BuiltImage], variant: str) -> str:
    """Record each image's size and layer count as metrics of the current commit, in one run; its id."""
    from mltest.model import TestResult
    from mltest.recorder import Record, open_run

    recorder, _ = open_run(settings, tier="integration", environ=os.environ, import_torch=False)
    try:
        for image in images:
            test = f"{IMAGE_TEST_PREFIX}{image.target}[{variant}]"
            collected: list[Measurement] = []
            record = Record(test, collected.append, settings.metrics)
            record("image_size", float(image.info.size), "bytes", False)
            record("image_layers", float(image.info.layer_count), "layers", False)
            record.flush()
            recorder.add_test(TestResult(test, "passed", image.seconds), collected)
        recorder.finish("passed")
    finally:
        recorder.store.close()
    return recorder.run.run_id


def build(
    settings: Settings,
    *,
    variant: str = "cpu",
    targets: tuple[str, ...] = TARGETS,
    wheelhouse: Path | None = None,
    tag: str | None = None,
    base_image: str | None = None,
    extras: str | None = None,
    torch: str | None = None,
    build_args: dict[str, str] | None = None,
    no_cache: bool = False,
    record: bool = False,
    push: bool = False,
    verbose: bool = False,
    out: Out = print,
) -> list[BuiltImage]:
    root = settings.project_root
    commit = current_commit(root, os.environ).commit
    name, tag_part = _split_tag(tag, settings, commit.sha)
    spec = BuildSpec(
        context=root,
        name=name,
        tag=tag_part,
        variant=variant,
        targets=targets,
        base_image=base_image,
        extras=default_extras(root) if extras is None else extras,
        torch=torch,
        build_args=build_args or {},
        labels={"COMMIT": commit.sha, "VERSION": _project_version(root)},
        no_cache=no_cache,
    )
    client = connect()
    try:
        return _build_with(client, spec, settings, commit.sha, wheelhouse, record, push, verbose, out)
    finally:
        client.close()


def _build_with(
    client: Any,
    spec: BuildSpec,
    settings: Settings,
    sha: str,
    wheelhouse: Path | None,
    record: bool,
    push: bool,
    verbose: bool,
    out: Out,
) -> list[BuiltImage]:
    variant, targets = spec.variant, spec.targets

    def progress(line: str) -> None:
        if verbose or line.startswith("Step "):
            out(f"  {ellipsize(clean_text(line), 150)}")

    with staged_wheelhouse(spec.context, wheelhouse) as wheels:
        source = f"offline, from {plural(wheels, 'wheel')}" if wheels else "pip from the package index"
        out(f"building {', '.join(spec.ref(t) for t in TARGETS if t in targets)} ({variant}; {source})")
        built = build_images(client, spec, progress)
    for image in built:
        out(f"built {image.ref} in {image.seconds:.1f} s")
        _describe(image.info, out)
    by_target = {b.target: b for b in built}
    if "base" in by_target and "debug" in by_target:
        base, debug = by_target["base"].info, by_target["debug"].info
        shared = "shares every base layer" if shares_layers(base, debug) else "DOES NOT share the base layers"
        out(f"debug adds {fmt_value(debug.size - base.size, 'bytes')} on top of base and {shared}")
    if record:
        record_sizes(settings, built, variant)
        out(f"recorded the sizes of {plural(len(built), 'image')} for commit {sha[:12]}")
    if push:
        for image in built:
            out(f"pushing {image.ref}")
            push_image(client, image.ref, lambda line: out(f"  {line}") if verbose else None)
    return built


def inspect(ref: str, *, top: int = 12, out: Out = print) -> ImageInfo:
    client = connect()
    try:
        return _inspect_with(client, ref, top, out)
    finally:
        client.close()


def _inspect_with(client: Any, ref: str, top: int, out: Out) -> ImageInfo:
    info = image_info(client, ref)
    ours = sorted((k, v) for k, v in info.labels.items() if k.startswith(("org.opencontainers", "io.mltest")))
    labels = ", ".join(f"{k}={v}" for k, v in ours)
    out(f"{ref}: {fmt_value(info.size, 'bytes')}, {plural(info.layer_count, 'layer')} ({info.id[:19]})")
    if labels:
        out(f"  labels: {labels}")
    out("layers (oldest first; steps that add no files are left out):")
    for layer in info.history:
        if layer.size > 0:
            share = layer.size / info.size if info.size else 0.0
            out(f"  {fmt_value(layer.size, 'bytes'):>10} {share:6.1%}  {ellipsize(clean_text(layer.created_by), 90)}")
    dirs, files = largest_paths(client, ref, top)
    out("largest directories (where the bytes are spread out):")
    for entry in dirs:
        out(f"  {fmt_value(entry.size, 'bytes'):>10}  {entry.path}")
    out("largest files:")
    for entry in files:
        out(f"  {fmt_value(entry.size, 'bytes'):>10}  {entry.path}")
    return info


# ----------------------------------------------------------------------------- argument wiring


def _build_arg(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
        raise argparse.ArgumentTypeError(f"--build-arg {text!r}: expected KEY=VALUE")
    return key, value


def _top(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"--top {text!r}: expected a whole number >= 1")
    return int(text)


def add_parser(commands: Any) -> None:
    docker = commands.add_parser("docker", help="build and inspect the project's base and debug images")
    sub = docker.add_subparsers(dest="docker_command", metavar="SUBCOMMAND", required=True)
    b = sub.add_parser(
        "build",
        help="build the base and debug images (docker SDK, classic builder), print sizes, optionally record them",
        description=(
            "Build dockerfiles/base.Dockerfile and dockerfiles/debug.Dockerfile from the project root, tagged "
            "NAME:SHA and NAME:SHA-debug (NAME:SHA-cuda... for the CUDA variant)."
        ),
    )
    b.add_argument("--variant", choices=VARIANTS, default="cpu", help="cpu or cuda torch wheels (default: cpu)")
    b.add_argument("--target", choices=(*TARGETS, "all"), default="all", help="what to build (default: all)")
    b.add_argument(
        "--wheelhouse",
        type=Path,
        default=None,
        help="build offline from the wheels in DIR (default: .mltest-wheelhouse/ if it holds wheels, else the index)",
    )
    b.add_argument("--tag", default=None, help="NAME or NAME:TAG (default: the project name and the short sha)")
    b.add_argument("--base-image", default=None, help="BASE_IMAGE: the OS/Python base (default: the pinned slim image)")
    b.add_argument(
        "--extras",
        default=None,
        help="the project's extras to install (default: the first of test, tests, testing, dev it defines)",
    )
    b.add_argument("--torch", default=None, help="the torch requirement, '' for none (default: torch)")
    b.add_argument(
        "--build-arg", type=_build_arg, action="append", default=[], metavar="KEY=VALUE", help="more build arguments"
    )
    b.add_argument("--no-cache", action="store_true", help="do not use the engine's build cache (default: use it)")
    b.add_argument("--record", action="store_true", help="record the sizes for the current commit (default: off)")
    b.add_argument("--push", action="store_true", help="push the tags after building (default: off)")
    b.add_argument("--verbose", action="store_true", help="stream every build line, not just the steps")
    add_store_flags(b)
    b.set_defaults(handler=_build)
    i = sub.add_parser("inspect", help="an image's size by layer and its largest directories and files")
    i.add_argument("image", help="an image the engine has (NAME:TAG or id)")
    i.add_argument("--top", type=_top, default=12, help="how many paths to list (default: 12)")
    i.set_defaults(handler=_inspect)


def _guard(body: Callable[[], object]) -> int:
    try:
        body()
    except MltestError as exc:
        print(f"mltest: error: {exc}", file=sys.stderr)
        return 1 if isinstance(exc, DockerError) else 2
    return 0


def _build(args: argparse.Namespace, extra: list[str]) -> int:
    def body() -> None:
        targets = TARGETS if args.target == "all" else (args.target,)
        build(
            store_settings(args),
            variant=args.variant,
            targets=targets,
            wheelhouse=args.wheelhouse,
            tag=args.tag,
            base_image=args.base_image,
            extras=args.extras,
            torch=args.torch,
            build_args=dict(args.build_arg),
            no_cache=args.no_cache,
            record=args.record,
            push=args.push,
            verbose=args.verbose,
        )

    return _guard(body)


def _inspect(args: argparse.Namespace, extra: list[str]) -> int:
    return _guard(lambda: inspect(args.image, top=args.top))
