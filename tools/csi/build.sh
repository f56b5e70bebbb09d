#!/usr/bin/env bash
# Builds the CSI pieces the node tests use:
#   csi-mock-driver  tools/csi/mock-driver/main.go (ours) around upstream's e2e
#                    mock CSI driver from k8s.io/kubernetes@v$K8S_VERSION, plus
#                    the kubelet plugin-registration service
#   csi-provisioner  github.com/kubernetes-csi/external-provisioner/v6
#   csi-attacher     github.com/kubernetes-csi/external-attacher/v4
# Each gets its own wrapper module: the k8s one pins k8s.io/kubernetes'
# staging modules as tools/k8s/build.sh does, and the side-cars carry their
# upstream replace lines (which only act in a main module) and raise the CSI
# spec and k8s.io modules past what k8s.io/kubernetes pins.
#
# Output: $WASMLET_CACHE/csi/k8s$K8S_VERSION-provisioner$P-attacher$A/bin, each
# binary built only when missing (the mock also when main.go changed). Prints
# the bin dir as the last line of stdout.
#
#   tools/csi/build.sh
set -euo pipefail

TAG=csi-build
# shellcheck source=tools/lib/gobuild.sh
. "$(dirname "$0")/../lib/gobuild.sh"
PROVISIONER_VERSION=${PROVISIONER_VERSION:-$(cat "$TOOLS_DIR/csi/PROVISIONER_VERSION")}
ATTACHER_VERSION=${ATTACHER_VERSION:-$(cat "$TOOLS_DIR/csi/ATTACHER_VERSION")}
ROOT="$CACHE/csi/k8s$K8S_VERSION-provisioner$PROVISIONER_VERSION-attacher$ATTACHER_VERSION"
BIN="$ROOT/bin"
MOCK_SRC="$TOOLS_DIR/csi/mock-driver/main.go"

lock_root "$ROOT"
mkdir -p "$BIN" "$ROOT/out"
start=$(date +%s)

build_mock() {
  local sum stamp="$BIN/.csi-mock-driver.sha256"
  sum=$(sha256sum < "$MOCK_SRC" | cut -d' ' -f1)
  if ! missing_in "$BIN" csi-mock-driver && [ "$(cat "$stamp" 2>/dev/null)" = "$sum" ]; then
    return 0
  fi
  local t dir="$ROOT/mock-module"
  t=$(date +%s)
  log "building csi-mock-driver (k8s.io/kubernetes v$K8S_VERSION) in $dir"
  k8s_wrapper_init "$dir"
  mkdir -p cmd/csi-mock-driver && cp "$MOCK_SRC" cmd/csi-mock-driver/main.go
  k8s_wrapper_finish
  nicego build -trimpath -ldflags "-s -w" -o "$ROOT/out/csi-mock-driver" ./cmd/csi-mock-driver
  mv "$ROOT/out/csi-mock-driver" "$BIN/" && echo "$sum" > "$stamp"
  log "csi-mock-driver built in $(since "$t")s"
}

# build_sidecar BINARY MODULE VERSION
build_sidecar() {
  missing_in "$BIN" "$1" || return 0
  local t dir="$ROOT/$1-module"
  t=$(date +%s)
  log "building $1 ($2 v$3) in $dir"
  replace_wrapper_module "$dir" "$2" "v$3" "$2/cmd/$1"
  log "$1: CSI spec $(go list -m -f '{{.Version}}' github.com/container-storage-interface/spec)," \
    "client-go $(go list -m -f '{{if .Replace}}{{.Replace.Version}}{{else}}{{.Version}}{{end}}' k8s.io/client-go)"
  nicego build -trimpath -ldflags "-s -w -X main.version=v$3" -o "$ROOT/out/$1" "$2/cmd/$1"
  mv "$ROOT/out/$1" "$BIN/"
  log "$1 built in $(since "$t")s"
}

build_mock
build_sidecar csi-provisioner github.com/kubernetes-csi/external-provisioner/v6 "$PROVISIONER_VERSION"
build_sidecar csi-attacher github.com/kubernetes-csi/external-attacher/v4 "$ATTACHER_VERSION"
log "CSI ready in $(since "$start")s: $BIN"
echo "$BIN"
