#!/usr/bin/env bash
# Runs the multi-host e2e suite. Namespaces, daemons and Erlang processes are
# removed on every exit, also when `go test` is killed by its -timeout (which
# skips the tests' own cleanups).
set -euo pipefail
cd "$(dirname "$0")/.."
trap 'bash e2e/cleanup.sh' EXIT
bash e2e/cleanup.sh
go test -count=1 -v "$@" ./e2e/...
