# mltest base image: the slim runtime for CI runners and training jobs.
#
# Build (from the repository root; `mltest docker build` does this and more):
#   docker build -f dockerfiles/base.Dockerfile --build-arg VARIANT=cpu -t myproject:base .
# Run the unit tier inside it:       docker run --rm myproject:base mltest run unit
# Run the integration tier on GPUs:  docker run --rm --gpus all myproject:base mltest run integration
#
# Works with the classic builder (no BuildKit features: no RUN --mount, no heredocs), so the docker
# Python SDK can drive it. Stages:
#   os      the OS and a Python >= 3.11 interpreter, shared by every stage (and by the final image)
#   deps    a virtualenv with the project's dependencies and torch, installed from wheels only
#   app     the project built into a wheel and installed beside the venv; the cleaned source tree
#   base    (final) os + deps venv + project + source, non-root, no compiler, no pip or apt caches
# Layer order is for the cache: the dependency layer depends on pyproject.toml and the wheelhouse
# only, so a code-only change rebuilds just the small project and source layers at the top.
#
# BASE_IMAGE: the OS/Python base. The default is the official Python slim image on Debian bookworm,
# pinned by digest (refresh with `docker buildx imagetools inspect python:3.11-slim-bookworm`).
# Any Debian/Ubuntu root file system works: without a python3 the os stage installs Debian's.
# Offline/air-gapped: put wheels in .mltest-wheelhouse/ (or `mltest docker build --wheelhouse DIR`);
# when it holds any wheel, pip installs with --no-index from it alone.
ARG BASE_IMAGE=python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91

# ---------------------------------------------------------------------------------------------- os
FROM ${BASE_IMAGE} AS os
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV LANG=C.UTF-8 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN if ! command -v python3 >/dev/null; then \
      apt-get update \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 ca-certificates \
      && apt-get clean \
      && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/debconf/*-old /var/log/apt /var/log/dpkg.log; \
    fi \
    && python3 -c 'import sys; assert sys.version_info >= (3, 11), "the base image needs Python >= 3.11"'

# -------------------------------------------------------------------------------------------- deps
FROM os AS deps
# cpu | cuda. Both install torch from wheels; the CUDA wheels carry their own CUDA libraries, so no
# CUDA base image is needed (the host driver comes from the NVIDIA container runtime).
ARG VARIANT=cpu
# The project's extras to install beside its dependencies (comma-separated), mltest itself (so
# that `mltest run` works; dropped in mltest's own repository) and the torch requirement ("" for
# none of either). TORCH_INDEX_URL: where pip looks for torch when online.
ARG EXTRAS=test
ARG MLTEST=mltest
ARG TORCH=torch
ARG TORCH_INDEX_URL=
# (SHELL again after the ARGs: hadolint forgets it across ARG lines; Docker does not.)
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN python3 -c 'import ensurepip' 2>/dev/null || { \
      apt-get update \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-venv \
      && rm -rf /var/lib/apt/lists/*; }
WORKDIR /build
# The glob keeps the build working when there is no wheelhouse; its wheels land in /build/.
COPY pyproject.toml dockerfiles/requirements.py .mltest-wheelhouse* /build/
RUN case "$VARIANT" in cpu|cuda) ;; *) echo "VARIANT must be cpu or cuda, not '$VARIANT'" >&2; exit 2;; esac \
    && python3 requirements.py pyproject.toml "$EXTRAS" "$MLTEST" "$TORCH" > requirements.txt \
    && if compgen -G '/build/*.whl' >/dev/null; then \
         source=(--no-index --find-links /build); \
       elif [ "$VARIANT" = cpu ]; then \
         source=(--extra-index-url "${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}"); \
       elif [ -n "$TORCH_INDEX_URL" ]; then \
         source=(--extra-index-url "$TORCH_INDEX_URL"); \
       else source=(); fi \
    && python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir "${source[@]}" -r requirements.txt \
    # Prune what cannot run here: C/C++ headers (the image has no compiler), torch's C++ test
    # executables and test libraries, and third-party test suites. Never loaded by Python.
    && site="$(/opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
    && rm -rf "$site/torch/include" "$site/torch/test" "$site"/torch/lib/lib*test*.so \
              "$site/torch/lib/libbackend_with_compiler.so" "$site/torch/lib/libaoti_custom_ops.so" \
    && find "$site/torch/bin" -mindepth 1 -maxdepth 1 ! -name torch_shm_manager -exec rm -rf {} + \
    && find "$site" -mindepth 2 -depth -type d -name tests -exec rm -rf {} + \
    && echo /opt/project > "$site/mltest-project.pth"

# --------------------------------------------------------------------------------------------- app
FROM deps AS app
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
COPY . /src
RUN source=(); if compgen -G '/build/*.whl' >/dev/null; then source=(--no-index --find-links /build); fi \
    && /opt/venv/bin/pip wheel --no-deps --no-cache-dir "${source[@]}" --wheel-dir /dist /src \
    && /opt/venv/bin/pip install --no-deps --no-cache-dir --no-index --target /opt/project /dist/*.whl \
    && rm -rf /src/.mltest-wheelhouse /src/build /src/*.egg-info

# ---------------------------------------------------------------------------------------- base
FROM os AS base
ARG VARIANT=cpu
# git: CI checkouts inside the container need it (without it actions/checkout fetches a tarball with
# no history), and mltest reads the commit and its first-parent history from it.
ARG OS_PACKAGES="git ca-certificates"
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
RUN read -ra packages <<< "$OS_PACKAGES" \
    && if [ "${#packages[@]}" -gt 0 ]; then \
      apt-get update \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${packages[@]}" \
      && apt-get clean \
      && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/debconf/*-old /var/log/apt /var/log/dpkg.log; \
    fi \
    && useradd --create-home --uid 1000 --user-group --shell /bin/bash mltest
# Dependencies first (large, changes rarely), then the project and its source (small, every commit).
COPY --from=deps /opt/venv /opt/venv
COPY --from=app /opt/project /opt/project
COPY --from=app --chown=1000:1000 /src /workspace
ENV PATH=/opt/project/bin:/opt/venv/bin:$PATH \
    MLTEST_IMAGE_VARIANT=$VARIANT \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
USER 1000:1000
WORKDIR /workspace
CMD ["mltest", "run", "unit"]
# Labels last: a new commit changes only this metadata step.
ARG COMMIT=unknown
ARG VERSION=unknown
ARG IMAGE=
LABEL org.opencontainers.image.title="mltest base" \
      org.opencontainers.image.revision=$COMMIT \
      org.opencontainers.image.version=$VERSION \
      io.mltest.variant=$VARIANT \
      io.mltest.image=$IMAGE
ENV MLTEST_IMAGE=$IMAGE
