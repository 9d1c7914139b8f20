#!/usr/bin/env bash
# Installs what tests/k8s needs from Debian: etcd (package etcd-server). Idempotent; run as root in CI.
# kube-apiserver is built from source by tests/k8s/build-kube-apiserver.sh (Debian does not ship it).
set -euo pipefail

if command -v etcd >/dev/null 2>&1; then
  echo "install-deps: etcd present: $(etcd --version 2>/dev/null | head -n1)"
  exit 0
fi
SUDO=""
if [[ "$(id -u)" != 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
# etcd-server's postinst may try to start a system service; there is no init system in CI containers and
# the tests start their own etcd, so a policy-rc.d refusal keeps the package from starting one.
POLICY=/usr/sbin/policy-rc.d
ADDED_POLICY=0
if [[ ! -e "$POLICY" ]]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod +x "$POLICY"
  ADDED_POLICY=1
fi
trap '[[ $ADDED_POLICY == 1 ]] && $SUDO rm -f "$POLICY"' EXIT
$SUDO apt-get install -y --no-install-recommends etcd-server
echo "install-deps: installed $(etcd --version | head -n1)"
