package netstack

import (
	"strings"
	"testing"

	"github.com/nodewire/nodewire/peers"
	"github.com/nodewire/nodewire/peers/peerstest"
)

// TestJudgeSites runs the shared table (peerstest.Cases) through every
// site of this plane that asks whether a connection may exist: the inbound
// forwarder (judgeIn), a local connection to a face (face.question), and
// a reload judging a live connection again (judgeOne).
func TestJudgeSites(t *testing.T) {
	f := peerstest.File(t)
	const epmdPort = 14369 // not 4369: the sites translate it
	for _, c := range peerstest.Cases {
		if c.Echo {
			continue // pings are admit.go's, judged by DecidePing
		}
		self, remote := f.Peer(c.Self()), f.Peer(c.Remote())
		snap := &peers.Snapshot{File: f, Self: self}
		wire := c.Port
		if wire == peers.EPMDPort {
			wire = epmdPort
		}
		t.Run(c.Name, func(t *testing.T) {
			if c.Dir == peers.Inbound {
				asked := false
				q, v := judgeIn(snap, remote, wire, epmdPort, func() (string, bool) {
					asked = true
					return c.Node, c.Erlang
				})
				check(t, "judgeIn", c, v.Allow(), v.NotOffered, v.Policy)
				if q.Erlang != c.Erlang || q.Node != c.Node {
					t.Errorf("judgeIn asked erlang %v node %q", q.Erlang, q.Node)
				}
				if asked && wire == epmdPort {
					t.Errorf("judgeIn asked epmd about its own port")
				}
			} else {
				fc := &face{epmd: wire == epmdPort}
				fc.expose.Store(remote.Exposes(c.Port))
				if c.Erlang && !fc.epmd {
					fc.erlang.Store(true)
					node := c.Node
					fc.node.Store(&node)
				}
				v := f.Judge(fc.question(self, remote, c.Port))
				check(t, "face", c, v.Allow(), v.NotOffered, v.Policy)
			}
			tc := &trackedConn{
				peer: remote.Name, peerAddr: remote.Address, selfAddr: self.Address,
				port: c.Port, dir: peers.Outbound, erlang: c.Erlang, node: c.Node, epmd: c.Port == peers.EPMDPort,
			}
			if c.Dir == peers.Inbound {
				tc.dir = peers.Inbound
			}
			why := judgeOne(snap, self, remote, tc)
			switch {
			case c.Allow != (why == ""):
				t.Errorf("judgeOne: %q, want allow %v", why, c.Allow)
			case c.NotOffered && why != "port no longer exposed":
				t.Errorf("judgeOne: %q, want port no longer exposed", why)
			case !c.Allow && !c.NotOffered && !strings.HasPrefix(why, "policy now denies: "+c.Policy):
				t.Errorf("judgeOne: %q, want policy now denies: %s...", why, c.Policy)
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
