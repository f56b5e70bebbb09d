# shellcheck shell=bash
# Shared by the tools/*/build.sh scripts: build Go programs from the module
# proxy into a cache outside the repo, keyed by version. Source it after
# setting TAG (the log prefix); every function logs to stderr only, so a
# script's stdout stays free for the bin dir it prints last.
#
#   TAG=kwok-build; . "$(dirname "$0")/../lib/gobuild.sh"

TOOLS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck disable=SC2034 # used by the scripts that source this file
CACHE=${WASMLET_CACHE:-$HOME/.cache/wasmlet}
K8S_VERSION=${K8S_VERSION:-$(cat "$TOOLS_DIR/k8s/K8S_VERSION")}
STAGING_VERSION="0.${K8S_VERSION#1.}"

export GOTOOLCHAIN=local CGO_ENABLED=0

log() { printf '[%s] %s\n' "${TAG:-build}" "$*" >&2; }
die() { log "$*"; exit 1; }

# True when one of the named files is not an executable in the directory $1.
missing_in() {
  local dir=$1; shift
  for b in "$@"; do [ -x "$dir/$b" ] || return 0; done
  return 1
}

# Creates $1 and takes its lock for the rest of the script (one build at a
# time per cache dir: two test beds or two developers may start together).
lock_root() {
  mkdir -p "$1"
  exec 9>"$1/.lock"
  flock 9
}

# Fails when minimal version selection moved a pinned module away from its
# version. Run inside the wrapper module.
check_version() {
  local got
  got=$(go list -m -f '{{if .Replace}}{{.Replace.Version}}{{else}}{{.Version}}{{end}}' "$1")
  [ "$got" = "$2" ] || die "$1 resolved to $got, expected $2"
}

# Prints field $1 (GoMod, Dir, ...) of `go mod download -json $2` (MODULE@VERSION),
# fetching the module. Runs outside any module, so an incomplete wrapper
# cannot break graph loading.
mod_download() {
  local out tmp
  tmp=$(mktemp -d)
  out=$(cd "$tmp" && go mod download -json "$2" | sed -n "s/.*\"$1\": \"\(.*\)\".*/\1/p")
  rmdir "$tmp"
  [ -e "$out" ] || die "could not fetch $2"
  echo "$out"
}

# Prints the path of MODULE@VERSION's go.mod in the module cache.
upstream_gomod() { mod_download GoMod "$1"; }

# Starts an empty wrapper module in $1 (recreated), named $2, with the go
# version and GODEBUG defaults of the upstream go.mod $3: replace directives
# and the go line only act in the main module, so the wrapper carries them.
wrapper_init() {
  local dir=$1 name=$2 gomod=$3 goversion
  rm -rf "$dir" && mkdir -p "$dir" && cd "$dir" || return
  goversion=$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$gomod")
  go mod init "$name" >/dev/null 2>&1
  go mod edit -go="$goversion" -godebug="default=go${goversion%.*}"
}

