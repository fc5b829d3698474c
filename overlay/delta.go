package overlay

import (
	"context"
	"maps"
	"net/netip"

	"github.com/nodewire/nodewire/peers"
)

// partnerChange is how a reload changes the WireGuard peers: the device
// configuration it wants, and the partners whose entries it had to drop
// or compute anew. A reload adding one peer to 10,000 resolves, diffs and
// looks up the path of one partner, not 10,000 (issue 13: it applies in
// at most 50 ms); every other entry is the last reload's, unchanged.
type partnerChange struct {
	want map[peers.Key]wgPeer
	// gone is the last file's partners whose entries want drops: removed,
	// no longer partners, or changed (their new entry is in fresh).
	gone []*peers.Peer
	// fresh is the new file's partners whose entries were computed anew:
	// added, changed, or with an endpoint that is a DNS name (resolved on
	// every reload, as a name may move).
	fresh []*peers.Peer
	// full: want was computed from nothing (fresh is every partner, gone
	// is unknown): the difference to the device and the paths must be
	// computed over every peer.
	full bool
}

// keys is every key whose entry in want may differ from the one before.
func (c partnerChange) keys() []peers.Key {
	keys := make([]peers.Key, 0, len(c.gone)+len(c.fresh))
	for _, p := range c.gone {
		keys = append(keys, p.PublicKey)
	}
	for _, p := range c.fresh {
		keys = append(keys, p.PublicKey)
	}
	return keys
}

// fullChange is the configuration of partners computed from nothing.
func fullChange(partners []*peers.Peer, resolve func([]*peers.Peer) map[string]netip.AddrPort) partnerChange {
	return partnerChange{want: desiredPeers(partners, resolve(partners)), fresh: partners, full: true}
}

// changePartners is fullChange(partners, resolve) computed from the last
// apply: the file old, its partners and have = desiredPeers of them (the
// device's configuration). A partner keeps have's entry when the last file
// had it, as a partner, under its name, with the same WireGuard inputs
// (samePartner); only the others are resolved and built.
func changePartners(old *peers.File, oldPartners []*peers.Peer, have map[peers.Key]wgPeer,
	f *peers.File, partners []*peers.Peer, resolve func([]*peers.Peer) map[string]netip.AddrPort) partnerChange {
	was := make([]bool, len(old.Peers))
	for _, o := range oldPartners {
		was[o.ID] = true
	}
	kept := make([]bool, len(f.Peers)) // by ID: a partner whose entry is have's
	var c partnerChange
	var m peers.Matcher
	for _, p := range partners {
		if o := m.Find(old, p); o != nil && was[o.ID] && samePartner(o, p) {
			kept[p.ID] = true
		} else {
			c.fresh = append(c.fresh, p)
		}
	}
	// Names are unique in a file (in any case): the partner kept under
	// o's name is the one kept for o.
	m = peers.Matcher{}
	for _, o := range oldPartners {
		if p := m.Find(f, o); p == nil || !kept[p.ID] {
			c.gone = append(c.gone, o)
		}
	}
	// Keys are unique in a file: the drops of gone never touch the entry
	// of a partner kept, and fresh's entries go in after them (a key that
	// moved from one peer to another is dropped, then set).
	c.want = maps.Clone(have)
	if c.want == nil {
		c.want = make(map[peers.Key]wgPeer)
	}
	for _, o := range c.gone {
		delete(c.want, o.PublicKey)
	}
	maps.Copy(c.want, desiredPeers(c.fresh, resolve(c.fresh)))
	return c
}

// samePartner reports whether o and p, the same peer in two files, give
// the same device entry (desiredPeers) and path (by name) whenever they
// are partners: the same name and inputs, and an endpoint that resolves
// alone (none, or an IP literal).
func samePartner(o, p *peers.Peer) bool {
	return o.Name == p.Name && o.PublicKey == p.PublicKey && o.Address == p.Address && o.Endpoint == p.Endpoint &&
		o.TCPEndpoint == p.TCPEndpoint && o.Transport == p.Transport && o.Keepalive == p.Keepalive &&
		literalEndpoint(p.Endpoint)
}

// literalEndpoint reports whether ep needs no DNS: none, or ip:port.
func literalEndpoint(ep string) bool {
	if ep == "" {
		return true
	}
	_, err := netip.ParseAddrPort(ep)
	return err == nil
}

// changePartnersLocked is the partnerChange a reload to f makes: from the
// last apply, or from nothing when the device's configuration is not
// known entry by entry (a failed UAPI set left it as it was).
func (d *Daemon) changePartnersLocked(ctx context.Context, f *peers.File, partners []*peers.Peer) partnerChange {
	resolve := func(ps []*peers.Peer) map[string]netip.AddrPort { return d.resolve(ctx, ps) }
	if !d.haveExact {
		return fullChange(partners, resolve)
	}
	return changePartners(d.file, d.partners, d.have, f, partners, resolve)
}
