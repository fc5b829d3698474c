package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"

	"github.com/nodewire/nodewire/e2e/cluster"
)

// BeforeRow prefixes the IDs of the rows that run an older overlayd
// (-before): before1, before2, ...
const BeforeRow = "before"

// beforeRows are nodewire userspace (ID id) and, if tun is set, nodewire
// TUN (ID id+"tun") with overlayd and overlayctl built at git revision rev
// of this repository: the "before" of a change, measured in the same run as
// the "after" (rows nwuser and nwtun). The revision's overlayctl writes the
// peer file and prints the erl flags, so each row runs a coherent old
// system (an older overlayd refuses fields today's overlayctl writes, such
// as serial:); the harness around it (epmd, the benchmark's own erl flags
// and overlayd flags) is this tree's.
func beforeRows(tb cluster.TB, rev, id string, tun bool) ([]Row, error) {
	return beforeRowsTCP(tb, rev, id, tun, false)
}

// beforeRowsTCP is beforeRows plus, if tcp is set, nodewire userspace over
// TCP 443 (ID id+"tcp", row nwtcp's set-up) at rev: a tcpbind change's
// before.
func beforeRowsTCP(tb cluster.TB, rev, id string, tun, tcp bool) ([]Row, error) {
	bins, err := buildAt(tb, rev)
	if err != nil {
		return nil, fmt.Errorf("-before %s: %w", rev, err)
	}
	var rows []Row
	for _, r := range []struct {
		suffix, name, mode string
		on                 bool
	}{
		{"", "nodewire userspace", "", true},
		{"tun", "nodewire TUN", "tun", tun},
		{"tcp", "nodewire over TCP 443", modeTCP, tcp},
	} {
		if r.on {
			rows = append(rows, Row{
				ID:   id + r.suffix,
				Name: r.name + " @" + shortRev(rev),
				Setup: func(e *Env, id string) (*Pair, error) {
					return setupOverlayWith(e, id, r.mode, bins.overlayd, bins.ctl)
				},
			})
		}
	}
	return rows, nil
}

// withBeforeRows is Rows plus, for each -before revision, its rows
// (beforeRows): the TUN one only when the run has the TUN row (wanted names
// the rows asked for; none means all).
func withBeforeRows(tb cluster.TB, revs, wanted []string) ([]Row, error) {
	rows := slices.Clone(Rows)
	tun := len(wanted) == 0 || slices.Contains(wanted, "nwtun")
	tcp := len(wanted) == 0 || slices.Contains(wanted, "nwtcp")
	for i, rev := range revs {
		before, err := beforeRowsTCP(tb, rev, fmt.Sprintf("%s%d", BeforeRow, i+1), tun, tcp)
		if err != nil {
			return nil, err
		}
		rows = append(rows, before...)
	}
	return rows, nil
}

// revBinaries are overlayd and overlayctl built at one revision.
type revBinaries struct{ overlayd, ctl string }

// buildAt exports the tree at rev (git archive, no worktree left behind)
// into a temporary directory and builds its cmd/overlayd and cmd/overlayctl
// there.
func buildAt(tb cluster.TB, rev string) (revBinaries, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return revBinaries{}, fmt.Errorf("cannot locate the repository")
	}
	repo := filepath.Dir(file)
	dir, err := os.MkdirTemp("", "nodewire-before-")
	if err != nil {
		return revBinaries{}, err
	}
	tb.Cleanup(func() { _ = os.RemoveAll(dir) })
	archive := exec.Command("bash", "-c", `git -C "$(git -C "$1" rev-parse --show-toplevel)" archive --format=tar "$2" | tar -x -C "$3"`, "archive", repo, rev, dir)
	if out, err := archive.CombinedOutput(); err != nil {
		return revBinaries{}, fmt.Errorf("git archive: %v: %s", err, strings.TrimSpace(string(out)))
	}
	bins := revBinaries{overlayd: filepath.Join(dir, "bin", "overlayd"), ctl: filepath.Join(dir, "bin", "overlayctl")}
	for _, b := range []struct{ out, pkg string }{{bins.overlayd, "./cmd/overlayd"}, {bins.ctl, "./cmd/overlayctl"}} {
		build := exec.Command("go", "build", "-o", b.out, b.pkg)
		build.Dir = dir
		if out, err := build.CombinedOutput(); err != nil {
			return revBinaries{}, fmt.Errorf("go build %s: %v: %s", b.pkg, err, strings.TrimSpace(string(out)))
		}
	}
	return bins, nil
}

func shortRev(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}
