package overlay

import (
	"errors"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/nodewire/nodewire/peers"
)

func TestInnerMTU(t *testing.T) {
	v4, v6 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")
	mapped := netip.MustParseAddr("::ffff:192.0.2.1")
	for _, tc := range []struct {
		name     string
		ep       netip.Addr
		route    int
		override int
		want     int
	}{
		// No override: the route, less WireGuard's overhead for the family,
		// and never above safeOuter (1400) on the wire.
		{"v4 clean 1500: the black-hole limit", v4, 1500, 0, 1328},
		{"v6 clean 1500: the black-hole limit", v6, 1500, 0, 1312},
		{"v4 route 1400: 1340, padded to 16", v4, 1400, 0, 1328},
		{"v4 route 1380: 1320, padded to 16", v4, 1380, 0, 1312},
		{"v4 route 1280: 1220, padded to 16", v4, 1280, 0, 1216},
		{"v6 route 1400", v6, 1400, 0, 1312},
		{"v6 route 1280", v6, 1280, 0, 1200},
		{"v4-mapped endpoint counts as IPv4", mapped, 1400, 0, 1328},
		{"v4 route unknown", v4, 0, 0, 1328},
		{"no endpoint yet: IPv6's overhead, the larger", netip.Addr{}, 0, 0, 1312},
		{"tiny route: IPv4's minimum", v4, 600, 0, 576},
		// An override replaces the guess, never the route.
		{"override 1420 on a clean 1500 route: the old default", v4, 1500, 1420, 1420},
		{"override 1420 over IPv6 1500", v6, 1500, 1420, 1420},
		{"override above the route: the route wins", v4, 1400, 1420, 1328},
		{"override above an IPv6 1280 route", v6, 1280, 1420, 1200},
		{"override below the route", v4, 1500, 1200, 1200},
		{"jumbo path, jumbo override", v4, 9000, 8920, 8920},
		{"jumbo route, no override: still the black-hole limit", v4, 9000, 0, 1328},
		{"override not a multiple of 16: the device pads up to it", v4, 1500, 1300, 1300},
		{"below an override: padded", v4, 1350, 1300, 1280},
		{"override, route unknown", v4, 0, 1420, 1420},
		{"override, no endpoint", netip.Addr{}, 0, 1280, 1280},
	} {
		if got := innerMTU(tc.ep, tc.route, tc.override); got != tc.want {
			t.Errorf("%s: innerMTU(%v, %d, %d) = %d, want %d", tc.name, tc.ep, tc.route, tc.override, got, tc.want)
		}
	}
}

