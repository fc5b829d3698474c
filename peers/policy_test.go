package peers

import (
	"net/netip"
	"strings"
	"testing"
)

const policyFile = `overlay:
  prefix: 10.77.0.0/16
networks:
  a: {prefix: 10.77.1.0/24}
  b: {prefix: 10.77.2.0/24}
  c: {prefix: 10.77.3.0/24}
  d: {prefix: 10.77.4.0/24}
interconnect:
  - {from: a, to: b, ports: [erlang]}
  - {from: a, to: b, ports: [9100-9199]}
  - {between: [b, c]}
  - {from: a-1, to: c, ports: [22]}
  - {from: d, to: b-2, ports: [80, 443]}
  - {from: d-1, to: a-2}
  - {from: a, to: b}
  - {from: c-1, to: d-1, ports: [5432]}
  - {from: a, to: c, ports: [22, 23]}
  - {from: a-1, to: b-1, ports: [erlang, 7000]}
peers:
  a-1: {network: a, public_key: $K1, address: 10.77.1.1}
  a-2: {network: a, public_key: $K2, address: 10.77.1.2}
  b-1: {network: b, public_key: $K3, address: 10.77.2.1}
  b-2: {network: b, public_key: $K4, address: 10.77.2.2}
  c-1: {network: c, public_key: $K5, address: 10.77.3.1}
  d-1: {network: d, public_key: $K6, address: 10.77.4.1}
`

func TestDecide(t *testing.T) {
	f := mustParse(t, policyFile)
	tests := []struct {
		from, to string
		port     uint16
		erlang   bool
		want     string
	}{
		// Within a network, and to oneself, everything goes.
		{"a-1", "a-1", 22, false, "allow self a-1"},
		{"a-1", "a-2", 22, false, "allow same network a"},
		{"b-2", "b-1", 65535, true, "allow same network b"},
		// erlang covers 4369 always, dist ports when the caller says so.
		{"a-2", "b-1", 4369, false, "allow rule peers.yaml:9 (a -> b ports [erlang])"},
		{"a-2", "b-1", 9123, true, "allow rule peers.yaml:9 (a -> b ports [erlang])"},
		{"a-2", "b-1", 9150, false, "allow rule peers.yaml:10 (a -> b ports [9100-9199])"},
		// The first rule in file order that allows the port wins.
		{"a-2", "b-1", 9150, true, "allow rule peers.yaml:9 (a -> b ports [erlang])"},
		{"a-2", "b-1", 22, false, "allow rule peers.yaml:15 (a -> b ports all)"},
		{"a-1", "b-1", 4369, false, "allow rule peers.yaml:9 (a -> b ports [erlang])"},
		{"a-1", "b-1", 7000, false, "allow rule peers.yaml:15 (a -> b ports all)"},
		{"a-1", "c-1", 22, false, "allow rule peers.yaml:12 (a-1 -> c ports [22])"},
		{"a-1", "c-1", 23, false, "allow rule peers.yaml:17 (a -> c ports [22, 23])"},
		{"a-2", "c-1", 22, false, "allow rule peers.yaml:17 (a -> c ports [22, 23])"},
		// from/to is one way.
		{"b-1", "a-1", 4369, false, "deny default (no rule allows b -> a port 4369)"},
		{"b-1", "a-1", 9123, true, "deny default (no rule allows b -> a port 9123 (erlang))"},
		{"c-1", "a-1", 22, false, "deny default (no rule allows c -> a port 22)"},
		{"a-2", "d-1", 1, false, "deny default (no rule allows a -> d port 1)"},
		// between is both ways.
		{"b-1", "c-1", 22, false, "allow rule peers.yaml:11 (b <-> c ports all)"},
		{"c-1", "b-2", 4369, false, "allow rule peers.yaml:11 (b <-> c ports all)"},
		// A peer name matches only that peer.
		{"d-1", "b-2", 443, false, "allow rule peers.yaml:13 (d -> b-2 ports [80, 443])"},
		{"d-1", "b-1", 443, false, "deny default (no rule allows d -> b port 443)"},
		{"d-1", "b-2", 8080, false, "deny default (no rule allows d -> b port 8080)"},
		{"d-1", "a-2", 1, false, "allow rule peers.yaml:14 (d-1 -> a-2 ports all)"},
		{"d-1", "a-1", 1, false, "deny default (no rule allows d -> a port 1)"},
		{"c-1", "d-1", 5432, false, "allow rule peers.yaml:16 (c-1 -> d-1 ports [5432])"},
		{"c-1", "d-1", 5433, false, "deny default (no rule allows c -> d port 5433)"},
		// Ranges are inclusive; a rule without erlang does not cover 4369.
		{"a-2", "b-1", 9100, false, "allow rule peers.yaml:10 (a -> b ports [9100-9199])"},
		{"a-2", "b-1", 9199, false, "allow rule peers.yaml:10 (a -> b ports [9100-9199])"},
		{"a-1", "c-1", 4369, false, "deny default (no rule allows a -> c port 4369)"},
	}
	for _, tt := range tests {
		from, to := f.Peer(tt.from), f.Peer(tt.to)
		d := f.Decide(from, to, tt.port, tt.erlang)
		if got := d.String(); got != tt.want {
			t.Errorf("Decide(%s, %s, %d, %v) = %s\nwant %s", tt.from, tt.to, tt.port, tt.erlang, got, tt.want)
		}
		if ref := refDecide(f, from, to, tt.port, tt.erlang); d != ref {
			t.Errorf("Decide(%s, %s, %d, %v) = %+v, reference %+v", tt.from, tt.to, tt.port, tt.erlang, d, ref)
		}
	}
}

