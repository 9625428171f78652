"""Build and inspect the project's base and debug images through the docker SDK (``mltest[docker]``).

The SDK drives the engine's classic builder (it cannot drive BuildKit), which is why the Dockerfiles
in ``dockerfiles/`` use no BuildKit features. Nothing here touches the results store: the CLI records
the sizes this module measures.
"""

from __future__ import annotations

from mltest.docker.images import (
    BASE_DOCKERFILE,
    DEBUG_DOCKERFILE,
    TARGETS,
    VARIANTS,
    WHEELHOUSE_DIR,
    BuildSpec,
    BuiltImage,
    ImageInfo,
    Layer,
    PathSize,
    build_images,
    connect,
    image_info,
    informative_dirs,
    largest_paths,
    push_image,
    shares_layers,
    staged_wheelhouse,
)

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
