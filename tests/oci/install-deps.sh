#!/usr/bin/env bash
# Installs the Debian packages the OCI image tests use, only when one is missing:
#   docker-registry  CNCF distribution 2.8 (the registry the tests push to)
#   skopeo           an independent client that pulls the pushed image back
#   apache2-utils    htpasswd, to write a bcrypt htpasswd for the auth tests
#   openssl          a throwaway certificate for the token-auth (Bearer) registry test
# Idempotent; needs root (CI runs as root). Safe to call from .ci/run.
set -euo pipefail

need=()
command -v docker-registry >/dev/null 2>&1 || [ -x /usr/bin/docker-registry ] || need+=(docker-registry)
command -v skopeo >/dev/null 2>&1 || need+=(skopeo)
command -v htpasswd >/dev/null 2>&1 || need+=(apache2-utils)
command -v openssl >/dev/null 2>&1 || need+=(openssl)

if [ "${#need[@]}" -eq 0 ]; then
  echo "install-deps: docker-registry, skopeo, htpasswd and openssl already present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi

echo "install-deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}"