// TestDecideReference compares Decide with the plain reading of the rules
// for every pair of peers, on ports around every rule's edges.
func TestDecideReference(t *testing.T) {
	for _, src := range []string{policyFile, "testdata/valid/full.yaml", "testdata/valid/anchors.yaml"} {
		var f *File
		if src == policyFile {
			f = mustParse(t, src)
		} else {
			var err error
			if f, err = Load(src); err != nil {
				t.Fatal(err)
			}
		}
		checkDecide(t, f)
	}
}

// checkDecide compares Decide with refDecide on every pair of f's peers.
func checkDecide(t testing.TB, f *File) {
	t.Helper()
	ports := []uint16{1, 22, 23, 80, 443, EPMDPort, 5432, 7000, 9100, 9150, 9199, 9200, 65535}
	seen := map[uint16]bool{}
	for _, r := range f.Rules {
		for _, pr := range r.Ports.Ranges {
			for _, p := range []uint16{pr.Lo, pr.Lo - 1, pr.Hi, pr.Hi + 1} {
				if !seen[p] && len(seen) < 64 { // bounded, for the fuzzer's sake
					seen[p] = true
					ports = append(ports, p)
				}
			}
		}
	}
	for _, from := range f.Peers {
		for _, to := range f.Peers {
			for _, port := range ports {
				for _, erlang := range []bool{false, true} {
					d, ref := f.Decide(from, to, port, erlang), refDecide(f, from, to, port, erlang)
					if d != ref {
						t.Fatalf("Decide(%s, %s, %d, %v) = %s, reference %s", from.Name, to.Name, port, erlang, d, ref)
					}
					_ = d.String()
				}
			}
		}
	}
}

