// Package denylog logs what a data plane refuses (connections, packets,
// requests) at a bounded rate, so a port scan or a retrying client cannot
// flood the log; the next line that passes says how many were held back.
// Both planes use it: the userspace stack (netstack) and TUN mode's packet
// filter (overlay/packetfilter), so their refusals read and bound alike.
package denylog

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/nodewire/nodewire/peers"
)

// PairBudget is how many lines about one pair of hosts and direction pass
// per interval, whatever the port; the rest are counted and reported by
// the next line that passes.
const PairBudget = 20

// Key is what one line is about: a pair of hosts ("from>to", or a source
// address), a port, a protocol, a direction and the reason (so an ALIVE2
// refusal does not hide a KILL).
type Key struct {
	Who   string
	Port  uint16
	Proto string
	Dir   peers.Direction
	Why   string
}

// Logger lets one line through per Key and interval, and PairBudget lines
// per pair and direction.
type Logger struct {
	log   *slog.Logger
	msg   string
	every time.Duration
	max   int // keys kept; beyond it stale keys are dropped, then all

	mu   sync.Mutex
	last map[Key]*lastState
	// budget caps lines per pair and direction: a scan of every port is
	// 65535 keys of last, not one.
	budget map[Key]*budgetState
}

type lastState struct {
	at         time.Time
	suppressed int
}

type budgetState struct {
	start time.Time
	used  int
	held  int
}

// New logs refusals to log as msg ("netstack: refused"), one line per key
// every interval, keeping at most max keys.
func New(log *slog.Logger, msg string, every time.Duration, max int) *Logger {
	return &Logger{log: log, msg: msg, every: every, max: max, last: make(map[Key]*lastState), budget: make(map[Key]*budgetState)}
}

// Refused logs one refusal described by attrs at Warn, once per k each
// interval, and at most PairBudget lines per (k.Who, k.Dir).
func (l *Logger) Refused(k Key, attrs ...any) {
	now := time.Now()
	ok, held := l.allow(k, now)
	if !ok {
		return
	}
	ok, held = l.spend(Key{Who: k.Who, Dir: k.Dir}, held, now)
	if !ok {
		return
	}
	if held > 0 {
		attrs = append(attrs, "suppressed", held)
	}
	l.log.Log(context.Background(), slog.LevelWarn, l.msg, attrs...)
}

// Limited logs msg at level unless a line with the same key was logged
// within the interval; the next line says how many were held. For anything
// a remote peer or a retrying local client can repeat at will.
func (l *Logger) Limited(level slog.Level, k Key, msg string, attrs ...any) {
	ok, held := l.allow(k, time.Now())
	if !ok {
		return
	}
	if held > 0 {
		attrs = append(attrs, "suppressed", held)
	}
	l.log.Log(context.Background(), level, msg, attrs...)
}

// spend takes one line from k's budget for the current interval. held is
// what was refused since the last line that passed (plus extra, lines the
// caller held back for k before asking).
func (l *Logger) spend(k Key, extra int, now time.Time) (ok bool, held int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.budget[k]
	if st == nil {
		if len(l.budget) >= l.max {
			clear(l.budget)
		}
		st = new(budgetState)
		l.budget[k] = st
	}
	if now.Sub(st.start) >= l.every {
		st.start, st.used = now, 0
	}
	if st.used >= PairBudget {
		st.held += 1 + extra
		return false, 0
	}
	st.used++
	held, st.held = st.held+extra, 0
	return true, held
}

// allow reports whether to log about k now, and how many lines about k were
// held back since the last one logged.
func (l *Logger) allow(k Key, now time.Time) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.last[k]
	if st != nil && now.Sub(st.at) < l.every {
		st.suppressed++
		return false, 0
	}
	if st == nil {
		if len(l.last) >= l.max {
			l.evict(now)
		}
		st = new(lastState)
		l.last[k] = st
	}
	suppressed = st.suppressed
	st.at, st.suppressed = now, 0
	return true, suppressed
}

// evict drops keys quiet for a whole interval, or everything if all are
// recent (a scan from many sources: better a few repeated lines than
// unbounded memory).
func (l *Logger) evict(now time.Time) {
	for k, st := range l.last {
		if now.Sub(st.at) >= l.every {
			delete(l.last, k)
		}
	}
	if len(l.last) >= l.max {
		clear(l.last)
	}
}
