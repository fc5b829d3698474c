#!/usr/bin/env bash
# update.sh regenerates netstack/third_party/gvisor, the trimmed, patched copy
# of gvisor.dev/gvisor that go.mod replaces the module with: the module's
# go.mod and LICENSE, and the non-test .go and .s files of exactly the
# packages this repository imports (go list -deps ./..., and what those
# import under other build tags and platforms: deps.go), taken from the
# module cache at the version go.mod requires, then the patches in this
# directory (NNNN-*.patch, in order).
#
#   update.sh          rewrite the copy (after a version bump or a new patch)
#   update.sh --check  verify the copy is upstream + patches, file for file,
#                      and holds exactly the packages the build needs
#                      (make vet runs this; it needs no network when the
#                      module is in the cache)
set -euo pipefail

mode=update
case "${1:-}" in
"") ;;
--check) mode=check ;;
*)
	echo "usage: $0 [--check]" >&2
	exit 2
	;;
esac

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
dest=$root/netstack/third_party/gvisor
mod=gvisor.dev/gvisor
go=${GO:-go}

version=$(awk -v m="$mod" '$1 == m && $2 ~ /^v/ { print $2; exit }' "$root/go.mod")
[ -n "$version" ] || { echo "update.sh: no '$mod vX' requirement in go.mod" >&2; exit 1; }
src=$($go env GOMODCACHE)/$mod@$version
if [ ! -d "$src" ]; then
	# Outside the main module, so its replace does not apply; the download
	# is checked against the checksum database as usual.
	(cd / && GOFLAGS=-mod=mod $go mod download "$mod@$version")
fi

# The packages the build needs. In update mode they are listed with the
# replace dropped (the copy may be stale or absent); --check lists them
# through the copy, which must then hold them all.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ "$mode" = update ]; then
	cp "$root/go.mod" "$tmp/go.mod"
	cp "$root/go.sum" "$tmp/go.sum"
	(cd "$root" && $go mod edit -modfile="$tmp/go.mod" -dropreplace="$mod")
	seeds=$(cd "$root" && GOFLAGS=-mod=mod $go list -modfile="$tmp/go.mod" -deps ./... | grep "^$mod/")
else
	seeds=$(cd "$root" && $go list -deps ./... | grep "^$mod/")
fi
# Add what those import on other platforms and under other build tags, as
# go mod tidy counts them.
pkgs=$(cd "$here" && echo "$seeds" | $go run deps.go "$mod" "$src")

out=$tmp/gvisor
mkdir -p "$out"
install -m 0644 "$src/go.mod" "$src/LICENSE" "$out/"
for p in $pkgs; do
	rel=${p#"$mod"/}
	mkdir -p "$out/$rel"
	for f in "$src/$rel"/*.go "$src/$rel"/*.s; do
		[ -f "$f" ] || continue
		case "$f" in *_test.go) continue ;; esac
		install -m 0644 "$f" "$out/$rel/"
	done
done
for p in "$here"/[0-9][0-9][0-9][0-9]-*.patch; do
	[ -f "$p" ] || continue
	patch -d "$out" -p1 -s --no-backup-if-mismatch <"$p" || { echo "update.sh: $p does not apply to $mod@$version" >&2; exit 1; }
done

if [ "$mode" = check ]; then
	if ! diff -r "$out" "$dest" >"$tmp/diff"; then
		cat "$tmp/diff" >&2
		echo "update.sh: netstack/third_party/gvisor differs from $mod@$version + patches; run $0" >&2
		exit 1
	fi
	echo "netstack/third_party/gvisor == $mod@$version + $(ls "$here"/[0-9]*.patch | wc -l) patch(es)"
	exit 0
fi
rm -rf "$dest"
cp -r "$out" "$dest"
echo "netstack/third_party/gvisor: $mod@$version, $(echo "$pkgs" | wc -l) packages, patched"
