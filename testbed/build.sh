#!/usr/bin/env bash
# Build the testbed binaries into ${AKSDNS_CACHE_DIR:-$HOME/.cache/aksdns} (one-time, ~20-30 min cold).
# Usage: testbed/build.sh [helm|coredns|kwok|etcd|kubernetes|metrics-server ...]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="$here/.venv/bin/python"
[ -x "$py" ] || py=python3
cd "$here"
exec "$py" -m testbed.build "$@"
