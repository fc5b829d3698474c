package peers_test

import (
	"strings"
	"testing"

	"github.com/nodewire/nodewire/peers"
	"github.com/nodewire/nodewire/peers/peerstest"
)

// TestJudge runs the shared table (peerstest.Cases) on Judge itself; the
// data planes and explain run it on their own sites.
func TestJudge(t *testing.T) {
	f := peerstest.File(t)
	for _, c := range peerstest.Cases {
		t.Run(c.Name, func(t *testing.T) {
			v := f.Judge(c.Conn(f))
			if v.Allow() != c.Allow || v.NotOffered != c.NotOffered || !strings.HasPrefix(v.Policy.String(), c.Policy) {
				t.Errorf("Judge: allow %v, not offered %v, policy %q; want %v, %v, %q...", v.Allow(), v.NotOffered, v.Policy, c.Allow, c.NotOffered, c.Policy)
			}
			if c.NotOffered && v.String() != "port not offered (no node registered on it, not exposed)" {
				t.Errorf("String: %q", v)
			}
		})
	}
}

// Judge on a connection from or to a stranger denies it, as Decide does.
func TestJudgeStranger(t *testing.T) {
	f, other := peerstest.File(t), peerstest.File(t)
	v := f.Judge(peers.Conn{From: other.Peer("pay-2"), To: f.Peer("pay-1"), Port: 22, Dir: peers.Inbound})
	if v.Allow() || v.NotOffered {
		t.Fatalf("stranger: %+v", v)
	}
}