func TestPathTable(t *testing.T) {
	f, err := peers.Load("../peers/testdata/valid/nodes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Peers) < 3 {
		t.Fatalf("want 3 peers in the test file, have %d", len(f.Peers))
	}
	self, near, far := f.Peers[0], f.Peers[1], f.Peers[2]
	nearEP, farEP := netip.MustParseAddrPort("192.0.2.2:51820"), netip.MustParseAddrPort("[2001:db8::3]:51820")
	eps := map[peers.Key]pathSeen{near.PublicKey: {Endpoint: nearEP}, far.PublicKey: {Endpoint: farEP}, self.PublicKey: {Endpoint: netip.MustParseAddrPort("192.0.2.1:1")}}
	lookups := 0
	route := func(a netip.Addr) (int, error) {
		lookups++
		switch a {
		case nearEP.Addr():
			return 1280, nil
		case farEP.Addr():
			return 0, errors.New("no route")
		}
		t.Errorf("route looked up for %v", a)
		return 0, nil
	}
	partners := f.Partners(self)
	if !slices.Contains(partners, near) || !slices.Contains(partners, far) {
		t.Fatalf("want %s and %s among %s's partners", near.Name, far.Name, self.Name)
	}
	mss, paths := pathTable(partners, eps, nil, route, 0)
	if got := mss[near.Address]; got != 1216-40 {
		t.Errorf("near peer (IPv4 route 1280): MSS %d, want 1176", got)
	}
	if got := mss[far.Address]; got != 1312-40 {
		t.Errorf("far peer (IPv6, route unknown): MSS %d, want 1272", got)
	}
	if _, ok := mss[self.Address]; ok {
		t.Errorf("an MSS for this host itself")
	}
	nerr := 0
	for _, ps := range paths {
		if ps.Err != nil {
			nerr++
		}
	}
	if paths[far.Name].Err == nil || nerr != 1 {
		t.Errorf("route errors in %v, want one for %s", paths, far.Name)
	}
	if p := paths[near.Name].Info; p.Endpoint != nearEP || p.RouteMTU != 1280 || p.MTU != 1216 {
		t.Errorf("near path %+v", p)
	}
	// Nothing moved and no traffic: no look-up, the same paths.
	lookups = 0
	if _, again := pathTable(partners, eps, paths, route, 0); lookups != 0 || again[near.Name] != paths[near.Name] || again[far.Name].Err == nil {
		t.Errorf("refresh of idle peers: %d look-ups, near %+v, far %+v; want none and the same paths", lookups, again[near.Name], again[far.Name])
	}
	// Traffic to near: its route is looked up again (the kernel may have
	// learned a smaller path MTU from an ICMP error).
	moved := maps.Clone(eps)
	moved[near.PublicKey] = pathSeen{Endpoint: nearEP, Bytes: 1}
	if _, again := pathTable(partners, moved, paths, route, 0); lookups != 1 || again[near.Name].Info.RouteMTU != 1280 {
		t.Errorf("refresh after traffic to near: %d look-ups (want 1), near %+v", lookups, again[near.Name])
	}
	delete(eps, far.PublicKey)
	if mss, _ := pathTable(partners, eps, nil, route, 0); mss[far.Address] != 1272 {
		t.Errorf("peer without endpoint: MSS %d, want 1272 (IPv6 under safeOuter)", mss[far.Address])
	}
	// The operator's --mtu replaces the guess, not the route.
	mss, _ = pathTable(partners, eps, nil, route, 1420)
	if mss[near.Address] != 1176 || mss[far.Address] != 1380 {
		t.Errorf("with --mtu 1420: near %d (want 1176), far %d (want 1380)", mss[near.Address], mss[far.Address])
	}
}

// A daemon clamps each peer's TCP to its path from the start, and a reload
// that moves a peer's endpoint to another path changes the clamp.
func TestDaemonPathMTU(t *testing.T) {
	a, b := newTestHost(t), newTestHost(t)
	dir := t.TempDir()
	cfg := testConfig(t, dir, a, b, "nwtest-mtu")
	d, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	addrA := netip.MustParseAddr("10.91.1.1")
	// a's endpoint is 127.0.0.1:9: the route leaves through lo (64 KiB),
	// so the black-hole limit decides.
	if got := d.mss.mss(addrA); got != 1288 {
		t.Fatalf("MSS to a at start: %d, want 1288", got)
	}

	d.mu.Lock()
	d.route = func(ep netip.Addr) (int, error) {
		if ep == netip.MustParseAddr("127.0.0.2") {
			return 1280, nil
		}
		return routeMTU(ep)
	}
	d.mu.Unlock()
	moved := strings.Replace(mustRead(t, cfg.PeerFile), "address: 10.91.1.1, endpoint: 127.0.0.1:9", "address: 10.91.1.1, endpoint: 127.0.0.2:9", 1)
	if err := os.WriteFile(cfg.PeerFile, []byte(moved), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := d.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := d.mss.mss(addrA); got != 1176 {
		t.Fatalf("MSS to a after it moved behind a 1280-byte route: %d, want 1176", got)
	}
}

// --mtu replaces the black-hole limit: the old default's full-size segments.
func TestDaemonMTUOverride(t *testing.T) {
	a, b := newTestHost(t), newTestHost(t)
	cfg := testConfig(t, t.TempDir(), a, b, "nwtest-mtuo")
	cfg.MTU = 1420
	d, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if got := d.mss.mss(netip.MustParseAddr("10.91.1.1")); got != 1380 {
		t.Fatalf("MSS to a with --mtu 1420: %d, want 1380", got)
	}
}
