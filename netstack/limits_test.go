package netstack

import (
	"bytes"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
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

// A scan of every port logs a bounded number of lines per interval, and
// the next line that passes says how many were held back.
func TestLogDeniedScanIsBounded(t *testing.T) {
	var out lockedBuffer
	s := &Stack{log: slog.New(slog.NewTextHandler(&out, nil)), limiter: newLogLimiter(time.Hour, 4096)}
	for port := 1; port <= 65535; port++ {
		s.logDenied(dirIn, "mon-1", "pay-1", uint16(port), "deny default")
	}
	lines := strings.Count(out.String(), "\n")
	if lines != pairBudget {
		t.Fatalf("%d lines for a scan of 65535 ports, want %d", lines, pairBudget)
	}
	// Another pair has its own budget.
	s.logDenied(dirIn, "pay-2", "pay-1", 22, "deny default")
	if got := strings.Count(out.String(), "from=pay-2"); got != 1 {
		t.Fatalf("pay-2's denial logged %d times, want 1", got)
	}
	// The interval ends: the next line passes and reports the rest.
	s.limiter.mu.Lock()
	s.limiter.every = 0
	s.limiter.mu.Unlock()
	s.logDenied(dirIn, "mon-1", "pay-1", 1, "deny default")
	m := regexp.MustCompile(`suppressed=([0-9]+)`).FindStringSubmatch(out.String())
	if n, _ := strconv.Atoi(m[1]); n < 65535-pairBudget {
		t.Fatalf("first line after the scan reports %d held back, want ≥ %d", n, 65535-pairBudget)
	}
}

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
