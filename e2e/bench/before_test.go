package main

import (
	"context"
	"os/exec"
	"testing"
	"time"

	"github.com/nodewire/nodewire/e2e/cluster"
)

// preSerialRev is the last commit before this month's gVisor loss patches
// and before the signed peer file (issue 13): its overlayd refuses the
// serial: field that today's overlayctl writes.
const preSerialRev = "d5a9cc1"

// TestBeforeRowsRunOldRevision sets up the -before row at a revision whose
// peer file format differs from today's and checks that its two nodes
// reach each other: the row must run that revision's overlayctl with its
// overlayd, not today's.
func TestBeforeRowsRunOldRevision(t *testing.T) {
	cluster.Require(t)
	// A clone without history (git clone --depth 1) cannot build an old
	// revision; say so instead of failing on git archive.
	if err := exec.Command("git", "cat-file", "-e", preSerialRev+"^{commit}").Run(); err != nil {
		t.Skipf("revision %s is not in this clone (a shallow clone?): %v", preSerialRev, err)
	}
	rows, err := beforeRows(t, preSerialRev, BeforeRow+"1", false)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 {
		t.Fatalf("%d rows without TUN, want 1", len(rows))
	}
	c := cluster.New(t, "before")
	erlArgs, err := compileBenchwork(c.Dir())
	if err != nil {
		t.Fatal(err)
	}
	env := &Env{C: c, T: t, Dir: c.Dir(), ErlArgs: erlArgs}
	pair, err := rows[0].Setup(env, rows[0].ID)
	if err != nil {
		t.Fatalf("%s: %v", rows[0].Name, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if ok, err := pair.A.Ping(ctx, pair.B.Name); err != nil || !ok {
		t.Fatalf("%s: %s cannot reach %s: pong %v, %v", rows[0].Name, pair.A.Name, pair.B.Name, ok, err)
	}
}
