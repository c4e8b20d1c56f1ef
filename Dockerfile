# syntax=docker/dockerfile:1
#
# One image for the bot, the worker and the node probe / capture pods:
#   docker build -t aksdns:0.1.0 .
#   docker run --rm aksdns:0.1.0 bot            # Socket Mode bot
#   docker run --rm aksdns:0.1.0 worker         # RQ worker (the default command)
#   docker run --rm aksdns:0.1.0 probe node-dns # what probe pods run
#
# Stages: `rust` only lends its toolchain; `builder` builds the wheels of the
# compiled core (native/, Rust + PyO3, abi3) and of the project and installs
# them into a virtualenv on Debian's Python 3.11; the final stage copies that
# virtualenv onto the same Debian base with the same Python, adds tcpdump and
# tini, and runs as an unprivileged user.
#
# The bases are plain Debian images (debian:12.N-slim and the Rust image of
# the same release), pinned by version tag; pin digests too in your registry.
# scripts/image makes both bases locally from Debian's packages (mmdebstrap)
# under these names, so this same file also builds where no registry is
# reachable (CI).

FROM rust:1.95.0-slim-bookworm AS rust

FROM debian:12.15-slim AS builder
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Python from Debian (the final stage installs the same package, so the
# virtualenv's interpreter path exists there); a C toolchain links the Rust
# extension. Neither the C toolchain nor Rust reaches the final stage.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
       python3.11 python3.11-venv gcc libc6-dev ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=rust /usr/local/cargo /usr/local/cargo
COPY --from=rust /usr/local/rustup /usr/local/rustup
ENV CARGO_HOME=/usr/local/cargo \
    RUSTUP_HOME=/usr/local/rustup \
    PATH=/opt/aksdns/bin:/usr/local/cargo/bin:$PATH \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
RUN python3.11 -m venv /opt/aksdns
WORKDIR /src
# Dependencies first, from pyproject.toml alone: this layer survives source changes.
# (The project's own packages, such as aksdns-native, are built from source below.)
COPY pyproject.toml ./
RUN python -c 'import tomllib; deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]; \
print("\n".join(d for d in deps if not d.startswith("aksdns")))' > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt
# The compiled core next, from native/ alone: a Python-only change does not rebuild Rust.
COPY native/ native/
RUN pip wheel --no-deps --wheel-dir /wheels ./native
# The build context is an allowlist (.dockerignore): sources and pyproject files only.
COPY . .
# Then trim what never runs: pip itself, the dependencies' test suites, and the
# Kubernetes client's asyncio copy (kubernetes.aio, about 70 MB; aksdns uses the
# synchronous client only, and a test checks that nothing imports the other).
RUN pip wheel --no-deps --wheel-dir /wheels . \
    && pip install --no-deps /wheels/*.whl \
    && aksdns --help > /dev/null \
    && python -m pip uninstall -y pip setuptools wheel \
    && site=/opt/aksdns/lib/python3.11/site-packages \
    && rm -rf "$site/kubernetes/aio" \
    && find "$site" -mindepth 2 -depth -type d -name tests -exec rm -rf {} +

FROM debian:12.15-slim
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="aksdns" \
      org.opencontainers.image.description="Slack ChatOps bot for DNS troubleshooting in AKS: bot, worker and probe pods" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT"
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# Debian's Python (the virtualenv's interpreter); tcpdump for capture pods; tini
# reaps the worker's job processes as PID 1; CA certificates for Slack's API.
# tcpdump gets exactly NET_RAW and NET_ADMIN as file capabilities: Kubernetes
# sets no ambient capabilities, so an unprivileged user's program only gains
# the capabilities a pod adds through file capabilities (libcap2-bin sets them
# and is removed again). Set-user-ID bits are cleared: capture pods run without
# no_new_privs (file capabilities need that), and nothing else may escalate.
# Versions follow the pinned Debian release of the base image.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.11 ca-certificates tcpdump tini libcap2-bin \
    && setcap cap_net_raw,cap_net_admin=eip /usr/bin/tcpdump \
    && apt-get purge -y --auto-remove libcap2-bin \
    && rm -rf /var/lib/apt/lists/* \
    && find / -xdev -type f -perm /6000 -exec chmod ug-s {} + \
    && groupadd --system --gid 10001 aksdns \
    && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --no-create-home \
       --shell /usr/sbin/nologin aksdns
COPY --from=builder /opt/aksdns /opt/aksdns
# The root filesystem is read-only in the cluster: caches and scratch go to /tmp
# (an emptyDir there).
ENV PATH=/opt/aksdns/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
WORKDIR /tmp
# Numeric so that runAsNonRoot can verify it. Capture pods run as this user
# too, with exactly NET_RAW + NET_ADMIN added (see README.md, "Capture pods").
USER 10001:10001
ENTRYPOINT ["/usr/bin/tini", "--", "aksdns"]
CMD ["worker"]
