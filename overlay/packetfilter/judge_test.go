package packetfilter

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nodewire/nodewire/peers"
	"github.com/nodewire/nodewire/peers/peerstest"
)

// TestJudgeSites runs the shared table (peerstest.Cases) through both
// sites of the filter that ask whether a connection may exist: a new flow
// (decide, with the distribution ports it learned from epmd replies) and
// a live flow judged again on reload (decideAgain).
func TestJudgeSites(t *testing.T) {
	file := peerstest.File(t)
	const epmdPort = 14369 // not 4369: the sites translate it
	for _, c := range peerstest.Cases {
		if c.Dir == peers.Outbound && c.Node != "" {
			// The filter learns which ports a peer's epmd hands out, not
			// to which node: outbound it asks without a name, and the
			// peer judges the node (the "node name not known" case).
			continue
		}
		self, remote := file.Peer(c.Self()), file.Peer(c.Remote())
		snap := &peers.Snapshot{File: file, Self: self}
		proto, wire := uint8(protoTCP), c.Port
		switch {
		case c.Echo:
			proto, wire = protoICMP, 0
		case wire == peers.EPMDPort:
			wire = epmdPort
		}
		dir, outbound := peers.Inbound, c.Dir == peers.Outbound
		if outbound {
			dir = peers.Outbound
		}
		t.Run(c.Name, func(t *testing.T) {
			f := New(&fakeTUN{}, Config{Logger: slog.New(slog.DiscardHandler), EPMDPort: epmdPort}, snap)
			now := f.now()
			if c.Erlang && wire != epmdPort {
				if outbound {
					f.remoteDist[peerPort{remote.Address, wire}] = now + int64(time.Minute)
				} else {
					f.localDist[wire] = localNode{expires: now + int64(time.Minute), name: c.Node}
				}
			}
			d, why := f.decide(snap, remote, dir, proto, wire, now)
			allow := why == ""
			notOffered := why == "port not offered (no node registered on it, not exposed)"
			if !allow && !notOffered && why != d.String() {
				t.Errorf("decide: why %q is not the decision %q", why, d)
			}
			check(t, "decide", c, allow, notOffered, d)

			fl := flow{port: wire, erlang: c.Erlang, node: c.Node, outbound: outbound, remote: remote.Address}
			why = f.decideAgain(snap, remote, dir, proto, fl)
			switch {
			case c.Allow != (why == ""):
				t.Errorf("decideAgain: %q, want allow %v", why, c.Allow)
			case c.NotOffered && why != "port not offered (no node registered on it, not exposed)":
				t.Errorf("decideAgain: %q, want port not offered", why)
			case !c.Allow && !c.NotOffered && !strings.HasPrefix(why, c.Policy):
				t.Errorf("decideAgain: %q, want %s...", why, c.Policy)
			}
		})
	}
}

// check compares one site's answer with the table's.
func check(t *testing.T, site string, c peerstest.Case, allow, notOffered bool, d peers.Decision) {
	t.Helper()
	if allow != c.Allow || notOffered != c.NotOffered || !strings.HasPrefix(d.String(), c.Policy) {
		t.Errorf("%s: allow %v, not offered %v, policy %q; want %v, %v, %q...", site, allow, notOffered, d, c.Allow, c.NotOffered, c.Policy)
	}
}
