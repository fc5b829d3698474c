package overlay

import (
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nodewire/nodewire/peers"
)

// strangerLogEvery is how often one endpoint's refused handshakes are
// logged: a WireGuard peer retries its handshake every 5 s.
const strangerLogEvery = 10 * time.Second

// strangers logs the handshakes WireGuard drops because their sender is no
// WireGuard peer here. With lazy peers that is, besides unknown keys, every
// host of the file the policy lets exchange nothing with this one: its
// packets never reach the data plane, which would have logged their
// refusal, so this says at least who knocked. WireGuard names only the
// source endpoint; the peer is the one of the file at that endpoint, if
// any (a peer behind NAT has none).
type strangers struct {
	snap atomic.Pointer[peers.Snapshot]
	log  *slog.Logger

	mu   sync.Mutex
	last map[string]time.Time // endpoint -> when last logged
}

// refused is called with the endpoint of a dropped handshake initiation.
func (s *strangers) refused(endpoint string) {
	now := time.Now()
	s.mu.Lock()
	if t, ok := s.last[endpoint]; ok && now.Sub(t) < strangerLogEvery {
		s.mu.Unlock()
		return
	}
	if s.last == nil || len(s.last) >= 1024 {
		s.last = make(map[string]time.Time) // forget all, rather than grow
	}
	s.last[endpoint] = now
	s.mu.Unlock()

	snap := s.snap.Load()
	if snap == nil {
		return
	}
	p := peerAtEndpoint(snap.File, endpoint)
	switch {
	case p == nil:
		s.log.Warn("wireguard: refused handshake", slog.String("endpoint", endpoint),
			slog.String("reason", "not from a WireGuard peer of this host (a key not in the peer file, or a peer the policy lets exchange nothing with this host)"))
	case p == snap.Self || snap.File.Exchange(snap.Self, p):
		// A partner's handshake that failed for another reason (a stale
		// key, a replay): WireGuard's own business.
	default:
		s.log.Warn("wireguard: refused handshake", slog.String("from", p.Name), slog.String("endpoint", endpoint),
			slog.String("reason", "no WireGuard peer here: the policy lets neither "+p.Name+" ("+p.Network.Name+") nor "+
				snap.Self.Name+" ("+snap.Self.Network.Name+") open anything to the other"))
	}
}

// peerAtEndpoint is the peer of f whose endpoint is endpoint (an IP:port
// literal), or nil.
func peerAtEndpoint(f *peers.File, endpoint string) *peers.Peer {
	ap, err := netip.ParseAddrPort(endpoint)
	if err != nil {
		return nil
	}
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	for _, p := range f.Peers {
		if e, err := netip.ParseAddrPort(p.Endpoint); err == nil && netip.AddrPortFrom(e.Addr().Unmap(), e.Port()) == ap {
			return p
		}
	}
	return nil
}
