#!/usr/bin/env bash
# Installs redis-server from Debian for the quota tests (the store behind envoyproxy/ratelimit), only
# when it is missing. Idempotent; needs root or sudo (CI runs as root). The tests start their own
# redis-server on a free loopback port; the packaged service is never started.
set -euo pipefail

if command -v redis-server >/dev/null 2>&1; then
  echo "install-deps: redis-server present: $(redis-server --version | head -n1)"
  exit 0
fi
SUDO=""
if [[ "$(id -u)" != 0 ]]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# redis-server's postinst starts the system service where it can; a policy-rc.d refusal keeps it from
# trying (there is no init system in CI containers, and a system redis would hold port 6379).
POLICY=/usr/sbin/policy-rc.d
ADDED_POLICY=0
if [[ ! -e "$POLICY" ]]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod +x "$POLICY"
  ADDED_POLICY=1
fi
trap '[[ $ADDED_POLICY == 1 ]] && $SUDO rm -f "$POLICY"' EXIT
$SUDO apt-get install -y -qq --no-install-recommends redis-server >/dev/null
echo "install-deps: installed $(redis-server --version | head -n1)"
