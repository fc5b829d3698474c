package peers

import (
	"errors"
	"flag"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var updateErrs = flag.Bool("update-errs", false, "rewrite testdata/invalid/*.err from the current output")

// TestValidFixtures: every file in testdata/valid parses and its tests pass.
func TestValidFixtures(t *testing.T) {
	files, _ := filepath.Glob("testdata/valid/*.yaml")
	if len(files) == 0 {
		t.Fatal("no fixtures")
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			if _, err := Load(path); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestInvalidFixtures compares the errors of testdata/invalid/X.yaml with
// X.err. Run with -update-errs to rewrite them, then review the diff.
func TestInvalidFixtures(t *testing.T) {
	files, _ := filepath.Glob("testdata/invalid/*.yaml")
	if len(files) == 0 {
		t.Fatal("no fixtures")
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Parse("peers.yaml", data)
			if err == nil {
				t.Fatal("no errors")
			}
			got := err.Error() + "\n"
			golden := strings.TrimSuffix(path, ".yaml") + ".err"
			if *updateErrs {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("errors:\n%s\nwant (%s):\n%s", got, golden, want)
			}
		})
	}
}

func TestLoad(t *testing.T) {
	f, err := Load("testdata/valid/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if f.Name != "testdata/valid/example.yaml" {
		t.Errorf("Name = %q, want the path as given", f.Name)
	}
	if _, err := Load("testdata/no-such-file.yaml"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load of a missing file: %v", err)
	}
	_, err = Load("testdata/invalid/syntax.yaml")
	if err == nil || !strings.HasPrefix(err.Error(), "testdata/invalid/syntax.yaml:") {
		t.Errorf("errors do not name the path as given: %v", err)
	}
}

// TestParseFull checks what every field of testdata/valid/full.yaml parses to.
func TestParseFull(t *testing.T) {
	f, err := Load("testdata/valid/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	wantOverlay := Overlay{
		Prefix: netip.MustParsePrefix("10.80.0.0/12"),
		Faces:  netip.MustParsePrefix("127.80.0.0/12"),
		Port:   41641,
	}
	if f.Overlay != wantOverlay {
		t.Errorf("Overlay = %+v, want %+v", f.Overlay, wantOverlay)
	}

	var nets []string
	for i, nw := range f.Networks {
		if nw.ID != i {
			t.Errorf("network %s has ID %d at index %d", nw.Name, nw.ID, i)
		}
		if f.Network(nw.Name) != nw {
			t.Errorf("Network(%q) is not the network", nw.Name)
		}
		nets = append(nets, nw.Name+" "+nw.Prefix.String())
	}
	wantNets := []string{"payments 10.80.1.0/24", "billing 10.80.2.0/24", "monitoring 10.80.3.0/24", "edge 10.81.0.0/16"}
	if !reflect.DeepEqual(nets, wantNets) {
		t.Errorf("networks = %q, want %q", nets, wantNets)
	}
	if nw := f.Network("edge"); nw.Line != 9 {
		t.Errorf("edge.Line = %d, want 9", nw.Line)
	}

	type peerWant struct {
		name, network, key, addr, face, endpoint string
		keepalive                                time.Duration
		expose                                   []PortRange
		line                                     int
	}
	wants := []peerWant{
		{"pay-1", "payments", key1, "10.80.1.1", "127.80.1.1", "pay-1.example.net:41641", 0, []PortRange{{9100, 9100}, {8080, 8090}}, 31},
		{"bill-1", "billing", key2, "10.80.2.10", "127.80.2.10", "[2001:db8::10]:51820", 0, nil, 37},
		{"mon-1", "monitoring", key3, "10.80.3.1", "127.80.3.1", "", 25 * time.Second, nil, 42},
		{"edge-1", "edge", key4, "10.81.0.1", "127.81.0.1", "[2001:db8::1]:41641", 0, nil, 47},
		{"edge-2", "edge", key5, "10.81.255.254", "127.81.255.254", "198.51.100.7:1", 0, nil, 52},
	}
	if len(f.Peers) != len(wants) {
		t.Fatalf("%d peers, want %d", len(f.Peers), len(wants))
	}
	for i, w := range wants {
		p := f.Peers[i]
		got := peerWant{p.Name, p.Network.Name, p.PublicKey.String(), p.Address.String(), p.Face.String(),
			p.Endpoint, p.Keepalive, p.Expose, p.Line}
		if !reflect.DeepEqual(got, w) {
			t.Errorf("peer %d = %+v\nwant %+v", i, got, w)
		}
		if p.ID != i {
			t.Errorf("%s.ID = %d, want %d", p.Name, p.ID, i)
		}
		if f.Peer(p.Name) != p || f.Peer(strings.ToUpper(p.Name)) != p {
			t.Errorf("Peer(%q) is not the peer", p.Name)
		}
		if f.PeerByAddr(p.Address) != p || f.PeerByFace(p.Face) != p {
			t.Errorf("PeerByAddr/PeerByFace(%s) is not the peer", p.Name)
		}
	}
	if f.Peer("nobody") != nil || f.PeerByAddr(netip.MustParseAddr("10.80.1.99")) != nil ||
		f.PeerByFace(netip.MustParseAddr("10.80.1.1")) != nil || f.Network("nowhere") != nil {
		t.Error("lookups of unknown things found something")
	}

	var rules []string
	for i, r := range f.Rules {
		if r.Index != i || r.File != f.Name {
			t.Errorf("rule %d: Index %d, File %q", i, r.Index, r.File)
		}
		rules = append(rules, r.Pos()+" "+r.String())
	}
	wantRules := []string{
		"testdata/valid/full.yaml:12 monitoring -> payments ports [erlang, 9100-9199]",
		"testdata/valid/full.yaml:15 payments <-> billing ports all",
		"testdata/valid/full.yaml:16 edge-1 -> billing ports [443, 8080-8090]",
		"testdata/valid/full.yaml:19 monitoring -> payments ports all",
	}
	if !reflect.DeepEqual(rules, wantRules) {
		t.Errorf("rules:\n%s\nwant:\n%s", strings.Join(rules, "\n"), strings.Join(wantRules, "\n"))
	}

	if len(f.Tests) != 7 {
		t.Fatalf("%d tests, want 7", len(f.Tests))
	}
	if got, want := *f.Tests[1], (Test{From: "pay-1", To: "mon-1", Port: 4369, Allow: false, Line: 24}); got.From != want.From ||
		got.To != want.To || got.Port != want.Port || got.Allow != want.Allow || got.Line != want.Line {
		t.Errorf("tests[1] = %+v, want %+v", got, want)
	}
}

// TestDefaults checks what a file leaves out.
func TestDefaults(t *testing.T) {
	f := mustParse(t, "overlay: {prefix: 10.77.0.0/16}\nnetworks:\n  n: {prefix: 10.77.1.0/24}\npeers:\n  p: {network: n, public_key: $K1, address: 10.77.1.7, endpoint: p.example.net}\n")
	if f.Overlay.Port != DefaultPort {
		t.Errorf("Port = %d, want %d", f.Overlay.Port, DefaultPort)
	}
	if want := netip.MustParsePrefix("127.77.0.0/16"); f.Overlay.Faces != want {
		t.Errorf("Faces = %s, want %s", f.Overlay.Faces, want)
	}
	p := f.Peer("p")
	if p.Endpoint != "p.example.net:51820" || p.Keepalive != 0 || p.Expose != nil {
		t.Errorf("peer = %+v", p)
	}
	if len(f.Rules) != 0 || len(f.Tests) != 0 {
		t.Errorf("rules %v, tests %v", f.Rules, f.Tests)
	}

	// Default faces keep the prefix length, whatever it is.
	for prefix, faces := range map[string]string{
		"10.0.0.0/8":     "127.0.0.0/8",
		"100.64.0.0/10":  "127.64.0.0/10",
		"192.168.4.0/22": "127.168.4.0/22",
		"10.77.0.0/16":   "127.77.0.0/16",
	} {
		f := mustParse(t, "overlay: {prefix: "+prefix+"}\n")
		if f.Overlay.Faces.String() != faces {
			t.Errorf("prefix %s: faces %s, want %s", prefix, f.Overlay.Faces, faces)
		}
	}
}

// TestEndpoints checks the forms an endpoint may take.
func TestEndpoints(t *testing.T) {
	for in, want := range map[string]string{
		"pay-1.example.net":       "pay-1.example.net:51820",
		"pay-1.example.net:1234":  "pay-1.example.net:1234",
		"pay-1.example.net.":      "pay-1.example.net.:51820",
		"under_score.example.net": "under_score.example.net:51820",
		"localhost":               "localhost:51820",
		"198.51.100.1":            "198.51.100.1:51820",
		"198.51.100.1:65535":      "198.51.100.1:65535",
		"2001:db8::1":             "[2001:db8::1]:51820",
		"[2001:db8::1]":           "[2001:db8::1]:51820",
		"[2001:db8::1]:1":         "[2001:db8::1]:1",
		"fe80::1%eth0":            "[fe80::1%eth0]:51820",
		"::ffff:198.51.100.1":     "198.51.100.1:51820",
	} {
		got, err := parseEndpoint(in, DefaultPort)
		if err != nil || got != want {
			t.Errorf("parseEndpoint(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", ":1", "h:", "h:0", "h:65536", "h:x", "a:b:c", "[h]:1", "[1.2.3.4]:1", "1.2.3.256",
		"a..b", "-a.b", "a b", strings.Repeat("a", 64) + ".b", "[::1", "::1]:5"} {
		if got, err := parseEndpoint(in, DefaultPort); err == nil {
			t.Errorf("parseEndpoint(%q) = %q, want an error", in, got)
		}
	}
}

func TestKeepalive(t *testing.T) {
	for in, want := range map[string]time.Duration{"0": 0, "0s": 0, "25s": 25 * time.Second, "1m": time.Minute, "65535s": 65535 * time.Second} {
		if got, err := parseKeepalive(in); err != nil || got != want {
			t.Errorf("parseKeepalive(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "25", "-1s", "1.5s", "65536s", "soon"} {
		if got, err := parseKeepalive(in); err == nil {
			t.Errorf("parseKeepalive(%q) = %v, want an error", in, got)
		}
	}
}

func TestTCPEndpointAndTransport(t *testing.T) {
	data := []byte(`overlay: {prefix: 10.77.0.0/16}
networks:
  a: {prefix: 10.77.1.0/24}
peers:
  a-1: {network: a, public_key: ` + testKey(1).String() + `, address: 10.77.1.1, tcp_endpoint: a-1.example.net}
  a-2: {network: a, public_key: ` + testKey(2).String() + `, address: 10.77.1.2, tcp_endpoint: "10.0.0.2:8443", transport: tcp}
  a-3: {network: a, public_key: ` + testKey(3).String() + `, address: 10.77.1.3}
`)
	f, err := Parse("peers.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]struct {
		ep string
		tr Transport
	}{"a-1": {"a-1.example.net:443", TransportAuto}, "a-2": {"10.0.0.2:8443", TransportTCP}, "a-3": {"", TransportAuto}} {
		p := f.Peer(name)
		if p.TCPEndpoint != want.ep || p.Transport != want.tr {
			t.Errorf("%s: tcp_endpoint %q transport %s; want %q %s", name, p.TCPEndpoint, p.Transport, want.ep, want.tr)
		}
	}
}
