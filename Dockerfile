# syntax=docker/dockerfile:1
#
# One image for the bot, the worker and the node probe / capture pods:
#   docker build -t aksdns:0.1.0 .
#   docker run --rm aksdns:0.1.0 bot            # Socket Mode bot
#   docker run --rm aksdns:0.1.0 worker         # RQ worker (the default command)
#   docker run --rm aksdns:0.1.0 probe node-dns # what probe pods run
#
# Stages: `rust` only lends its toolchain; `builder` builds the wheels of the
# project and of its compiled core (native/, Rust + PyO3, abi3) and installs
# them into a virtualenv; the final stage copies that virtualenv onto the same
# slim Python base, adds tcpdump and tini, and runs as an unprivileged user.
# Base images are pinned by version tag; pin digests too in your registry.

FROM rust:1.90.0-slim-bookworm AS rust

FROM python:3.11.11-slim-bookworm AS builder
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# A C toolchain links the Rust extension; it never reaches the final stage.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
COPY --from=rust /usr/local/cargo /usr/local/cargo
COPY --from=rust /usr/local/rustup /usr/local/rustup
ENV CARGO_HOME=/usr/local/cargo \
    RUSTUP_HOME=/usr/local/rustup \
    PATH=/opt/aksdns/bin:/usr/local/cargo/bin:$PATH \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/aksdns
WORKDIR /src
# Dependencies first, from pyproject.toml alone: this layer survives source changes.
# (The project's own packages, such as aksdns-native, are built from source below.)
COPY pyproject.toml ./
RUN python -c 'import tomllib; deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]; \
print("\n".join(d for d in deps if not d.startswith("aksdns")))' > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt
# The build context is an allowlist (.dockerignore): sources and pyproject files only.
COPY . .
RUN pip wheel --no-deps --wheel-dir /wheels . \
    && if [ -f native/pyproject.toml ]; then pip wheel --no-deps --wheel-dir /wheels ./native; fi \
    && pip install /wheels/*.whl \
    && aksdns --help > /dev/null

FROM python:3.11.11-slim-bookworm
LABEL org.opencontainers.image.title="aksdns" \
      org.opencontainers.image.description="Slack ChatOps bot for DNS troubleshooting in AKS: bot, worker and probe pods" \
      org.opencontainers.image.licenses="MIT"
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# tcpdump for capture pods; tini reaps the worker's job processes as PID 1.
# Versions follow the pinned Debian release of the base image.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends tcpdump tini \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 aksdns \
    && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home \
       --shell /usr/sbin/nologin aksdns
COPY --from=builder /opt/aksdns /opt/aksdns
# The root filesystem is read-only in the cluster: caches and scratch go to /tmp
# (an emptyDir there).
ENV PATH=/opt/aksdns/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    MPLCONFIGDIR=/tmp/matplotlib \
    MPLBACKEND=Agg
WORKDIR /tmp
# Numeric so that runAsNonRoot can verify it. Capture pods override it with
# runAsUser 0 and exactly NET_RAW + NET_ADMIN (see README.md, "Install on AKS (Helm)").
USER 10001:10001
ENTRYPOINT ["/usr/bin/tini", "--", "aksdns"]
CMD ["worker"]
