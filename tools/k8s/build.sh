#!/usr/bin/env bash
# Builds the control plane the test bed runs: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler and kubectl, from Go modules.
#
# Binaries land in $WASMLET_CACHE/k8s/v$K8S_VERSION-etcd$ETCD_VERSION/bin and are
# rebuilt only when one of them is missing. Nothing is written into the repo.
#
#   tools/k8s/build.sh            # build what is missing, print the bin dir
#   K8S_VERSION=1.36.3 tools/k8s/build.sh
set -euo pipefail

TAG=k8s-build
# shellcheck source=tools/lib/gobuild.sh
. "$(dirname "$0")/../lib/gobuild.sh"
ETCD_VERSION=${ETCD_VERSION:-$(cat "$TOOLS_DIR/k8s/ETCD_VERSION")}
ROOT="$CACHE/k8s/v$K8S_VERSION-etcd$ETCD_VERSION"
BIN="$ROOT/bin"
K8S_BINS=(kube-apiserver kube-controller-manager kube-scheduler kubectl)

missing() { missing_in "$BIN" "$@"; }

mkdir -p "$BIN"
# One build at a time per cache (two test beds may start together).
exec 9>"$ROOT/.lock"
flock 9

build_etcd() {
  missing etcd etcdctl || return 0
  local dir="$ROOT/etcd-module"
  log "building etcd v$ETCD_VERSION in $dir"
  rm -rf "$dir" && mkdir -p "$dir" && cd "$dir"
  go mod init local/etcdbin >/dev/null 2>&1
  # etcd's server/go.mod replaces its sibling modules with ../ paths, but requires
  # them at the same published version, so a wrapper needs no replace lines.
  cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "go.etcd.io/etcd/etcdctl/v3"
	_ "go.etcd.io/etcd/server/v3"
)
GO
  go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION" "go.etcd.io/etcd/etcdctl/v3@v$ETCD_VERSION"
  go mod tidy
  check_version go.etcd.io/etcd/server/v3 "v$ETCD_VERSION"
  local ld="-s -w"
  go build -trimpath -ldflags "$ld" -o "$BIN/etcd.tmp" go.etcd.io/etcd/server/v3
  go build -trimpath -ldflags "$ld" -o "$BIN/etcdctl.tmp" go.etcd.io/etcd/etcdctl/v3
  mv "$BIN/etcd.tmp" "$BIN/etcd" && mv "$BIN/etcdctl.tmp" "$BIN/etcdctl"
}

build_k8s() {
  missing "${K8S_BINS[@]}" || return 0
  local dir="$ROOT/k8s-module"
  log "building Kubernetes v$K8S_VERSION (staging v$STAGING_VERSION) in $dir"
  k8s_wrapper_module "$dir" k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler \
    k8s.io/kubernetes/cmd/kubectl
  local ld
  ld=$(k8s_ldflags)
  mkdir -p "$ROOT/out"
  go build -trimpath -p "$(nproc)" -ldflags "$ld" -o "$ROOT/out/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
  for b in "${K8S_BINS[@]}"; do mv "$ROOT/out/$b" "$BIN/$b"; done
}

start=$(date +%s)
build_etcd
build_k8s
log "control plane ready in $(( $(date +%s) - start ))s: $BIN"
echo "$BIN"
