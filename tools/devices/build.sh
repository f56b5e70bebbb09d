#!/usr/bin/env bash
# Builds the device plugins the node tests use:
#   generic-device-plugin  github.com/squat/generic-device-plugin (device plugin
#                          API v1beta1; no replace lines, so go install works)
#   dra-test-driver        k8s.io/kubernetes/test/e2e/dra/test-driver at
#                          v$K8S_VERSION (DRA kubelet plugin), through a wrapper
#                          module pinning the staging modules like tools/k8s/build.sh
# and copies dra-deviceclass.yaml (the DeviceClass the DRA driver expects) next
# to them.
#
# Output: $WASMLET_CACHE/devices/k8s$K8S_VERSION-gdp$GENERIC_DEVICE_PLUGIN_VERSION/bin,
# each binary built only when missing. Prints the bin dir as the last line of stdout.
#
#   tools/devices/build.sh
set -euo pipefail

TAG=devices-build
# shellcheck source=tools/lib/gobuild.sh
. "$(dirname "$0")/../lib/gobuild.sh"
GENERIC_DEVICE_PLUGIN_VERSION=${GENERIC_DEVICE_PLUGIN_VERSION:-$(cat "$TOOLS_DIR/devices/GENERIC_DEVICE_PLUGIN_VERSION")}
ROOT="$CACHE/devices/k8s$K8S_VERSION-gdp$GENERIC_DEVICE_PLUGIN_VERSION"
BIN="$ROOT/bin"

lock_root "$ROOT"
mkdir -p "$BIN" "$ROOT/out"
start=$(date +%s)

if missing_in "$BIN" generic-device-plugin; then
  t=$(date +%s)
  log "building generic-device-plugin $GENERIC_DEVICE_PLUGIN_VERSION"
  install_to "$BIN" -ldflags "-s -w -X github.com/squat/generic-device-plugin/version.Version=$GENERIC_DEVICE_PLUGIN_VERSION" \
    -- "github.com/squat/generic-device-plugin@$GENERIC_DEVICE_PLUGIN_VERSION"
  log "generic-device-plugin built in $(since "$t")s"
fi

if missing_in "$BIN" dra-test-driver; then
  t=$(date +%s)
  pkg=k8s.io/kubernetes/test/e2e/dra/test-driver
  log "building dra-test-driver ($pkg v$K8S_VERSION) in $ROOT/dra-module"
  k8s_wrapper_module "$ROOT/dra-module" "$pkg"
  nicego build -trimpath -ldflags "$(k8s_ldflags)" -o "$ROOT/out/dra-test-driver" "$pkg"
  mv "$ROOT/out/dra-test-driver" "$BIN/"
  log "dra-test-driver built in $(since "$t")s"
fi

cmp -s "$TOOLS_DIR/devices/dra-deviceclass.yaml" "$BIN/dra-deviceclass.yaml" ||
  cp "$TOOLS_DIR/devices/dra-deviceclass.yaml" "$BIN/dra-deviceclass.yaml"

log "devices ready in $(since "$start")s: $BIN"
echo "$BIN"
