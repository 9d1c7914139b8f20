#!/usr/bin/env bash
# What `make bench` and its smoke test use, installed only where missing (safe to run again):
#   wrk 4.1.0 (the load generator) and nginx-light (the fixed-response backend) from Debian,
#   linux-perf (optional: the split of Envoy's CPU time; the bench skips it when absent),
#   matplotlib (the chart) into the project's virtualenv, pinned.
set -euo pipefail
cd "$(dirname "$0")/../.."

WRK_VERSION=4.1.0
MATPLOTLIB_VERSION=3.10.8

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
apt_install() {
  if [ -z "${APT_UPDATED:-}" ]; then $SUDO apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v taskset >/dev/null || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then apt_install "${need[@]}"; fi
command -v perf >/dev/null || apt_install linux-perf || echo "install-deps: linux-perf unavailable; the bench runs without the perf profile" >&2

# wrk -v prints "wrk debian/4.1.0-3+b2 ..." and exits 1.
if ! (wrk -v 2>&1 || true) | grep -q "/$WRK_VERSION-\| $WRK_VERSION "; then
  echo "install-deps: wrk $WRK_VERSION expected, found: $( (wrk -v 2>&1 || true) | head -1)" >&2
  exit 1
fi

if [ ! -x .venv/bin/python ]; then
  echo "install-deps: no .venv (make venv creates it)" >&2
  exit 1
fi
if ! .venv/bin/python -c "import sys, matplotlib; sys.exit(matplotlib.__version__ != '$MATPLOTLIB_VERSION')" 2>/dev/null; then
  .venv/bin/pip install --quiet --disable-pip-version-check "matplotlib==$MATPLOTLIB_VERSION"
fi
