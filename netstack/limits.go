package netstack

// Per-peer bounds on inbound connections. gVisor's forwarder holds at most
// maxInFlight SYNs for the whole host, and a handshake that is never
// completed (a half-open connection) holds its slot for about a minute of
// SYN-ACK retries. Without a per-peer bound one peer flooding SYNs would
// lock every other peer out; with it a flood costs that peer its own
// connections only. A SYN over the bound is dropped, not reset, so a burst
// of honest connections is delayed (the clients retry), not refused.
const (
	// maxPendingPerPeer bounds a peer's inbound connections still being
	// set up: policy, local dial, TCP handshake, send_name.
	maxPendingPerPeer = 128
	// maxOpenPerPeer bounds a peer's open forwarded connections (both
	// directions). Distribution needs one per node pair; this leaves room
	// for exposed services with many connections.
	maxOpenPerPeer = 4096
)

// reasonPeerLimit labels SYNs dropped over a bound (metrics, refusals).
const reasonPeerLimit = "peer_limit"

// enterPending counts one more inbound connection in setup for the peer;
// false (nothing counted) when the peer is at a bound.
func (c *peerCounters) enterPending() bool {
	if c.open.Load() >= maxOpenPerPeer {
		return false
	}
	if c.pending.Add(1) > maxPendingPerPeer {
		c.pending.Add(-1)
		return false
	}
	return true
}

func (c *peerCounters) leavePending() { c.pending.Add(-1) }
