package netstack

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nodewire/nodewire/peers"
)

// PeerStats is what the data plane has seen of one peer since Start (or
// since the peer first appeared in a snapshot).
type PeerStats struct {
	Open      int64  // forwarded connections open now, both directions
	Total     uint64 // forwarded connections carried, both directions
	DeniedIn  uint64 // refused here: policy, a port not offered, or a refused EPMD request
	DeniedOut uint64 // refused at this host's face for the peer, before leaving the host
	Denials   uint64 // DeniedIn + DeniedOut
	BytesIn   uint64 // from the peer to local sockets
	BytesOut  uint64 // from local sockets to the peer
	// FaceError is the last error opening a listener on the peer's face
	// (e.g. "127.77.2.1:4369 is taken ..."); empty when all are open.
	FaceError string
}

// Stats returns the counters of every peer of the current snapshot but this
// host, by peer name. It is a copy: safe to keep and to read while traffic
// flows. Counters of a peer removed by Apply are dropped.
func (s *Stack) Stats() map[string]PeerStats {
	snap := s.snap.Load()
	out := make(map[string]PeerStats, len(snap.File.Peers))
	for _, p := range snap.File.Peers {
		if p.Name == snap.Self.Name {
			continue
		}
		out[p.Name] = s.stats.peer(p.Name).snapshot()
	}
	return out
}

// peerCounters are one peer's live counters, updated atomically on the
// data path.
type peerCounters struct {
	open      atomic.Int64
	pending   atomic.Int64 // inbound connections being set up (limits.go)
	total     atomic.Uint64
	deniedIn  atomic.Uint64
	deniedOut atomic.Uint64
	bytesIn   atomic.Uint64
	bytesOut  atomic.Uint64
	faceErr   atomic.Pointer[string]
}

func (c *peerCounters) snapshot() PeerStats {
	st := PeerStats{
		Open:      c.open.Load(),
		Total:     c.total.Load(),
		DeniedIn:  c.deniedIn.Load(),
		DeniedOut: c.deniedOut.Load(),
		BytesIn:   c.bytesIn.Load(),
		BytesOut:  c.bytesOut.Load(),
	}
	st.Denials = st.DeniedIn + st.DeniedOut
	if e := c.faceErr.Load(); e != nil {
		st.FaceError = *e
	}
	return st
}

// setFaceError records (or with "" clears) the last face listener error.
func (c *peerCounters) setFaceError(msg string) {
	if msg == "" {
		c.faceErr.Store(nil)
		return
	}
	c.faceErr.Store(&msg)
}

// statsTable maps peer names to counters, made on first use.
type statsTable struct {
	mu sync.RWMutex
	m  map[string]*peerCounters

	policy policyCounters // decisions and EPMD requests (policystats.go)
}

func newStatsTable() *statsTable {
	return &statsTable{m: make(map[string]*peerCounters)}
}

// peer returns name's counters, creating them on first use.
func (t *statsTable) peer(name string) *peerCounters {
	t.mu.RLock()
	c := t.m[name]
	t.mu.RUnlock()
	if c != nil {
		return c
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if c = t.m[name]; c == nil {
		c = new(peerCounters)
		t.m[name] = c
	}
	return c
}

// prune drops counters of peers no longer in f. Connections still closing
// may update the dropped counters; nobody reads them any more.
func (t *statsTable) prune(f *peers.File) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for name := range t.m {
		if f.Peer(name) == nil {
			delete(t.m, name)
		}
	}
}

// logLimiter lets one log line through per key and interval, so a port scan
// or a retrying client cannot flood the log; it counts what it held back.
type logLimiter struct {
	every time.Duration
	max   int // keys kept; beyond it stale keys are dropped, then all

	mu   sync.Mutex
	last map[limitKey]*limitState
	// budget caps lines per pair of hosts and direction, whatever the
	// port: a scan of every port is 65535 keys of last, not one.
	budget map[limitKey]*budgetState
}

// pairBudget is how many lines about one pair and direction pass per
// interval; the rest are counted and reported by the next line that passes.
const pairBudget = 20

type budgetState struct {
	start time.Time
	used  int
	held  int
}

// limitKey is what one line is about: a peer (or source address), a port,
// a direction and the reason (so an ALIVE2 refusal does not hide a KILL).
type limitKey struct {
	who  string
	port uint16
	dir  direction
	why  string
}

type limitState struct {
	at         time.Time
	suppressed int
}

func newLogLimiter(every time.Duration, max int) *logLimiter {
	return &logLimiter{every: every, max: max, last: make(map[limitKey]*limitState), budget: make(map[limitKey]*budgetState)}
}

// spend takes one line from k's budget for the current interval. held is
// what was refused since the last line that passed (plus extra, lines the
// caller held back for k before asking).
func (l *logLimiter) spend(k limitKey, extra int, now time.Time) (ok bool, held int) {
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
	if st.used >= pairBudget {
		st.held += 1 + extra
		return false, 0
	}
	st.used++
	held, st.held = st.held+extra, 0
	return true, held
}

// allow reports whether to log about k now, and how many lines about k were
// held back since the last one logged.
func (l *logLimiter) allow(k limitKey, now time.Time) (ok bool, suppressed int) {
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
		st = new(limitState)
		l.last[k] = st
	}
	suppressed = st.suppressed
	st.at, st.suppressed = now, 0
	return true, suppressed
}

// evict drops keys quiet for a whole interval, or everything if all are
// recent (a scan from many sources: better a few repeated lines than
// unbounded memory).
func (l *logLimiter) evict(now time.Time) {
	for k, st := range l.last {
		if now.Sub(st.at) >= l.every {
			delete(l.last, k)
		}
	}
	if len(l.last) >= l.max {
		clear(l.last)
	}
}

// logDenied logs a refused connection or request at Warn, rate-limited per
// (source, destination, port, direction, reason). why is the decision
// ("deny default ...", the rule) or what else refused it.
// Beyond that, at most pairBudget lines per interval pass for one pair and
// direction, so a scan of every port logs a few lines, not one per port.
func (s *Stack) logDenied(dir direction, from, to string, port uint16, why string) {
	s.logRefusal(limitKey{who: from + ">" + to, port: port, dir: dir, why: why},
		"dir", dir.String(), "from", from, "to", to, "port", port, "decision", why)
}

// logRefusal logs one refusal described by attrs, under logDenied's limits:
// once per k each interval, and pairBudget lines per pair and direction.
func (s *Stack) logRefusal(k limitKey, attrs ...any) {
	now := time.Now()
	ok, held := s.limiter.allow(k, now)
	if !ok {
		return
	}
	ok, held = s.limiter.spend(limitKey{who: k.who, dir: k.dir}, held, now)
	if !ok {
		return
	}
	if held > 0 {
		attrs = append(attrs, "suppressed", held)
	}
	s.log.Log(context.Background(), slog.LevelWarn, "netstack: refused", attrs...)
}

// logLimited logs msg at level unless a line with the same key was logged
// within the limiter's interval; the next line says how many were held.
// For anything a remote peer or a retrying local client can repeat at will.
func (s *Stack) logLimited(level slog.Level, k limitKey, msg string, attrs ...any) {
	ok, held := s.limiter.allow(k, time.Now())
	if !ok {
		return
	}
	if held > 0 {
		attrs = append(attrs, "suppressed", held)
	}
	s.log.Log(context.Background(), level, msg, attrs...)
}
