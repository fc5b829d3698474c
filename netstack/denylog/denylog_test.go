package denylog

import (
	"bytes"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nodewire/nodewire/peers"
)

// refused logs as netstack's logDenied does.
func refused(l *Logger, from, to string, port uint16, why string) {
	l.Refused(Key{Who: from + ">" + to, Port: port, Dir: peers.Inbound, Why: why},
		"dir", "in", "from", from, "to", to, "port", port, "decision", why)
}

// A scan of every port logs a bounded number of lines per interval, and
// the next line that passes says how many were held back.
func TestLogDeniedScanIsBounded(t *testing.T) {
	var out bytes.Buffer
	l := New(slog.New(slog.NewTextHandler(&out, nil)), "netstack: refused", time.Hour, 4096)
	for port := 1; port <= 65535; port++ {
		refused(l, "mon-1", "pay-1", uint16(port), "deny default")
	}
	lines := strings.Count(out.String(), "\n")
	if lines != PairBudget {
		t.Fatalf("%d lines for a scan of 65535 ports, want %d", lines, PairBudget)
	}
	// Another pair has its own budget.
	refused(l, "pay-2", "pay-1", 22, "deny default")
	if got := strings.Count(out.String(), "from=pay-2"); got != 1 {
		t.Fatalf("pay-2's denial logged %d times, want 1", got)
	}
	// The interval ends: the next line passes and reports the rest.
	l.mu.Lock()
	l.every = 0
	l.mu.Unlock()
	refused(l, "mon-1", "pay-1", 1, "deny default")
	m := regexp.MustCompile(`suppressed=([0-9]+)`).FindStringSubmatch(out.String())
	if n, _ := strconv.Atoi(m[1]); n < 65535-PairBudget {
		t.Fatalf("first line after the scan reports %d held back, want ≥ %d", n, 65535-PairBudget)
	}
}

// One key logs once per interval, and the next line reports the rest.
func TestLimitedOncePerKey(t *testing.T) {
	var out bytes.Buffer
	l := New(slog.New(slog.NewTextHandler(&out, nil)), "x", time.Hour, 4096)
	k := Key{Who: "pay-1", Port: 9100, Proto: "udp", Dir: peers.Outbound, Why: "unreachable"}
	for i := 0; i < 5; i++ {
		l.Limited(slog.LevelInfo, k, "peer not reachable")
	}
	if got := strings.Count(out.String(), "\n"); got != 1 {
		t.Fatalf("%d lines, want 1:\n%s", got, out.String())
	}
	l.mu.Lock()
	l.every = 0
	l.mu.Unlock()
	l.Limited(slog.LevelInfo, k, "peer not reachable")
	if !strings.Contains(out.String(), "suppressed=4") {
		t.Fatalf("second line does not report 4 held back:\n%s", out.String())
	}
}
