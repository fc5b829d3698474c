package peers

import (
	"strings"
	"testing"
)

// FuzzParse: Parse never panics, and whatever it accepts satisfies the
// invariants the rest of nodewire relies on.
func FuzzParse(f *testing.F) {
	for _, data := range fixtureFiles(f) {
		f.Add(data)
	}
	f.Add([]byte(keys.Replace(policyFile)))
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse("peers.yaml", data)
		if err != nil {
			if file != nil {
				t.Fatal("a File along with errors")
			}
			es, ok := err.(Errors)
			if !ok || len(es) == 0 {
				t.Fatalf("error %T %v", err, err)
			}
			for i, e := range es {
				if i > 0 && e.Line < es[i-1].Line {
					t.Fatalf("errors out of line order: %v", err)
				}
				if e.Msg == "" || strings.Contains(e.Error(), "\n") {
					t.Fatalf("malformed error %q", e.Error())
				}
			}
			return
		}
		checkInvariants(t, file)
	})
}

// checkInvariants checks a File that Parse accepted.
func checkInvariants(t *testing.T, f *File) {
	t.Helper()
	ov := f.Overlay
	if !ov.Prefix.Addr().Is4() || ov.Prefix.Masked() != ov.Prefix || ov.Faces.Bits() != ov.Prefix.Bits() ||
		!loopback.Contains(ov.Faces.Addr()) || ov.Faces.Masked() != ov.Faces || ov.Port == 0 {
		t.Fatalf("bad overlay %+v", ov)
	}
	for i, nw := range f.Networks {
		if nw.ID != i || CheckName(nw.Name) != nil || f.Network(nw.Name) != nw {
			t.Fatalf("bad network %+v", nw)
		}
		if !ov.Prefix.Contains(nw.Prefix.Addr()) || nw.Prefix.Bits() < ov.Prefix.Bits() || nw.Prefix.Masked() != nw.Prefix {
			t.Fatalf("network %s %s outside overlay %s", nw.Name, nw.Prefix, ov.Prefix)
		}
		for _, other := range f.Networks[:i] {
			if overlaps(nw.Prefix, other.Prefix) {
				t.Fatalf("networks %s and %s overlap", nw.Name, other.Name)
			}
		}
	}
	keys := map[Key]bool{}
	for i, p := range f.Peers {
		if p.ID != i || CheckName(p.Name) != nil || f.Peer(p.Name) != p || f.Network(p.Name) != nil {
			t.Fatalf("bad peer %+v", p)
		}
		if p.Network == nil || f.Networks[p.Network.ID] != p.Network {
			t.Fatalf("peer %s has no network", p.Name)
		}
		if !p.Network.Prefix.Contains(p.Address) || p.Address == p.Network.Prefix.Addr() {
			t.Fatalf("peer %s %s outside network %s", p.Name, p.Address, p.Network.Prefix)
		}
		if p.Face != FaceOf(ov.Prefix, ov.Faces, p.Address) || FaceOf(ov.Faces, ov.Prefix, p.Face) != p.Address ||
			reservedFace(p.Face) != "" {
			t.Fatalf("peer %s: face %s does not map back to %s", p.Name, p.Face, p.Address)
		}
		if f.PeerByAddr(p.Address) != p || f.PeerByFace(p.Face) != p {
			t.Fatalf("peer %s: lookups by address and face fail", p.Name)
		}
		if p.PublicKey.IsZero() || keys[p.PublicKey] {
			t.Fatalf("peer %s: zero or duplicate key", p.Name)
		}
		keys[p.PublicKey] = true
		if p.Endpoint != "" {
			if _, err := parseEndpoint(p.Endpoint, 1); err != nil {
				t.Fatalf("peer %s: endpoint %q does not parse again: %v", p.Name, p.Endpoint, err)
			}
		}
		if p.Keepalive < 0 || p.Keepalive > maxKeepalive {
			t.Fatalf("peer %s: keepalive %v", p.Name, p.Keepalive)
		}
		for _, r := range p.Expose {
			if r.Lo == 0 || r.Lo > r.Hi {
				t.Fatalf("peer %s: expose %v", p.Name, r)
			}
		}
	}
	for i, r := range f.Rules {
		if r.Index != i || r.Line <= 0 {
			t.Fatalf("bad rule %+v", r)
		}
		for _, name := range []string{r.From, r.To} {
			if f.Peer(name) == nil && f.Network(name) == nil {
				t.Fatalf("rule %s names nothing", r)
			}
		}
		_ = r.String()
	}
	for _, tt := range f.Tests {
		d := f.Decide(f.Peer(tt.From), f.Peer(tt.To), tt.Port, false)
		if tt.Node != "" {
			d = f.DecideNode(f.Peer(tt.From), f.Peer(tt.To), tt.Port, tt.Node)
		}
		if d.Allow != tt.Allow {
			t.Fatalf("accepted a file whose test fails: %+v: %s", tt, d)
		}
	}
	if len(f.Peers) <= 20 {
		checkDecide(t, f)
	}
	for _, nw := range f.Networks {
		if a, err := f.NextAddress(nw.Name); err == nil && (!nw.Prefix.Contains(a) || f.PeerByAddr(a) != nil) {
			t.Fatalf("NextAddress(%s) = %s", nw.Name, a)
		}
	}
	for _, bits := range []int{ov.Prefix.Bits(), 24, 32} {
		if p, err := f.NextNetworkPrefix(bits); err == nil {
			for _, nw := range f.Networks {
				if overlaps(p, nw.Prefix) || !ov.Prefix.Contains(p.Addr()) {
					t.Fatalf("NextNetworkPrefix(%d) = %s overlaps %s", bits, p, nw.Prefix)
				}
			}
		}
	}
}
