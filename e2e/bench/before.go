package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/nodewire/nodewire/e2e/cluster"
)

// BeforeRow prefixes the IDs of the rows that run an older overlayd
// (-before): before1, before2, ...
const BeforeRow = "before"

// beforeRows are nodewire userspace (ID id) and, if tun is set, nodewire
// TUN (ID id+"tun") with overlayd built at git revision rev of this
// repository: the "before" of a change, measured in the same run as the
// "after" (rows nwuser and nwtun). Everything but the daemon (overlayctl,
// the peer file, epmd and erl flags) is this tree's, so the revision's
// overlayd must accept today's flags and peer file.
func beforeRows(tb cluster.TB, rev, id string, tun bool) ([]Row, error) {
	bin, err := buildOverlaydAt(tb, rev)
	if err != nil {
		return nil, fmt.Errorf("-before %s: %w", rev, err)
	}
	rows := []Row{{
		ID:   id,
		Name: "nodewire userspace @" + shortRev(rev),
		Setup: func(e *Env, id string) (*Pair, error) {
			return setupOverlay(e, id, "", bin)
		},
	}}
	if tun {
		rows = append(rows, Row{
			ID:   id + "tun",
			Name: "nodewire TUN @" + shortRev(rev),
			Setup: func(e *Env, id string) (*Pair, error) {
				return setupOverlay(e, id, "tun", bin)
			},
		})
	}
	return rows, nil
}

// buildOverlaydAt exports the tree at rev (git archive, no worktree left
// behind) into a temporary directory and builds its cmd/overlayd there.
func buildOverlaydAt(tb cluster.TB, rev string) (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("cannot locate the repository")
	}
	repo := filepath.Dir(file)
	dir, err := os.MkdirTemp("", "nodewire-before-")
	if err != nil {
		return "", err
	}
	tb.Cleanup(func() { _ = os.RemoveAll(dir) })
	archive := exec.Command("bash", "-c", `git -C "$(git -C "$1" rev-parse --show-toplevel)" archive --format=tar "$2" | tar -x -C "$3"`, "archive", repo, rev, dir)
	if out, err := archive.CombinedOutput(); err != nil {
		return "", fmt.Errorf("git archive: %v: %s", err, strings.TrimSpace(string(out)))
	}
	bin := filepath.Join(dir, "overlayd")
	build := exec.Command("go", "build", "-o", bin, "./cmd/overlayd")
	build.Dir = dir
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v: %s", err, strings.TrimSpace(string(out)))
	}
	return bin, nil
}

func shortRev(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}
