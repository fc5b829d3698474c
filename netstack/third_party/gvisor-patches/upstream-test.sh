#!/usr/bin/env bash
# upstream-test.sh runs gVisor's own TCP tests against the patched module.
# The module (gVisor's go branch) ships no tests, and the TCP tests need
# testing packages the trimmed copy leaves out, so this builds a scratch
# tree: the whole module from the cache + the patches here + the tests and
# their helper packages from a gVisor git checkout at the module's source
# commit (one Bazel go_test per file under test/e2e, so each gets its own
# directory). Needs network for the tests' extra modules (go-cmp).
#
#   upstream-test.sh /path/to/gvisor.git [commit] [go test flags...]
#
# commit defaults to 5c4b4f51c, the master commit the go-branch commit
# 39ed1f5ac29c (v0.0.0-20250503011706-39ed1f5ac29c) was generated from.
# UNPATCHED=1 skips the patches (the baseline to compare failures with).
set -euo pipefail

[ $# -ge 1 ] || { echo "usage: $0 gvisor-git-dir [commit] [go test flags]" >&2; exit 2; }
git=$1
commit=${2:-5c4b4f51c}
shift $(($# >= 2 ? 2 : 1))
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
mod=gvisor.dev/gvisor
version=$(awk -v m="$mod" '$1 == m && $2 ~ /^v/ { print $2; exit }' "$root/go.mod")
src=$(go env GOMODCACHE)/$mod@$version
[ -d "$src" ] || (cd / && GOFLAGS=-mod=mod go mod download "$mod@$version")

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cp -r "$src/." "$tmp/"
chmod -R u+w "$tmp"
if [ -z "${UNPATCHED:-}" ]; then
	for p in "$here"/[0-9][0-9][0-9][0-9]-*.patch; do
		patch -d "$tmp" -p1 -s --no-backup-if-mismatch <"$p"
	done
fi
tcp=pkg/tcpip/transport/tcp
git --git-dir="$git" archive "$commit" "$tcp" pkg/tcpip/testutil pkg/tcpip/checker pkg/test/testutil |
	tar -x -C "$tmp" --wildcards '*_test.go' "$tcp/testing/*" "$tcp/test/*" 'pkg/tcpip/testutil/*' 'pkg/tcpip/checker/*' 'pkg/test/testutil/*'
find "$tmp" -name BUILD -delete
# nodewire's own tests of the patched package (testdata/*_test.go, package
# tcp, or tcp_test where they use the testing/context harness, which
# imports tcp) go next to its sources.
if [ -z "${UNPATCHED:-}" ]; then
	for f in "$here"/testdata/*_test.go; do
		[ -f "$f" ] && cp "$f" "$tmp/$tcp/"
	done
fi
for f in "$tmp/$tcp"/test/e2e/*_test.go; do
	d=$tmp/$tcp/test/split/$(basename "$f" .go)
	mkdir -p "$d"
	mv "$f" "$d/"
done
cd "$tmp"
GOFLAGS=-mod=mod go test -count=1 "$@" "./$tcp/..."
