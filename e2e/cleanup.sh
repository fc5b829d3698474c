#!/bin/sh
# cleanup.sh removes network namespaces left behind by nodewire e2e runs
# (package e2e/cluster), killing any process still inside them.
#
# A Go test binary killed by -timeout or a signal runs no t.Cleanup, so its
# namespaces stay (its processes die with it: they get SIGKILL through
# PR_SET_PDEATHSIG). Use this from a Makefile:  trap 'e2e/cleanup.sh' EXIT
#
#   cleanup.sh            remove runs whose owning test process is gone (safe
#                         while colleagues run e2e tests on the same machine)
#   cleanup.sh --all      remove every nwt-* namespace, live runs included
#   cleanup.sh [--all] P  only namespaces starting with P (must start nwt-)
#
# Namespaces are named nwt-<owner pid>-<random>-<label>-<host>; this script
# and cluster.SweepStale agree on that format.
set -u

all=0
if [ "${1:-}" = "--all" ]; then
	all=1
	shift
fi
prefix=${1:-nwt-}
case "$prefix" in
nwt-*) ;;
*)
	echo "cleanup.sh: refusing prefix '$prefix' (must start with nwt-)" >&2
	exit 2
	;;
esac

status=0
for ns in $(ip netns list | awk '{print $1}'); do
	case "$ns" in
	"$prefix"*) ;;
	*) continue ;;
	esac
	if [ "$all" = 0 ]; then
		owner=$(echo "$ns" | cut -d- -f2)
		case "$owner" in
		'' | *[!0-9]*) continue ;; # not our format: leave it alone
		esac
		if kill -0 "$owner" 2>/dev/null; then
			continue # owner still running
		fi
	fi
	# Kill what runs inside, wait for it to go, then drop the name.
	i=0
	while pids=$(ip netns pids "$ns" 2>/dev/null) && [ -n "$pids" ]; do
		# shellcheck disable=SC2086
		kill -KILL $pids 2>/dev/null
		i=$((i + 1))
		if [ "$i" -gt 100 ]; then
			echo "cleanup.sh: $ns: processes survive SIGKILL: $pids" >&2
			status=1
			break
		fi
		sleep 0.1 # polling interval of a bounded retry loop, not synchronisation
	done
	if err=$(ip netns del "$ns" 2>&1); then
		echo "cleanup.sh: removed $ns"
	elif ip netns list | awk '{print $1}' | grep -qx "$ns"; then
		echo "cleanup.sh: $ns: $err" >&2
		status=1
	fi # else another run's sweep removed it first: gone is what we wanted
done
exit $status
