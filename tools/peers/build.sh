#!/usr/bin/env bash
# Benchmark-only peers, never built by CI: the real stack next to wasmlet.
#   kubemark, kubelet   k8s.io/kubernetes/cmd/{kubemark,kubelet} at v$K8S_VERSION, in
#                       their own wrapper module (pinned like tools/k8s/build.sh;
#                       the control plane's cached build is left alone, the Go
#                       build cache makes the shared packages cheap)
#   containerd, containerd-shim-runc-v2, ctr
#                       github.com/containerd/containerd/v2 v$CONTAINERD_VERSION,
#                       go install style (no replace lines; needs Go >= 1.26.6)
# and, for containerd, Debian's runc and containernetworking-plugins (apt, with
# sudo when not root) when they are missing.
#
# Output: $WASMLET_CACHE/peers/k8s$K8S_VERSION-containerd$CONTAINERD_VERSION/bin,
# each binary built only when missing. Prints the bin dir as the last line of stdout.
#
#   tools/peers/build.sh                 # everything
#   tools/peers/build.sh kubemark        # or any of: kubemark kubelet containerd
set -euo pipefail

TAG=peers-build
# shellcheck source=tools/lib/gobuild.sh
. "$(dirname "$0")/../lib/gobuild.sh"
CONTAINERD_VERSION=${CONTAINERD_VERSION:-$(cat "$TOOLS_DIR/peers/CONTAINERD_VERSION")}
ROOT="$CACHE/peers/k8s$K8S_VERSION-containerd$CONTAINERD_VERSION"
BIN="$ROOT/bin"
CONTAINERD_MIN_GO=1.26.6
CONTAINERD_BINS=(containerd containerd-shim-runc-v2 ctr)
APT_PKGS=(runc containernetworking-plugins)

want=("$@")
[ ${#want[@]} -gt 0 ] || want=(kubemark kubelet containerd)
k8s_bins=()
for w in "${want[@]}"; do
  case "$w" in
    kubemark|kubelet) k8s_bins+=("$w") ;;
    containerd) ;;
    *) die "unknown peer '$w' (kubemark, kubelet, containerd)" ;;
  esac
done

lock_root "$ROOT"
mkdir -p "$BIN"
start=$(date +%s)

build_k8s() {
  [ ${#k8s_bins[@]} -gt 0 ] && missing_in "$BIN" "${k8s_bins[@]}" || return 0
  local t dir="$ROOT/k8s-module" pkgs=() b
  t=$(date +%s)
  # The wrapper always keeps both, so building the other one later is the same module.
  for b in kubemark kubelet; do
    if missing_in "$BIN" "$b" && [[ " ${k8s_bins[*]} " == *" $b "* ]]; then pkgs+=("k8s.io/kubernetes/cmd/$b"); fi
  done
  log "building ${pkgs[*]} (k8s.io/kubernetes v$K8S_VERSION) in $dir"
  k8s_wrapper_module "$dir" k8s.io/kubernetes/cmd/kubemark k8s.io/kubernetes/cmd/kubelet
  rm -rf "$ROOT/out" && mkdir -p "$ROOT/out"
  nicego build -trimpath -ldflags "$(k8s_ldflags)" -o "$ROOT/out/" "${pkgs[@]}"
  mv "$ROOT/out"/* "$BIN/"
  log "${pkgs[*]} built in $(since "$t")s"
}

# True when Go version $1 is older than $2 (both x.y.z).
version_lt() { [ "$1" != "$2" ] && [ "$(printf '%s\n%s\n' "$1" "$2" | sort -V | head -1)" = "$1" ]; }

build_containerd() {
  missing_in "$BIN" "${CONTAINERD_BINS[@]}" || return 0
  local t gov m=github.com/containerd/containerd/v2
  t=$(date +%s)
  gov=$(go env GOVERSION); gov=${gov#go}
  version_lt "$gov" "$CONTAINERD_MIN_GO" &&
    die "containerd v$CONTAINERD_VERSION needs Go >= $CONTAINERD_MIN_GO, this is $gov"
  log "building containerd v$CONTAINERD_VERSION"
  # As upstream's Makefile: version stamped, no man pages; the shim without gRPC.
  local ld="-s -w -X $m/version.Version=v$CONTAINERD_VERSION -X $m/version.Revision=none -X $m/version.Package=$m"
  install_to "$BIN" -tags urfave_cli_no_docs -ldflags "$ld" \
    -- "$m/cmd/containerd@v$CONTAINERD_VERSION" "$m/cmd/ctr@v$CONTAINERD_VERSION"
  install_to "$BIN" -tags "urfave_cli_no_docs no_grpc" -ldflags "$ld" \
    -- "$m/cmd/containerd-shim-runc-v2@v$CONTAINERD_VERSION"
  log "containerd built in $(since "$t")s"
}

install_apt() {
  local need=() p
  for p in "${APT_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
  done
  [ ${#need[@]} -eq 0 ] && return 0
  local sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  log "installing ${need[*]} from Debian"
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
}

build_k8s
if [[ " ${want[*]} " == *" containerd "* ]]; then
  build_containerd
  install_apt
  log "runc: $(command -v runc), CNI plugins: /usr/lib/cni"
fi
log "peers ready in $(since "$start")s: $BIN"
echo "$BIN"
