#!/usr/bin/env bash
# Installs the Debian packages the test bed and the fixtures need, once.
# Idempotent: does nothing when every package is already installed.
set -euo pipefail

PKGS=(clang-16 lld-16 libclang-rt-16-dev-wasm32 wabt docker-registry openssl apache2-utils iproute2 curl)
BACKPORTS_PKGS=(wasi-libc)

need=()
for p in "${PKGS[@]}" "${BACKPORTS_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
# bookworm's own wasi-libc (2022) lacks wasm32-wasip2; the backport has it.
if [ ! -d /usr/lib/wasm32-wasip2 ]; then need+=(wasi-libc); fi
[ ${#need[@]} -eq 0 ] && exit 0

SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  echo "deb http://deb.debian.org/debian bookworm-backports main" | $SUDO tee /etc/apt/sources.list.d/bookworm-backports.list >/dev/null
fi
echo "[apt-deps] installing: ${need[*]}" >&2
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t bookworm-backports "${BACKPORTS_PKGS[@]}" >/dev/null
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${PKGS[@]}" >/dev/null
