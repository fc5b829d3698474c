package overlay

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/nodewire/nodewire/peers"
	"github.com/nodewire/nodewire/peers/peerstest"
)

// deltaFile is a peer file of ps (networks lab, ops and far, faces in
// 127.94/16); rules are its interconnect lines.
func deltaFile(t *testing.T, rules string, ps []peerstest.Peer) *peers.File {
	return peerstest.Build(t, "delta.yaml", 94, []string{"lab", "ops", "far"}, rules, ps)
}

// dnsTable is a resolver of fixed answers.
type dnsTable map[string]string

func (r dnsTable) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := r[host]; ok {
		return []netip.Addr{netip.MustParseAddr(a)}, nil
	}
	return nil, errors.New("no such host")
}

// A reload computed incrementally (changePartners, uapiDiffOf, the
// paths of the partners changed only) configures the device, the paths
// and the MSS table exactly as one computed from nothing, for every kind
// of edit.
func TestIncrementalReloadIsFullReload(t *testing.T) {
	const ops = "  - between: [lab, ops]\n"
	base := []peerstest.Peer{
		peerstest.P("self", "lab", 1, 1, ", endpoint: 192.0.2.1:51820"),
		peerstest.P("a", "lab", 2, 2, ", endpoint: 192.0.2.2:51820"),
		peerstest.P("b", "lab", 3, 3, ", endpoint: 198.51.100.3:51820, keepalive: 25s"),
		peerstest.P("c", "ops", 4, 1, ", endpoint: 203.0.113.4:51820"), // its route look-up fails
		peerstest.P("d", "ops", 5, 2, ", endpoint: d.example:51820"),
		peerstest.P("e", "lab", 6, 4, ""), // no endpoint: it dials us
		peerstest.P("f", "far", 7, 1, ", endpoint: 192.0.2.7:51820"),
		peerstest.P("g", "lab", 8, 5, ", endpoint: 192.0.2.8:51820, tcp_endpoint: 192.0.2.8:443"),
		peerstest.P("h", "lab", 9, 6, ", endpoint: \"[2001:db8::9]:51820\""),
	}
	edit := func(f func(ps []peerstest.Peer) []peerstest.Peer) []peerstest.Peer { return f(slices.Clone(base)) }
	set := func(name string, f func(p *peerstest.Peer)) []peerstest.Peer {
		return edit(func(ps []peerstest.Peer) []peerstest.Peer {
			for i := range ps {
				if ps[i].Name == name {
					f(&ps[i])
				}
			}
			return ps
		})
	}
	oldDNS := dnsTable{"d.example": "192.0.2.5"}
	for _, tc := range []struct {
		name       string
		rules      string
		ps         []peerstest.Peer
		dns        dnsTable
		wantFresh  int // partners built anew: the names with DNS, and the ones edited
		wantGoneMx int // at most this many entries dropped
	}{
		{"no change", ops, base, oldDNS, 1, 1},
		{"a peer added at the end", ops, append(slices.Clone(base), peerstest.P("i", "lab", 10, 7, ", endpoint: 192.0.2.10:51820")), oldDNS, 2, 1},
		{"a peer added in the middle", ops, edit(func(ps []peerstest.Peer) []peerstest.Peer {
			return slices.Insert(ps, 2, peerstest.P("i", "lab", 10, 7, ", endpoint: 192.0.2.10:51820"))
		}), oldDNS, 2, 1},
		{"a peer removed", ops, edit(func(ps []peerstest.Peer) []peerstest.Peer { return slices.Delete(ps, 2, 3) }), oldDNS, 1, 2},
		{"an endpoint moved", ops, set("a", func(p *peerstest.Peer) { p.Extra = ", endpoint: 192.0.2.22:51820" }), oldDNS, 2, 2},
		{"an endpoint dropped", ops, set("a", func(p *peerstest.Peer) { p.Extra = "" }), oldDNS, 2, 2},
		{"a key changed", ops, set("b", func(p *peerstest.Peer) { p.Key = 20 }), oldDNS, 2, 2},
		{"keys swapped", ops, edit(func(ps []peerstest.Peer) []peerstest.Peer {
			ps[1].Key, ps[2].Key = ps[2].Key, ps[1].Key
			return ps
		}), oldDNS, 3, 3},
		{"addresses swapped", ops, edit(func(ps []peerstest.Peer) []peerstest.Peer {
			ps[1].Addr, ps[2].Addr = ps[2].Addr, ps[1].Addr
			return ps
		}), oldDNS, 3, 3},
		{"keepalive changed", ops, set("b", func(p *peerstest.Peer) { p.Extra = ", endpoint: 198.51.100.3:51820, keepalive: 10s" }), oldDNS, 2, 2},
		{"transport tcp", ops, set("g", func(p *peerstest.Peer) { p.Extra += ", transport: tcp" }), oldDNS, 2, 2},
		{"a peer renamed", ops, set("a", func(p *peerstest.Peer) { p.Name = "a2" }), oldDNS, 2, 2},
		{"a peer renamed in case only", ops, set("a", func(p *peerstest.Peer) { p.Name = "A" }), oldDNS, 2, 2},
		{"a peer moved out of reach", ops, set("b", func(p *peerstest.Peer) { p.Network, p.Addr = "far", 2 }), oldDNS, 1, 2},
		{"a peer moved into reach", ops, set("f", func(p *peerstest.Peer) { p.Network, p.Addr = "lab", 9 }), oldDNS, 2, 1},
		{"the rule removed", "", base, oldDNS, 1, 3},
		{"a rule added", ops + "  - between: [lab, far]\n", base, oldDNS, 2, 1},
		{"a DNS name moved", ops, base, dnsTable{"d.example": "192.0.2.55"}, 1, 1},
		{"a DNS name gone", ops, base, dnsTable{}, 1, 1},
		{"peers reordered", ops, edit(func(ps []peerstest.Peer) []peerstest.Peer {
			slices.Reverse(ps)
			return ps
		}), oldDNS, 1, 1},
		{"self moved to ops", ops, set("self", func(p *peerstest.Peer) { p.Network, p.Addr = "ops", 9 }), oldDNS, 1, 1},
		{"everyone moved away", ops, edit(func(ps []peerstest.Peer) []peerstest.Peer {
			for i := range ps[1:] {
				ps[i+1].Network = "far"
				ps[i+1].Addr = 10 + i
			}
			return ps
		}), oldDNS, 0, 9},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			old := deltaFile(t, ops, base)
			f := deltaFile(t, tc.rules, tc.ps)
			oldPartners := old.Partners(old.Peer("self"))
			partners := f.Partners(f.Peer("self"))
			resolveWith := func(r resolver) func([]*peers.Peer) map[string]netip.AddrPort {
				return func(ps []*peers.Peer) map[string]netip.AddrPort {
					eps, _ := resolveEndpoints(ctx, r, ps)
					return eps
				}
			}
			first := fullChange(oldPartners, resolveWith(oldDNS))
			have := first.want

			full := fullChange(partners, resolveWith(tc.dns))
			inc := changePartners(old, oldPartners, have, f, partners, resolveWith(tc.dns))
			if !maps.Equal(inc.want, full.want) {
				t.Errorf("want:\n incremental %v\n full        %v", inc.want, full.want)
			}
			if got, want := uapiDiffOf(have, inc.want, inc.keys()), uapiDiff(have, full.want); got != want {
				t.Errorf("UAPI difference:\n incremental %q\n full        %q", got, want)
			}
			if inc.full || len(inc.fresh) > tc.wantFresh || len(inc.gone) > tc.wantGoneMx {
				t.Errorf("incremental change built %d partners and dropped %d (full %v), want at most %d and %d",
					len(inc.fresh), len(inc.gone), inc.full, tc.wantFresh, tc.wantGoneMx)
			}

			// The paths after the first apply, then a refresh that saw a
			// partner roam and carry traffic: kept peers keep that.
			noRoute := errors.New("no route")
			route := func(a netip.Addr) (int, error) {
				if a.Is4() && a.As4()[0] == 203 {
					return 0, noRoute
				}
				if a.Is4() && a.As4()[0] == 198 {
					return 1400, nil
				}
				return 1500, nil
			}
			daemon := func() *Daemon {
				d := &Daemon{log: slog.New(slog.NewTextHandler(io.Discard, nil)), mss: &mssDevice{}, route: route}
				d.file, d.partners = old, oldPartners
				d.configuredPathsLocked(nil, first)
				seen := make(map[peers.Key]pathSeen)
				for k, w := range have {
					seen[k] = pathSeen{Endpoint: w.Endpoint}
				}
				a := old.Peer("a").PublicKey
				seen[a] = pathSeen{Endpoint: netip.MustParseAddrPort("198.51.100.99:4000"), Bytes: 1000}
				_, paths := pathTable(oldPartners, seen, d.paths, route, 0)
				d.installPathsLocked(paths)
				d.file, d.partners = f, partners
				return d
			}
			dFull, dInc := daemon(), daemon()
			dFull.configuredPathsLocked(have, full)
			dInc.configuredPathsLocked(have, inc)
			if !maps.Equal(dInc.paths, dFull.paths) {
				t.Errorf("paths:\n incremental %v\n full        %v", dInc.paths, dFull.paths)
			}
			if got, want := *dInc.mss.peers.Load(), *dFull.mss.peers.Load(); !maps.Equal(got, want) {
				t.Errorf("MSS table:\n incremental %v\n full        %v", got, want)
			}
		})
	}
}