// refDecide is the policy as the documentation states it, rule by rule.
func refDecide(f *File, from, to *Peer, port uint16, erlang bool) Decision {
	d := Decision{From: from, To: to, Port: port, Erlang: erlang || port == EPMDPort}
	switch {
	case from == to:
		d.Allow, d.Reason = true, ReasonSelf
		return d
	case from.Network == to.Network:
		d.Allow, d.Reason = true, ReasonSameNetwork
		return d
	}
	is := func(name string, p *Peer) bool { return name == p.Name || name == p.Network.Name }
	for _, r := range f.Rules {
		if (is(r.From, from) && is(r.To, to) || r.Both && is(r.To, from) && is(r.From, to)) && r.Ports.Contains(port, d.Erlang) {
			d.Allow, d.Reason, d.Rule = true, ReasonRule, r
			return d
		}
	}
	return d
}

// TestDecideForeignPeers: peers of another File (an older reload, say)
// are denied, not misread through their IDs.
func TestDecideForeignPeers(t *testing.T) {
	f, g := mustParse(t, policyFile), mustParse(t, policyFile)
	for _, d := range []Decision{
		f.Decide(g.Peer("a-1"), f.Peer("a-2"), 22, false),
		f.Decide(f.Peer("a-1"), g.Peer("a-2"), 22, false),
		f.Decide(nil, f.Peer("a-2"), 22, false),
		f.Decide(f.Peer("a-1"), nil, 22, false),
		f.Decide(&Peer{Name: "x"}, &Peer{Name: "x"}, 22, false),
	} {
		if d.Allow || d.Reason != ReasonDefault {
			t.Errorf("foreign peers: %s", d)
		}
	}
	if got := (Decision{}).String(); got != "deny default" {
		t.Errorf("zero Decision = %q", got)
	}
}

func TestDecideAllocs(t *testing.T) {
	f := mustParse(t, policyFile)
	from, to := f.Peer("a-1"), f.Peer("c-1")
	var d Decision
	if n := testing.AllocsPerRun(100, func() { d = f.Decide(from, to, 23, false) }); n != 0 {
		t.Errorf("Decide allocates %v times", n)
	}
	if d.Rule == nil || d.Rule.Line != 17 {
		t.Errorf("Decide = %s", d)
	}
}

func TestPorts(t *testing.T) {
	tests := []struct {
		p      Ports
		s      string
		allow  []uint16 // not erlang
		deny   []uint16
		erlang bool // whether a dist port (erlang=true) is allowed
	}{
		{Ports{All: true}, "all", []uint16{1, 4369, 65535}, nil, true},
		{Ports{Erlang: true}, "[erlang]", []uint16{4369}, []uint16{1, 9100, 65535}, true},
		{Ports{Ranges: []PortRange{{22, 22}, {9100, 9199}}}, "[22, 9100-9199]", []uint16{22, 9100, 9150, 9199},
			[]uint16{21, 23, 4369, 9099, 9200}, false},
		{Ports{Erlang: true, Ranges: []PortRange{{9100, 9199}}}, "[erlang, 9100-9199]", []uint16{4369, 9100, 9199}, []uint16{9200}, true},
		{Ports{}, "[]", nil, []uint16{1, 4369}, false},
	}
	for _, tt := range tests {
		if got := tt.p.String(); got != tt.s {
			t.Errorf("String() = %q, want %q", got, tt.s)
		}
		for _, port := range tt.allow {
			if !tt.p.Contains(port, false) {
				t.Errorf("%s does not contain %d", tt.s, port)
			}
		}
		for _, port := range tt.deny {
			if tt.p.Contains(port, false) {
				t.Errorf("%s contains %d", tt.s, port)
			}
		}
		if got := tt.p.Contains(40000, true); got != tt.erlang {
			t.Errorf("%s contains dist port 40000: %v, want %v", tt.s, got, tt.erlang)
		}
	}
}

