package netstack

import (
	"context"
	"errors"
	"testing"

	"github.com/nodewire/nodewire/netstack/erldist"
)

// TestCurrentKeepsQueryError: a NAMES query that failed (epmd slow or
// restarting) is cached for namesTTL so a port scan does not hammer epmd,
// but status and explain asking within that second must hear that the
// nodes are unknown, not that none is registered.
func TestCurrentKeepsQueryError(t *testing.T) {
	down := errors.New("epmd not answering")
	answers := []struct {
		names []erldist.NameEntry
		err   error
	}{{nil, down}, {[]erldist.NameEntry{{Name: "app", Port: 4370}}, nil}}
	queries := 0
	l := newLocalPorts(func(context.Context) ([]erldist.NameEntry, error) {
		a := answers[min(queries, len(answers)-1)]
		queries++
		return a.names, a.err
	})
	ctx := context.Background()
	if _, ok, err := l.lookup(ctx, 4370); ok || !errors.Is(err, down) {
		t.Fatalf("lookup with epmd down: ok %v, err %v; want false, %v", ok, err, down)
	}
	got, err := l.current(ctx)
	if !errors.Is(err, down) || len(got) != 0 {
		t.Errorf("current after a failed query: %v, %v; want no names and %v", got, err, down)
	}
	if _, ok, err := l.lookup(ctx, 4370); ok || err != nil {
		t.Errorf("lookup within namesTTL of a failure: ok %v, err %v; want the cached no, without asking", ok, err)
	}
	if queries != 1 {
		t.Errorf("%d NAMES queries, want 1: the failure is cached for namesTTL", queries)
	}
}
