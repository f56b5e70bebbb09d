#!/usr/bin/env bash
# Builds kwok (sigs.k8s.io/kwok/cmd/kwok) and writes stages.yaml next to it:
# the module's own fast node/pod stages and the node heartbeat with a Lease
# (without stages kwok refuses to start: "no stages found").
#
# Output: $WASMLET_CACHE/kwok/v$KWOK_VERSION/bin/{kwok,stages.yaml}, built only
# when missing. Prints the bin dir as the last line of stdout.
#
#   tools/kwok/build.sh
#   KWOK_VERSION=0.8.0 tools/kwok/build.sh
set -euo pipefail

TAG=kwok-build
# shellcheck source=tools/lib/gobuild.sh
. "$(dirname "$0")/../lib/gobuild.sh"
KWOK_VERSION=${KWOK_VERSION:-$(cat "$TOOLS_DIR/kwok/KWOK_VERSION")}
ROOT="$CACHE/kwok/v$KWOK_VERSION"
BIN="$ROOT/bin"
# Relative to the module's kustomize/stage/, concatenated in this order.
STAGES=(node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml
  pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml)

lock_root "$ROOT"
mkdir -p "$BIN"
start=$(date +%s)

if missing_in "$BIN" kwok; then
  log "building kwok v$KWOK_VERSION"
  install_to "$BIN" -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=v$KWOK_VERSION" \
    -- "sigs.k8s.io/kwok/cmd/kwok@v$KWOK_VERSION"
fi

if [ ! -s "$BIN/stages.yaml" ]; then
  dir=$(mod_download Dir "sigs.k8s.io/kwok@v$KWOK_VERSION")
  {
    echo "# kwok stages from sigs.k8s.io/kwok@v$KWOK_VERSION kustomize/stage/: ${STAGES[*]}"
    for s in "${STAGES[@]}"; do
      [ -f "$dir/kustomize/stage/$s" ] || die "missing stage $s in $dir"
      echo "---"
      cat "$dir/kustomize/stage/$s"
    done
  } > "$BIN/stages.yaml.tmp"
  mv "$BIN/stages.yaml.tmp" "$BIN/stages.yaml"
  log "wrote $BIN/stages.yaml (${#STAGES[@]} stages)"
fi

log "kwok ready in $(since "$start")s: $BIN"
echo "$BIN"