func TestParsePortRange(t *testing.T) {
	for in, want := range map[string]PortRange{"1": {1, 1}, "65535": {65535, 65535}, "9100-9199": {9100, 9199},
		" 80 - 90 ": {80, 90}, "443-443": {443, 443}, "08080": {8080, 8080}} {
		if got, err := ParsePortRange(in); err != nil || got != want {
			t.Errorf("ParsePortRange(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "65536", "-1", "1-", "-", "2-1", "1-2-3", "http", "0x50", "1.5", "+80", "80,81"} {
		if got, err := ParsePortRange(in); err == nil {
			t.Errorf("ParsePortRange(%q) = %v, want an error", in, got)
		}
	}
	if got := (PortRange{9100, 9199}).String(); got != "9100-9199" {
		t.Errorf("String = %q", got)
	}
}

func TestKey(t *testing.T) {
	k, err := ParseKey(key1)
	if err != nil {
		t.Fatal(err)
	}
	if k.String() != key1 {
		t.Errorf("String() = %s, want %s", k, key1)
	}
	if want := "423ca68aa088b830299764f396b84a770a3d2316c13234eba06d0596c967fd72"; k.Hex() != want {
		t.Errorf("Hex() = %s, want %s", k.Hex(), want)
	}
	text, _ := k.MarshalText()
	var k2 Key
	if err := k2.UnmarshalText(text); err != nil || k2 != k {
		t.Errorf("text round trip: %v, %v", k2, err)
	}
	for _, bad := range []string{"", "abc", key1[:43], key1 + "=", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==",
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "423ca68aa088b830299764f396b84a770a3d2316c13234eba06d0596c967fd72"} {
		if _, err := ParseKey(bad); err == nil {
			t.Errorf("ParseKey(%q) succeeded", bad)
		}
	}
	if err := k2.UnmarshalText([]byte("abc")); err == nil {
		t.Error("UnmarshalText(abc) succeeded")
	}
}

func TestFaceOf(t *testing.T) {
	ov, faces := netip.MustParsePrefix("10.77.0.0/16"), netip.MustParsePrefix("127.77.0.0/16")
	for in, want := range map[string]string{
		"10.77.1.1":     "127.77.1.1",
		"10.77.0.0":     "127.77.0.0",
		"10.77.255.255": "127.77.255.255",
		"10.78.0.1":     "invalid IP",
		"10.76.255.255": "invalid IP",
		"::1":           "invalid IP",
	} {
		a := netip.MustParseAddr(in)
		got := FaceOf(ov, faces, a)
		if got.String() != want {
			t.Errorf("FaceOf(%s) = %s, want %s", in, got, want)
		}
		if got.IsValid() && FaceOf(faces, ov, got) != a {
			t.Errorf("FaceOf does not map %s back", got)
		}
	}
	a := netip.MustParseAddr("10.77.1.1")
	if got := FaceOf(ov, netip.MustParsePrefix("127.77.0.0/24"), a); got.IsValid() {
		t.Errorf("FaceOf with prefixes of different lengths = %s", got)
	}
	if got := FaceOf(netip.Prefix{}, faces, a); got.IsValid() {
		t.Errorf("FaceOf with no overlay = %s", got)
	}
	// Other lengths: the offset carries across octets.
	if got := FaceOf(netip.MustParsePrefix("100.64.0.0/10"), netip.MustParsePrefix("127.64.0.0/10"), netip.MustParseAddr("100.127.1.2")); got.String() != "127.127.1.2" {
		t.Errorf("FaceOf /10 = %s", got)
	}
	if got := FaceOf(netip.MustParsePrefix("192.168.0.0/16"), netip.MustParsePrefix("127.1.0.0/16"), netip.MustParseAddr("192.168.3.4")); got.String() != "127.1.3.4" {
		t.Errorf("FaceOf = %s", got)
	}
}

func TestReasonString(t *testing.T) {
	for r, want := range map[Reason]string{ReasonDefault: "default", ReasonSameNetwork: "same network", ReasonRule: "rule", ReasonSelf: "self", 99: "default"} {
		if r.String() != want {
			t.Errorf("Reason(%d) = %q, want %q", r, r, want)
		}
	}
}

func TestReaches(t *testing.T) {
	f := mustParse(t, policyFile)
	for _, tc := range []struct {
		from, to string
		want     bool
	}{
		{"a-1", "a-2", true},  // same network
		{"a-1", "a-1", true},  // self
		{"a-2", "b-1", true},  // network rule
		{"b-1", "a-1", false}, // rules are one way
		{"c-1", "b-2", true},  // between: both ways
		{"b-2", "c-1", true},
		{"d-1", "b-2", true},  // to a named peer
		{"d-1", "b-1", false}, // ... and only that peer
		{"d-1", "a-2", true},  // named peer to named peer
		{"c-1", "d-1", true},
		{"b-1", "d-1", false},
	} {
		if got := f.Reaches(f.Peer(tc.from), f.Peer(tc.to)); got != tc.want {
			t.Errorf("Reaches(%s, %s) = %v, want %v", tc.from, tc.to, got, tc.want)
		}
		// Reaches must agree with Decide: some port is allowed iff it reaches.
		any := false
		for _, port := range []uint16{1, 22, 23, 80, 443, 4369, 5432, 7000, 9150, 65535} {
			any = any || f.Decide(f.Peer(tc.from), f.Peer(tc.to), port, true).Allow
		}
		if any != tc.want {
			t.Errorf("%s -> %s: Decide allows some port = %v, Reaches says %v", tc.from, tc.to, any, tc.want)
		}
	}
	if f.Reaches(nil, f.Peer("a-1")) {
		t.Error("a foreign peer reaches a-1")
	}
}

func TestDecidePing(t *testing.T) {
	// d-1 runs in TUN mode: its packet filter passes echo, either way, only
	// where every port is allowed.
	f := mustParse(t, strings.Replace(policyFile, "address: 10.77.4.1}", "address: 10.77.4.1, mode: tun}", 1))
	for _, tc := range []struct{ from, to, want string }{
		{"a-1", "a-1", "allow self a-1"},
		{"a-1", "a-2", "allow same network a"},
		// The first rule that lets from reach to at all, whatever its ports.
		{"a-2", "b-1", "allow rule peers.yaml:9 (a -> b ports [erlang])"},
		{"a-1", "c-1", "allow rule peers.yaml:12 (a-1 -> c ports [22])"},
		{"c-1", "b-2", "allow rule peers.yaml:11 (b <-> c ports all)"},
		{"b-1", "a-1", "deny default (no rule allows b -> a on any port, which ping needs)"},
		// With the TUN host: a rule with ports is not enough, either way.
		{"d-1", "a-2", "allow rule peers.yaml:14 (d-1 -> a-2 ports all)"},
		{"d-1", "b-2", "deny default (no rule allows d -> b on every port, which ping with a TUN host needs)"},
		{"c-1", "d-1", "deny default (no rule allows c -> d on every port, which ping with a TUN host needs)"},
		{"a-1", "d-1", "deny default (no rule allows a -> d on every port, which ping with a TUN host needs)"},
	} {
		d := f.DecidePing(f.Peer(tc.from), f.Peer(tc.to))
		if got := d.String(); got != tc.want || !d.Ping {
			t.Errorf("DecidePing(%s, %s) = %s (ping %v)\nwant %s", tc.from, tc.to, got, d.Ping, tc.want)
		}
	}
	// Between hosts not in TUN mode, ping is allowed exactly where Reaches
	// says.
	for _, from := range f.Peers {
		for _, to := range f.Peers {
			if from.Mode == ModeTUN || to.Mode == ModeTUN {
				continue
			}
			if got, want := f.DecidePing(from, to).Allow, f.Reaches(from, to); got != want {
				t.Errorf("DecidePing(%s, %s).Allow = %v, Reaches %v", from.Name, to.Name, got, want)
			}
		}
	}
	if f.DecidePing(nil, f.Peer("a-1")).Allow {
		t.Error("a foreign peer may ping a-1")
	}
}
