package netstack

import (
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/nodewire/nodewire/netstack/denylog"
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

// logDenied logs a refused connection or request at Warn, rate-limited per
// (source, destination, port, direction, reason) and per pair and
// direction (package denylog). why is the decision ("deny default ...",
// the rule) or what else refused it.
func (s *Stack) logDenied(dir peers.Direction, from, to string, port uint16, why string) {
	s.logRefusal(denylog.Key{Who: from + ">" + to, Port: port, Dir: dir, Why: why},
		"dir", dir.String(), "from", from, "to", to, "port", port, "decision", why)
}

// logRefusal logs one refusal described by attrs, under logDenied's limits.
func (s *Stack) logRefusal(k denylog.Key, attrs ...any) { s.limiter.Refused(k, attrs...) }

// logLimited logs msg at level unless a line with the same key was logged
// within the limiter's interval; the next line says how many were held.
// For anything a remote peer or a retrying local client can repeat at will.
func (s *Stack) logLimited(level slog.Level, k denylog.Key, msg string, attrs ...any) {
	s.limiter.Limited(level, k, msg, attrs...)
}
