# mltest debug image: the base image plus the tools people want when something goes wrong.
#
#   docker build -f dockerfiles/debug.Dockerfile --build-arg BASE_IMAGE=myproject:base -t myproject:debug .
#   docker run --rm -it --cap-add SYS_PTRACE myproject:debug bash      (gdb, strace and py-spy need ptrace)
#
# Built FROM the base image, so it shares every base layer (`docker history` shows them at the bottom)
# and adds only its own on top: vim, less, procps, gdb, strace from Debian; ipython, matplotlib and
# py-spy into the project's virtualenv; nvtop/nvitop for the CUDA variant. Classic builder compatible.
# Offline: the same .mltest-wheelhouse/ as the base build (it must hold these tools' wheels too).
ARG BASE_IMAGE=mltest:base

# ---------------------------------------------------------------------------------------- tools
# Python tools, resolved against what the base venv already has and installed into their own
# directory, so the debug layer holds only what is new (no second numpy) and no wheel files.
FROM ${BASE_IMAGE} AS tools
ARG VARIANT=cpu
ARG DEBUG_PACKAGES="ipython matplotlib py-spy"
USER 0
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
WORKDIR /build
COPY dockerfiles/requirements.py .mltest-wheelhouse* /build/
RUN source=(); if compgen -G '/build/*.whl' >/dev/null; then source=(--no-index --find-links /build); fi \
    && read -ra packages <<< "$DEBUG_PACKAGES" \
    && if [ "$VARIANT" = cuda ]; then packages+=(nvitop); fi \
    && /opt/venv/bin/pip install --dry-run --quiet --no-cache-dir "${source[@]}" --report /build/plan.json "${packages[@]}" \
    && /opt/venv/bin/python -c 'import json; print("\n".join(i["metadata"]["name"] + "==" + i["metadata"]["version"] for i in json.load(open("/build/plan.json"))["install"]))' > /build/new.txt \
    && /opt/venv/bin/pip install --no-deps --no-cache-dir "${source[@]}" --target /opt/debug -r /build/new.txt
USER 1000:1000

# ---------------------------------------------------------------------------------------- debug
FROM ${BASE_IMAGE} AS debug
ARG VARIANT=cpu
USER 0
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# nvtop is in Debian's contrib section; it is only useful (and only installed) for the CUDA variant.
RUN if [ "$VARIANT" = cuda ]; then \
      sed -i 's/^Components: main$/Components: main contrib/' /etc/apt/sources.list.d/*.sources 2>/dev/null || true; \
      sed -i -E 's#^(deb .* bookworm[^ ]*) main$#\1 main contrib#' /etc/apt/sources.list 2>/dev/null || true; \
      extra=(nvtop); \
    else extra=(); fi \
    && apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
         vim less procps gdb strace "${extra[@]}" \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/debconf/*-old /var/log/apt /var/log/dpkg.log
COPY --from=tools /opt/debug /opt/debug
RUN /opt/venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' \
    | xargs -I{} sh -c 'echo /opt/debug > {}/mltest-debug.pth'
ENV PATH=/opt/debug/bin:$PATH \
    MPLBACKEND=Agg
USER 1000:1000
CMD ["bash"]
ARG COMMIT=unknown
ARG VERSION=unknown
ARG IMAGE=
LABEL org.opencontainers.image.title="mltest debug" \
      org.opencontainers.image.revision=$COMMIT \
      org.opencontainers.image.version=$VERSION \
      io.mltest.variant=$VARIANT \
      io.mltest.image=$IMAGE
ENV MLTEST_IMAGE=$IMAGE
