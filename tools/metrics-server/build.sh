#!/usr/bin/env bash
# Builds metrics-server (sigs.k8s.io/metrics-server/cmd/metrics-server), which
# scrapes the nodes' /metrics/resource for `kubectl top`. Its go.mod has no
# replace lines, so a plain `go install module@version` builds it.
#
# Output: $WASMLET_CACHE/metrics-server/v$METRICS_SERVER_VERSION/bin/metrics-server,
# built only when missing. Prints the bin dir as the last line of stdout.
#
#   tools/metrics-server/build.sh
set -euo pipefail

TAG=metrics-server-build
# shellcheck source=tools/lib/gobuild.sh
. "$(dirname "$0")/../lib/gobuild.sh"
METRICS_SERVER_VERSION=${METRICS_SERVER_VERSION:-$(cat "$TOOLS_DIR/metrics-server/METRICS_SERVER_VERSION")}
ROOT="$CACHE/metrics-server/v$METRICS_SERVER_VERSION"
BIN="$ROOT/bin"

lock_root "$ROOT"
mkdir -p "$BIN"
start=$(date +%s)

if missing_in "$BIN" metrics-server; then
  log "building metrics-server v$METRICS_SERVER_VERSION"
  # Upstream's Makefile stamps its version into client-go's version package.
  p=k8s.io/client-go/pkg/version
  install_to "$BIN" \
    -ldflags "-s -w -X $p.gitVersion=v$METRICS_SERVER_VERSION -X $p.gitCommit=none -X $p.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    -- "sigs.k8s.io/metrics-server/cmd/metrics-server@v$METRICS_SERVER_VERSION"
fi

log "metrics-server ready in $(since "$start")s: $BIN"
echo "$BIN"
