#!/usr/bin/env bash
# upstream-test.sh runs wireguard-go's own tests of the packages the patches
# here touch (device) against the patched module: a scratch copy of the
# whole module from the cache (it ships its tests) + the patches, then
# go test in it. Extra arguments go to go test (e.g. -race, -count=3).
# UNPATCHED=1 skips the patches and testdata/ (the baseline to compare failures with).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
mod=golang.zx2c4.com/wireguard
go=${GO:-go}
version=$(awk -v m="$mod" '$1 == m && $2 ~ /^v/ { print $2; exit }' "$root/go.mod")
src=$($go env GOMODCACHE)/$mod@$version
[ -d "$src" ] || (cd / && GOFLAGS=-mod=mod $go mod download "$mod@$version")

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -r "$src/." "$tmp/"
chmod -R u+w "$tmp"
if [ -z "${UNPATCHED:-}" ]; then
	for p in "$here"/[0-9][0-9][0-9][0-9]-*.patch; do
		patch -d "$tmp" -p1 -s --no-backup-if-mismatch <"$p"
	done
fi
# nodewire's own tests of the patched package (testdata/*_test.go) go next to
# upstream's, whose helpers they use.
if [ -z "${UNPATCHED:-}" ]; then
	for f in "$here"/testdata/*_test.go; do
		[ -f "$f" ] && cp "$f" "$tmp/device/"
	done
fi
cd "$tmp"
$go test -count=1 "$@" ./device/
