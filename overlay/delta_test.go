package overlay

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/nodewire/nodewire/peers"
)

// deltaPeer is one peer line of deltaFile.
type deltaPeer struct {
	name, network string
	key           byte // the public key is 32 bytes of this
	addr          int  // 10.94.<network>.addr
	extra         string
}

func (p deltaPeer) line() string {
	net := map[string]int{"lab": 1, "ops": 2, "far": 3}[p.network]
	key := base64.StdEncoding.EncodeToString([]byte(strings.Repeat(string([]byte{p.key}), 32)))
	return fmt.Sprintf("  %s: {network: %s, public_key: %s, address: 10.94.%d.%d%s}\n", p.name, p.network, key, net, p.addr, p.extra)
}

// deltaFile is a peer file of ps; rules are its interconnect lines.
func deltaFile(t *testing.T, rules string, ps []deltaPeer) *peers.File {
	t.Helper()
	var b strings.Builder
	b.WriteString("overlay: {prefix: 10.94.0.0/16, faces: 127.94.0.0/16}\nnetworks:\n  lab: {prefix: 10.94.1.0/24}\n  ops: {prefix: 10.94.2.0/24}\n  far: {prefix: 10.94.3.0/24}\n")
	if rules != "" {
		b.WriteString("interconnect:\n" + rules)
	}
	b.WriteString("peers:\n")
	for _, p := range ps {
		b.WriteString(p.line())
	}
	f, err := peers.Parse("delta.yaml", []byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	return f
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
	base := []deltaPeer{
		{"self", "lab", 1, 1, ", endpoint: 192.0.2.1:51820"},
		{"a", "lab", 2, 2, ", endpoint: 192.0.2.2:51820"},
		{"b", "lab", 3, 3, ", endpoint: 198.51.100.3:51820, keepalive: 25s"},
		{"c", "ops", 4, 1, ", endpoint: 203.0.113.4:51820"}, // its route look-up fails
		{"d", "ops", 5, 2, ", endpoint: d.example:51820"},
		{"e", "lab", 6, 4, ""}, // no endpoint: it dials us
		{"f", "far", 7, 1, ", endpoint: 192.0.2.7:51820"},
		{"g", "lab", 8, 5, ", endpoint: 192.0.2.8:51820, tcp_endpoint: 192.0.2.8:443"},
		{"h", "lab", 9, 6, ", endpoint: \"[2001:db8::9]:51820\""},
	}
	edit := func(f func(ps []deltaPeer) []deltaPeer) []deltaPeer { return f(slices.Clone(base)) }
	set := func(name string, f func(p *deltaPeer)) []deltaPeer {
		return edit(func(ps []deltaPeer) []deltaPeer {
			for i := range ps {
				if ps[i].name == name {
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
		ps         []deltaPeer
		dns        dnsTable
		wantFresh  int // partners built anew: the names with DNS, and the ones edited
		wantGoneMx int // at most this many entries dropped
	}{
		{"no change", ops, base, oldDNS, 1, 1},
		{"a peer added at the end", ops, append(slices.Clone(base), deltaPeer{"i", "lab", 10, 7, ", endpoint: 192.0.2.10:51820"}), oldDNS, 2, 1},
		{"a peer added in the middle", ops, edit(func(ps []deltaPeer) []deltaPeer {
			return slices.Insert(ps, 2, deltaPeer{"i", "lab", 10, 7, ", endpoint: 192.0.2.10:51820"})
		}), oldDNS, 2, 1},
		{"a peer removed", ops, edit(func(ps []deltaPeer) []deltaPeer { return slices.Delete(ps, 2, 3) }), oldDNS, 1, 2},
		{"an endpoint moved", ops, set("a", func(p *deltaPeer) { p.extra = ", endpoint: 192.0.2.22:51820" }), oldDNS, 2, 2},
		{"an endpoint dropped", ops, set("a", func(p *deltaPeer) { p.extra = "" }), oldDNS, 2, 2},
		{"a key changed", ops, set("b", func(p *deltaPeer) { p.key = 20 }), oldDNS, 2, 2},
		{"keys swapped", ops, edit(func(ps []deltaPeer) []deltaPeer {
			ps[1].key, ps[2].key = ps[2].key, ps[1].key
			return ps
		}), oldDNS, 3, 3},
		{"addresses swapped", ops, edit(func(ps []deltaPeer) []deltaPeer {
			ps[1].addr, ps[2].addr = ps[2].addr, ps[1].addr
			return ps
		}), oldDNS, 3, 3},
		{"keepalive changed", ops, set("b", func(p *deltaPeer) { p.extra = ", endpoint: 198.51.100.3:51820, keepalive: 10s" }), oldDNS, 2, 2},
		{"transport tcp", ops, set("g", func(p *deltaPeer) { p.extra += ", transport: tcp" }), oldDNS, 2, 2},
		{"a peer renamed", ops, set("a", func(p *deltaPeer) { p.name = "a2" }), oldDNS, 2, 2},
		{"a peer renamed in case only", ops, set("a", func(p *deltaPeer) { p.name = "A" }), oldDNS, 2, 2},
		{"a peer moved out of reach", ops, set("b", func(p *deltaPeer) { p.network, p.addr = "far", 2 }), oldDNS, 1, 2},
		{"a peer moved into reach", ops, set("f", func(p *deltaPeer) { p.network, p.addr = "lab", 9 }), oldDNS, 2, 1},
		{"the rule removed", "", base, oldDNS, 1, 3},
		{"a rule added", ops + "  - between: [lab, far]\n", base, oldDNS, 2, 1},
		{"a DNS name moved", ops, base, dnsTable{"d.example": "192.0.2.55"}, 1, 1},
		{"a DNS name gone", ops, base, dnsTable{}, 1, 1},
		{"peers reordered", ops, edit(func(ps []deltaPeer) []deltaPeer {
			slices.Reverse(ps)
			return ps
		}), oldDNS, 1, 1},
		{"self moved to ops", ops, set("self", func(p *deltaPeer) { p.network, p.addr = "ops", 9 }), oldDNS, 1, 1},
		{"everyone moved away", ops, edit(func(ps []deltaPeer) []deltaPeer {
			for i := range ps[1:] {
				ps[i+1].network = "far"
				ps[i+1].addr = 10 + i
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
	ps := []deltaPeer{
		{"self", "lab", 1, 1, ""},
		{"a", "lab", 2, 2, ", endpoint: 192.0.2.2:51820"},
		{"b", "lab", 3, 3, ", endpoint: 192.0.2.3:51820"},
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