# Copies the module => module version replace lines of the upstream go.mod $1
# (both the single-line and the block form) into the current wrapper module.
# Replacements by a local path (./...) cannot apply outside upstream's tree and
# are skipped.
copy_replaces() {
  local n=0 old new ver
  while read -r old new ver; do
    case "$new" in .*|/*) continue ;; esac
    go mod edit -replace="$old=$new@$ver"
    n=$((n + 1))
  done < <(sed -n -e 's/^replace[[:space:]]\+\([^ (]\+\)[[:space:]]*=>[[:space:]]*\([^ ]\+\)[[:space:]]\+\(v[^ ]\+\)[[:space:]]*$/\1 \2 \3/p' \
    -e '/^replace[[:space:]]*(/,/^)/ s/^[[:space:]]\+\([^ ]\+\)[[:space:]]*=>[[:space:]]*\([^ ]\+\)[[:space:]]\+\(v[^ ]\+\)[[:space:]]*$/\1 \2 \3/p' "$1")
  log "copied $n replace lines from upstream's go.mod"
}

# Writes tools.go importing the given packages, so `go mod tidy` keeps them.
write_tools_go() {
  {
    printf '//go:build tools\n\npackage tools\n\nimport (\n'
    for p in "$@"; do printf '\t_ "%s"\n' "$p"; done
    printf ')\n'
  } > tools.go
}

# A wrapper module in $1 (recreated) that builds packages of k8s.io/kubernetes
# at $K8S_VERSION: k8s.io/kubernetes replaces its staging modules
# (k8s.io/api, client-go, ...) with ./staging paths, so the wrapper pins each
# of them at the matching published v0.x.y instead. Further arguments are the
# packages to keep (written to tools.go). Ends with go mod tidy and checks.
k8s_wrapper_module() {
  local dir=$1; shift
  k8s_wrapper_init "$dir"
  k8s_wrapper_finish "$@"
}

# The first half of k8s_wrapper_module: creates the module in $1 with the pins
# and leaves the shell in it, so a caller can add its own packages before
# k8s_wrapper_finish.
k8s_wrapper_init() {
  local dir=$1
  # Read k8s.io/kubernetes' own go.mod from the module proxy (outside any module,
  # so an incomplete wrapper cannot break graph loading) and derive the staging list.
  local gomod staging
  gomod=$(upstream_gomod "k8s.io/kubernetes@v$K8S_VERSION")
  wrapper_init "$dir" local/k8sbins "$gomod"
  staging=$(sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => \./staging/src/k8s.io/.*#\1#p' "$gomod")
  [ -n "$staging" ] || die "no staging replace lines found in $gomod"
  for m in $staging; do
    go mod edit -replace="$m=$m@v$STAGING_VERSION"
  done
  log "pinned $(echo "$staging" | wc -l) staging modules at v$STAGING_VERSION"
}

# The second half: tools.go with the packages given, go get, tidy, checks.
k8s_wrapper_finish() {
  write_tools_go "$@"
  go get "k8s.io/kubernetes@v$K8S_VERSION"
  go mod tidy
  check_version k8s.io/kubernetes "v$K8S_VERSION"
  check_version k8s.io/client-go "v$STAGING_VERSION"
}

# A wrapper module in $1 (recreated) for MODULE $2 at VERSION $3 (with the v),
# carrying upstream's replace lines, keeping the packages given after that.
# Logs every requirement of upstream's go.mod that the wrapper selected at
# another version (none expected: upstream's go.mod is tidy; the replace lines
# are copied, so what they pin cannot move).
replace_wrapper_module() {
  local dir=$1 mod=$2 ver=$3; shift 3
  local gomod
  gomod=$(upstream_gomod "$mod@$ver")
  wrapper_init "$dir" "local/$(basename "$dir")" "$gomod"
  copy_replaces "$gomod"
  write_tools_go "$@"
  go get "$mod@$ver"
  go mod tidy
  check_version "$mod" "$ver"
  local -A got
  local p v moved=0
  while read -r p v; do got[$p]=$v; done < <(go list -m -f '{{.Path}} {{.Version}}' all)
  while read -r p v; do
    if [ -n "${got[$p]:-}" ] && [ "${got[$p]}" != "$v" ]; then
      log "note: $p is $v in upstream's go.mod, resolved to ${got[$p]}"
      moved=$((moved + 1))
    fi
  done < <(sed -n -e 's/^require[[:space:]]\+\([^ (]\+\)[[:space:]]\+\(v[^ ]\+\).*/\1 \2/p' \
    -e '/^require[[:space:]]*(/,/^)/ s/^[[:space:]]\+\([^ ]\+\)[[:space:]]\+\(v[^ ]\+\).*/\1 \2/p' "$gomod")
  log "$mod@$ver: $moved of upstream's module versions moved"
}

# The -ldflags that stamp the Kubernetes version into component-base and
# client-go, as upstream's release builds do (kubelet reports it in nodeInfo).
k8s_ldflags() {
  local ld="-s -w" date p
  date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ld="$ld -X $p.gitVersion=v$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2)"
    ld="$ld -X $p.gitTreeState=clean -X $p.gitCommit=none -X $p.buildDate=$date"
  done
  echo "$ld"
}

# go build/install at low priority: other developers compile Rust on the same
# two cores.
nicego() { nice -n 10 go "$@"; }

# go install-style build into the bin dir $1: install_to BIN [FLAGS...] -- PKG@VERSION...
# (packages of one module without replace lines), through a scratch GOBIN so a
# broken build leaves no binary behind.
install_to() {
  local bin=$1; shift
  local flags=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do flags+=("$1"); shift; done
  shift
  local out="$bin/../out"
  rm -rf "$out" && mkdir -p "$out"
  GOBIN=$(cd "$out" && pwd) nicego install -trimpath "${flags[@]}" "$@"
  mv "$out"/* "$bin/"
}

# Elapsed seconds since $1 (from `date +%s`).
since() { echo $(( $(date +%s) - $1 )); }
