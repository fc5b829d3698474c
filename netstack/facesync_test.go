package netstack

import (
	"io"
	"log/slog"
	"maps"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/nodewire/nodewire/peers"
	"github.com/nodewire/nodewire/peers/peerstest"
)

// syncFile is a peer file of ps (networks lab and ops, faces in
// 127.96/16); rules are its interconnect lines.
func syncFile(t *testing.T, rules string, ps []peerstest.Peer) *peers.File {
	return peerstest.Build(t, "sync.yaml", 96, []string{"lab", "ops"}, rules, ps)
}

// expose is a peer line's exposed ports.
func expose(ports string) string { return ", expose: [" + ports + "]" }

// faceState is what a sync decides of one face.
type faceState struct {
	addr              netip.AddrPort
	peerAddr          netip.Addr
	dark, epmd        bool
	expose, erlang    bool
	learnedFor, error string
}

// A sync that looks only at the peers that changed (syncLocked from the
// last snapshot) leaves the faces, their flags and the peers' face errors
// exactly as a sync that looks at every peer, for every kind of edit,
// with a learned distribution port and a face that failed to open.
func TestFaceSyncIncrementalIsFull(t *testing.T) {
	const rule = "  - between: [lab, ops]\n"
	base := []peerstest.Peer{
		peerstest.P("self", "lab", 1, 1, ""),
		peerstest.P("a", "lab", 2, 2, ""),
		peerstest.P("b", "lab", 3, 3, expose("9100")),
		peerstest.P("c", "ops", 4, 1, ""),
		peerstest.P("d", "ops", 5, 2, expose("8080-8081")),
		peerstest.P("e", "lab", 6, 4, ""),
	}
	set := func(name string, f func(p *peerstest.Peer)) []peerstest.Peer {
		ps := slices.Clone(base)
		for i := range ps {
			if ps[i].Name == name {
				f(&ps[i])
			}
		}
		return ps
	}
	epmd := freePort(t)
	dist := freePort(t) // a distribution port a's epmd announced
	for _, tc := range []struct {
		name  string
		rules string
		ps    []peerstest.Peer
		// block holds this peer's epmd face during the sync: its face
		// fails to open, and a sync with no change after opens it.
		block string
		// staleDist: the distribution port was learned from a snapshot
		// where a had another address (a request that raced a reload).
		staleDist bool
	}{
		{"no change", rule, base, "", false},
		{"a peer added", rule, append(slices.Clone(base), peerstest.P("f", "lab", 7, 5, expose("9100"))), "", false},
		{"a peer added in the middle", rule, slices.Insert(slices.Clone(base), 2, peerstest.P("f", "lab", 7, 5, "")), "", false},
		{"a peer removed", rule, slices.Delete(slices.Clone(base), 1, 2), "", false},
		{"the peer with a learned port moved", rule, set("a", func(p *peerstest.Peer) { p.Addr = 9 }), "", false},
		{"an exposed port added", rule, set("a", func(p *peerstest.Peer) { p.Extra = expose("9100") }), "", false},
		{"exposed ports removed", rule, set("d", func(p *peerstest.Peer) { p.Extra = "" }), "", false},
		{"a key changed only", rule, set("b", func(p *peerstest.Peer) { p.Key = 20 }), "", false},
		{"a peer renamed", rule, set("e", func(p *peerstest.Peer) { p.Name = "e2" }), "", false},
		{"a peer renamed in case only", rule, set("a", func(p *peerstest.Peer) { p.Name = "A" }), "", false},
		{"the rule removed: ops darkens", "", base, "", false},
		{"a peer moved to ops", rule, set("e", func(p *peerstest.Peer) { p.Network, p.Addr = "ops", 7 }), "", false},
		{"self moved", rule, set("self", func(p *peerstest.Peer) { p.Addr = 8 }), "", false},
		{"peers reordered", rule, func() []peerstest.Peer { ps := slices.Clone(base); slices.Reverse(ps); return ps }(), "", false},
		{"a new peer's face taken", rule, append(slices.Clone(base), peerstest.P("f", "lab", 7, 5, "")), "f", false},
		{"an old peer's face taken, and the peer moved", rule, set("c", func(p *peerstest.Peer) { p.Addr = 9 }), "c", false},
		{"a port learned from a stale snapshot", rule, base, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old, f := syncFile(t, rule, base), syncFile(t, tc.rules, tc.ps)
			run := func(full bool) map[faceKey]faceState {
				s, err := New(Config{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), EPMDPort: epmd}, &peers.Snapshot{File: old, Self: old.Peer("self")})
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				if err := s.Start(); err != nil {
					t.Fatal(err)
				}
				learnedFrom := old
				if tc.staleDist {
					learnedFrom = syncFile(t, rule, set("a", func(p *peerstest.Peer) { p.Addr = 9 }))
				}
				if err := s.faces.ensureDist(learnedFrom.Peer("a"), dist, "app"); err != nil {
					t.Fatal(err)
				}
				snap := &peers.Snapshot{File: f, Self: f.Peer("self")}
				var prev *peers.Snapshot
				if !full {
					prev = s.faces.synced
				}
				if tc.block != "" {
					p := f.Peer(tc.block)
					ln, err := net.Listen("tcp4", netip.AddrPortFrom(p.Face, epmd).String())
					if err != nil {
						t.Fatal(err)
					}
					s.faces.mu.Lock()
					s.faces.syncLocked(snap, prev)
					s.faces.mu.Unlock()
					if got := s.stats.peer(p.Name).snapshot().FaceError; got == "" {
						t.Errorf("no face error for %s with its face taken", p.Name)
					}
					ln.Close()
					if !full {
						prev = s.faces.synced
					}
				}
				s.faces.mu.Lock()
				s.faces.syncLocked(snap, prev)
				s.faces.mu.Unlock()
				return faceStates(s, f)
			}
			if inc, full := run(false), run(true); !maps.Equal(inc, full) {
				t.Errorf("faces:\n incremental %v\n full        %v", inc, full)
			}
		})
	}
}

// faceStates is every face of s and the face errors of f's peers.
func faceStates(s *Stack, f *peers.File) map[faceKey]faceState {
	s.faces.mu.Lock()
	defer s.faces.mu.Unlock()
	out := make(map[faceKey]faceState)
	for k, fc := range s.faces.faces {
		out[k] = faceState{addr: fc.addr, peerAddr: fc.peerAddr, dark: fc.dark, epmd: fc.epmd,
			expose: fc.expose.Load(), erlang: fc.erlang.Load(), learnedFor: fc.nodeName()}
	}
	for _, p := range f.Peers {
		if e := s.stats.peer(p.Name).snapshot().FaceError; e != "" {
			out[faceKey{p.Name, 0}] = faceState{error: e}
		}
	}
	return out
}
