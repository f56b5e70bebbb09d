#!/usr/bin/env bash
# Builds the wasmlet Debian package from a wasmlet binary with dpkg-deb.
#
#   deploy/deb/build.sh BINARY OUT_DIR [VERSION]
#
# WASMLET_DEB_COMPRESSION: dpkg-deb's -Z (default gzip; the test uses none).
#
# Prints the .deb's path as the last line of stdout. Contents:
#   /usr/bin/wasmlet
#   /lib/systemd/system/wasmlet.service
#   /etc/wasmlet/kubelet-config.yaml, /etc/wasmlet/wasmlet.yaml (conffiles)
#   /etc/default/wasmlet (conffile)
#   /usr/share/wasmlet/runtimeclass.yaml
set -euo pipefail

BINARY=${1:?usage: build.sh BINARY OUT_DIR [VERSION]}
OUT=${2:?usage: build.sh BINARY OUT_DIR [VERSION]}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
VERSION=${3:-$(sed -n 's/^version = "\(.*\)"/\1/p' "$REPO/Cargo.toml" | head -1)}
ARCH=$(dpkg --print-architecture)

STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
install -D -m 0755 "$BINARY" "$STAGE/usr/bin/wasmlet"
install -D -m 0644 "$HERE/wasmlet.service" "$STAGE/lib/systemd/system/wasmlet.service"
install -D -m 0644 "$HERE/kubelet-config.yaml" "$STAGE/etc/wasmlet/kubelet-config.yaml"
install -D -m 0644 "$HERE/wasmlet.yaml" "$STAGE/etc/wasmlet/wasmlet.yaml"
install -D -m 0644 "$HERE/default" "$STAGE/etc/default/wasmlet"
install -D -m 0644 "$REPO/deploy/runtimeclass.yaml" "$STAGE/usr/share/wasmlet/runtimeclass.yaml"
install -D -m 0644 "$REPO/docs/install.md" "$STAGE/usr/share/doc/wasmlet/install.md"
mkdir -p "$STAGE/DEBIAN"
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" "$HERE/control" > "$STAGE/DEBIAN/control"
printf '%s\n' /etc/wasmlet/kubelet-config.yaml /etc/wasmlet/wasmlet.yaml /etc/default/wasmlet > "$STAGE/DEBIAN/conffiles"

mkdir -p "$OUT"
DEB="$OUT/wasmlet_${VERSION}_${ARCH}.deb"
dpkg-deb --root-owner-group "-Z${WASMLET_DEB_COMPRESSION:-gzip}" --build "$STAGE" "$DEB" >&2
echo "$DEB"
