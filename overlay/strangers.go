package overlay

import (
	"log/slog"
	"maps"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nodewire/nodewire/peers"
)

// strangerLogEvery is how often one endpoint's refused handshakes are
// logged: a WireGuard peer retries its handshake every 5 s.
const strangerLogEvery = 10 * time.Second

// strangerLogBudget is how many refused handshakes are logged in all per
// strangerLogEvery: a flood from spoofed endpoints must not flood the log.
const strangerLogBudget = 20

// strangers logs the handshakes WireGuard drops because their sender is no
// WireGuard peer here, and counts them per peer. With lazy peers that is,
// besides unknown keys, every host of the file the policy lets exchange
// nothing with this one: its packets never reach the data plane, which
// would have logged and counted their refusal, so this says at least who
// knocked. WireGuard names only the source endpoint; the peer is the one
// of the file at that endpoint, if any (a peer behind NAT has none).
type strangers struct {
	view atomic.Pointer[strangerView]
	log  *slog.Logger

	mu      sync.Mutex
	last    map[string]time.Time // endpoint -> when last logged
	window  time.Time            // start of the current budget window
	logged  int                  // lines logged in it
	refusal map[string]uint64    // peer name -> refused handshakes
}

// strangerView is the snapshot refused judges by, with its peers indexed
// by endpoint: a handshake flood costs a map look-up per packet. The
// index is built on the first refusal, not on every reload: a reload of a
// 10,000-peer file does not pay for it, and most see no stranger at all.
type strangerView struct {
	snap  *peers.Snapshot
	index sync.Once
	at    map[netip.AddrPort]*peers.Peer // built by index
}

// setSnapshot makes snap the one refused judges by.
func (s *strangers) setSnapshot(snap *peers.Snapshot) {
	s.view.Store(&strangerView{snap: snap})
}

// peerAt is the peer of the snapshot whose endpoint is ap, or nil.
func (v *strangerView) peerAt(ap netip.AddrPort) *peers.Peer {
	v.index.Do(func() {
		v.at = make(map[netip.AddrPort]*peers.Peer, len(v.snap.File.Peers))
		for _, p := range v.snap.File.Peers {
			if e, err := netip.ParseAddrPort(p.Endpoint); err == nil {
				v.at[netip.AddrPortFrom(e.Addr().Unmap(), e.Port())] = p
			}
		}
	})
	return v.at[ap]
}

// refused is called with the endpoint of a dropped handshake initiation.
func (s *strangers) refused(endpoint string) {
	v := s.view.Load()
	if v == nil {
		return
	}
	var p *peers.Peer
	if ap, err := netip.ParseAddrPort(endpoint); err == nil {
		p = v.peerAt(netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
	}
	if p != nil && (p == v.snap.Self || v.snap.File.Exchange(v.snap.Self, p)) {
		return // a partner's handshake that failed for another reason (a stale key, a replay): WireGuard's business
	}
	now := time.Now()
	s.mu.Lock()
	if p != nil {
		if s.refusal == nil {
			s.refusal = make(map[string]uint64)
		}
		s.refusal[p.Name]++
	}
	if now.Sub(s.window) >= strangerLogEvery {
		s.window, s.logged = now, 0
	}
	if t, ok := s.last[endpoint]; ok && now.Sub(t) < strangerLogEvery || s.logged >= strangerLogBudget {
		s.mu.Unlock()
		return
	}
	if s.last == nil || len(s.last) >= 1024 {
		s.last = make(map[string]time.Time) // forget all, rather than grow
	}
	s.last[endpoint] = now
	s.logged++
	s.mu.Unlock()

	self := v.snap.Self
	if p == nil {
		s.log.Warn("wireguard: refused handshake", slog.String("endpoint", endpoint),
			slog.String("reason", "not from a WireGuard peer of this host (a key not in the peer file, or a peer the policy lets exchange nothing with this host)"))
		return
	}
	s.log.Warn("wireguard: refused handshake", slog.String("from", p.Name), slog.String("endpoint", endpoint),
		slog.String("reason", "no WireGuard peer here: the policy lets neither "+p.Name+" ("+p.Network.Name+") nor "+
			self.Name+" ("+self.Network.Name+") open anything to the other"))
}

// refusals is the refused handshakes so far, per peer name.
func (s *strangers) refusals() map[string]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.refusal)
}
