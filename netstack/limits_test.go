package netstack

import (
	"bytes"
	"sync"
	"testing"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestLogDeniedScanIsBounded moved with the limiter to package denylog,
// which both data planes share.

func TestPendingPerPeerBound(t *testing.T) {
	var c peerCounters
	for i := 0; i < maxPendingPerPeer; i++ {
		if !c.enterPending() {
			t.Fatalf("refused at %d pending, bound is %d", i, maxPendingPerPeer)
		}
	}
	if c.enterPending() {
		t.Fatal("accepted beyond the pending bound")
	}
	c.leavePending()
	if !c.enterPending() {
		t.Fatal("refused after one left")
	}
	c.open.Store(maxOpenPerPeer)
	c.pending.Store(0)
	if c.enterPending() {
		t.Fatal("accepted beyond the open bound")
	}
}
