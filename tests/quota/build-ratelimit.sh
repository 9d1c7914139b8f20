#!/usr/bin/env bash
# Builds envoyproxy/ratelimit (Envoy's rate-limit service, gRPC ShouldRateLimit over Redis) from its Go
# module at a pinned version and caches the binary outside the repo, as tests/k8s/build-kube-apiserver.sh
# does for kube-apiserver. Idempotent: a cached binary is reused.
#
# The module has no release tags the Go module proxy serves, so the pin is a pseudo-version (a commit of
# main). The plugin relies on two things this version has: a per-descriptor hits_addend (0 = check
# only, src/utils/utilities.go) and a descriptor's `limit` override (src/config/config_impl.go).
#
# Usage: tests/quota/build-ratelimit.sh      prints the binary's path on the last line of stdout
# Env:   RATELIMIT_VERSION (default below), LLM_GATEWAY_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/llm-gateway)
set -euo pipefail

# Keep in step with RATELIMIT_VERSION in tests/quota/services.ts.
RATELIMIT_VERSION="${RATELIMIT_VERSION:-v1.4.1-0.20260122083618-3fb702589d36}"
MODULE="github.com/envoyproxy/ratelimit"
export HOME="${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}"
CACHE_ROOT="${LLM_GATEWAY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/llm-gateway}"
OUT_DIR="$CACHE_ROOT/ratelimit/$RATELIMIT_VERSION"
BIN="$OUT_DIR/ratelimit"

log() { echo "build-ratelimit: $*" >&2; }

if [[ -x "$BIN" ]]; then
  log "cached: $BIN"
  echo "$BIN"
  exit 0
fi

command -v go >/dev/null || { log "go is not on PATH"; exit 1; }
mkdir -p "$OUT_DIR"
export CGO_ENABLED=0 GOWORK=off GOFLAGS=

# Which Go the pinned version wants (its go directive), and whether the local Go is new enough.
GOMOD="$(cd "$OUT_DIR" && GOTOOLCHAIN=local go mod download -json "$MODULE@$RATELIMIT_VERSION" \
  | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
[[ -f "$GOMOD" ]] || { log "could not download $MODULE@$RATELIMIT_VERSION"; exit 1; }
GO_WANT="$(awk '$1=="go"{print $2; exit}' "$GOMOD")"
GO_HAVE="$(go env GOVERSION | sed 's/^go//')"
if [[ "$(printf '%s\n%s\n' "$GO_WANT" "$GO_HAVE" | sort -V | head -n1)" == "$GO_WANT" ]]; then
  export GOTOOLCHAIN=local
else
  log "local Go $GO_HAVE is older than the go $GO_WANT that $RATELIMIT_VERSION declares; letting go fetch a toolchain"
  export GOTOOLCHAIN="go${GO_WANT}"
fi

GOBIN_DIR="$OUT_DIR/bin.tmp.$$"
trap 'rm -rf "$GOBIN_DIR"' EXIT
start=$(date +%s)
log "building $MODULE/src/service_cmd@$RATELIMIT_VERSION (GOTOOLCHAIN=$GOTOOLCHAIN)"
(cd "$OUT_DIR" && GOBIN="$GOBIN_DIR" nice -n 10 go install -trimpath -ldflags='-s -w' "$MODULE/src/service_cmd@$RATELIMIT_VERSION")
mv -f "$GOBIN_DIR/service_cmd" "$BIN"
log "built in $(($(date +%s) - start)) s, $(stat -c %s "$BIN") bytes"
echo "$BIN"
