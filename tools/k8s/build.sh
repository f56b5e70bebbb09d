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

K8S_VERSION=${K8S_VERSION:-$(cat "$(dirname "$0")/K8S_VERSION")}
ETCD_VERSION=${ETCD_VERSION:-$(cat "$(dirname "$0")/ETCD_VERSION")}
CACHE=${WASMLET_CACHE:-$HOME/.cache/wasmlet}
ROOT="$CACHE/k8s/v$K8S_VERSION-etcd$ETCD_VERSION"
BIN="$ROOT/bin"
STAGING_VERSION="0.${K8S_VERSION#1.}"
K8S_BINS=(kube-apiserver kube-controller-manager kube-scheduler kubectl)

export GOTOOLCHAIN=local CGO_ENABLED=0

log() { printf '[k8s-build] %s\n' "$*" >&2; }

missing() {
  for b in "$@"; do [ -x "$BIN/$b" ] || return 0; done
  return 1
}

# Fails when minimal version selection moved a pinned module away from its version.
check_version() {
  local got
  got=$(go list -m -f '{{if .Replace}}{{.Replace.Version}}{{else}}{{.Version}}{{end}}' "$1")
  [ "$got" = "$2" ] || { log "$1 resolved to $got, expected $2"; exit 1; }
}

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
  rm -rf "$dir" && mkdir -p "$dir"
  # Read k8s.io/kubernetes' own go.mod from the module proxy (outside any module,
  # so an incomplete wrapper cannot break graph loading) and derive the staging list.
  local gomod
  gomod=$(cd "$(mktemp -d)" && go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" |
    sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  [ -f "$gomod" ] || { log "could not fetch go.mod of k8s.io/kubernetes@v$K8S_VERSION"; exit 1; }
  local goversion
  goversion=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$gomod")
  cd "$dir"
  go mod init local/k8sbins >/dev/null 2>&1
  go mod edit -go="$goversion" -godebug="default=go${goversion%.*}"
  local staging
  staging=$(sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => \./staging/src/k8s.io/.*#\1#p' "$gomod")
  [ -n "$staging" ] || { log "no staging replace lines found in $gomod"; exit 1; }
  for m in $staging; do
    go mod edit -replace="$m=$m@v$STAGING_VERSION"
  done
  log "pinned $(echo "$staging" | wc -l) staging modules at v$STAGING_VERSION"
  cat > tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
  go get "k8s.io/kubernetes@v$K8S_VERSION"
  go mod tidy
  check_version k8s.io/kubernetes "v$K8S_VERSION"
  check_version k8s.io/client-go "v$STAGING_VERSION"
  local ld="-s -w" date
  date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $p.gitVersion=v$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2)"
    ld="$ld -X $p.gitTreeState=clean -X $p.gitCommit=none -X $p.buildDate=$date"
  done
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