// After a failed UAPI set the daemon knows the device's keys only
// (deviceHave): the next reload is computed from nothing, and its
// difference sets every wanted peer in full and removes the others.
func TestReloadAfterFailedSetIsFull(t *testing.T) {
	ps := []peerstest.Peer{
		peerstest.P("self", "lab", 1, 1, ""),
		peerstest.P("a", "lab", 2, 2, ", endpoint: 192.0.2.2:51820"),
		peerstest.P("b", "lab", 3, 3, ", endpoint: 192.0.2.3:51820"),
	}
	f := deltaFile(t, "", ps)
	partners := f.Partners(f.Peer("self"))
	stranger := peers.Key{9}
	d := &Daemon{log: slog.New(slog.NewTextHandler(io.Discard, nil)), file: f, partners: partners}
	d.have = map[peers.Key]wgPeer{f.Peer("a").PublicKey: {Key: f.Peer("a").PublicKey}, stranger: {Key: stranger}}
	d.haveExact = false
	c := d.changePartnersLocked(context.Background(), f, partners)
	if !c.full || len(c.fresh) != 2 {
		t.Fatalf("change after a failed set: full %v, %d fresh; want a full change of 2", c.full, len(c.fresh))
	}
	diff := uapiDiff(d.have, c.want)
	for _, want := range []string{
		"public_key=" + stranger.Hex() + "\nremove=true\n",
		"public_key=" + f.Peer("a").PublicKey.Hex() + "\nupdate_only=true\nendpoint=192.0.2.2:51820\n",
		"public_key=" + f.Peer("b").PublicKey.Hex() + "\nendpoint=192.0.2.3:51820\n",
	} {
		if !strings.Contains(diff, want) {
			t.Errorf("difference lacks %q:\n%s", want, diff)
		}
	}
}
