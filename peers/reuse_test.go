package peers

import (
	"fmt"
	"strings"
	"testing"
)

// dumpFile is everything a File says, for comparing two of them.
func dumpFile(f *File) string {
	if f == nil {
		return "<nil>"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s overlay %+v serial %d expires %v\n", f.Name, f.Overlay, f.Serial, f.Expires)
	for _, nw := range f.Networks {
		fmt.Fprintf(&b, "net %s %s line %d id %d lookup %v\n", nw.Name, nw.Prefix, nw.Line, nw.ID, f.Network(nw.Name) == nw)
	}
	for _, p := range f.Peers {
		net := "<nil>"
		if p.Network != nil {
			net = fmt.Sprintf("%s(own %v)", p.Network.Name, p.Network.ID < len(f.Networks) && f.Networks[p.Network.ID] == p.Network)
		}
		fmt.Fprintf(&b, "peer %s net %s key %s addr %s face %s ep %q keepalive %v expose %v mode %v tcp %q transport %v line %d id %d lookups %v %v %v\n",
			p.Name, net, p.PublicKey, p.Address, p.Face, p.Endpoint, p.Keepalive, p.Expose, p.Mode, p.TCPEndpoint, p.Transport, p.Line, p.ID,
			f.Peer(p.Name) == p, p.Address.IsValid() && f.PeerByAddr(p.Address) == p, p.Face.IsValid() && f.PeerByFace(p.Face) == p)
	}
	for _, r := range f.Rules {
		fmt.Fprintf(&b, "rule %s %+v\n", r, *r)
	}
	for _, t := range f.Tests {
		fmt.Fprintf(&b, "test %s %s %d %s %v line %d\n", t.From, t.To, t.Port, t.Node, t.Allow, t.Line)
	}
	if len(f.Peers) <= 20 {
		for _, p := range f.Peers {
			var names []string
			for _, q := range f.Partners(p) {
				names = append(names, q.Name)
			}
			fmt.Fprintf(&b, "partners %s %v\n", p.Name, names)
		}
	}
	return b.String()
}

// checkReuse checks that a Parser that parsed a gives for b what Parse
// gives, twice (the second time reusing b itself), and then for a again.
// It returns how many entries the first parse of b reused.
func checkReuse(t *testing.T, a, b []byte) (reused int) {
	t.Helper()
	var c Parser
	c.Parse("peers.yaml", a)
	for i, data := range [][]byte{b, b, a} {
		f1, err1 := c.Parse("peers.yaml", data)
		if i == 0 {
			reused = c.reused
		}
		f2, err2 := Parse("peers.yaml", data)
		if fmt.Sprint(err1) != fmt.Sprint(err2) {
			t.Fatalf("parse %d: with reuse:\n%v\nParse:\n%v\nprimed with:\n%s\nparsed:\n%s", i, err1, err2, a, data)
		}
		if d1, d2 := dumpFile(f1), dumpFile(f2); d1 != d2 {
			t.Fatalf("parse %d: with reuse:\n%s\nParse:\n%s\nprimed with:\n%s\nparsed:\n%s", i, d1, d2, a, data)
		}
	}
	return reused
}

const reuseHead = "overlay: {prefix: 10.77.0.0/16}\nnetworks:\n  lab: {prefix: 10.77.1.0/24}\n  far: {prefix: 10.77.2.0/24}\ninterconnect:\n  - {from: lab, to: far, ports: [9100]}\n"

const reusePeers = "peers:\n" +
	"  a: {network: lab, public_key: $K1, address: 10.77.1.1, endpoint: 192.0.2.1}\n" +
	"  b:\n    network: lab\n    public_key: $K2\n    address: 10.77.1.2\n    keepalive: 25s\n  # about c\n\n" +
	"  c: {network: far, public_key: $K3, address: 10.77.2.3, mode: tun}  # c\n" +
	"  d: {network: far, public_key: $K4, address: 10.77.2.4, tcp_endpoint: 192.0.2.4, transport: tcp}\n"

// reuseCases are edits of reuseHead+reusePeers; reused is how many
// entries the edited file reuses.
var reuseCases = []struct {
	name   string
	edit   func(string) string
	reused int
}{
	{"unchanged", func(s string) string { return s }, 4},
	{"one peer added", func(s string) string {
		return strings.Replace(s, "  c:", "  e: {network: lab, public_key: $K5, address: 10.77.1.5}\n  c:", 1)
	}, 4},
	{"lines shifted", func(s string) string {
		return "# a comment\n\n" + strings.Replace(s, "networks:", "# nets\nnetworks:", 1)
	}, 4},
	{"peer removed", func(s string) string {
		return strings.Replace(s, "  a: {network: lab, public_key: $K1, address: 10.77.1.1, endpoint: 192.0.2.1}\n", "", 1)
	}, 3},
	{"peers swapped", func(s string) string {
		c := "  c: {network: far, public_key: $K3, address: 10.77.2.3, mode: tun}  # c\n"
		d := "  d: {network: far, public_key: $K4, address: 10.77.2.4, tcp_endpoint: 192.0.2.4, transport: tcp}\n"
		return strings.Replace(s, c+d, d+c, 1)
	}, 3}, // c is parsed again: an entry out of order is looked for only after a second
	{"two peers removed", func(s string) string {
		return strings.Replace(s, "  a: {network: lab, public_key: $K1, address: 10.77.1.1, endpoint: 192.0.2.1}\n  b:\n    network: lab\n    public_key: $K2\n    address: 10.77.1.2\n    keepalive: 25s\n", "", 1)
	}, 1},
	{"peers reversed", func(s string) string {
		a := "  a: {network: lab, public_key: $K1, address: 10.77.1.1, endpoint: 192.0.2.1}\n"
		b := "  b:\n    network: lab\n    public_key: $K2\n    address: 10.77.1.2\n    keepalive: 25s\n  # about c\n\n"
		c := "  c: {network: far, public_key: $K3, address: 10.77.2.3, mode: tun}  # c\n"
		d := "  d: {network: far, public_key: $K4, address: 10.77.2.4, tcp_endpoint: 192.0.2.4, transport: tcp}\n"
		return strings.Replace(s, a+b+c+d, d+c+b+a, 1)
	}, 3},
	{"field changed", func(s string) string { return strings.Replace(s, "keepalive: 25s", "keepalive: 30s", 1) }, 3},
	{"new peer takes a reused key", func(s string) string {
		return strings.Replace(s, "  a:", "  e: {network: lab, public_key: $K2, address: 10.77.1.5}\n  a:", 1)
	}, 4},
	{"new peer takes a reused address", func(s string) string {
		return strings.Replace(s, "  a:", "  e: {network: far, public_key: $K5, address: 10.77.2.3}\n  a:", 1)
	}, 4},
	{"new peer takes a reused name", func(s string) string {
		return strings.Replace(s, "  a:", "  c: {network: lab, public_key: $K5, address: 10.77.1.5}\n  a:", 1)
	}, 4},
	{"new peer differs in case", func(s string) string {
		return strings.Replace(s, "  a:", "  C: {network: lab, public_key: $K5, address: 10.77.1.5}\n  a:", 1)
	}, 4},
	{"network named like a peer", func(s string) string {
		return strings.Replace(s, "networks:\n", "networks:\n  d: {prefix: 10.77.3.0/24}\n", 1)
	}, 4},
	{"network prefix changed", func(s string) string { return strings.Replace(s, "10.77.2.0/24", "10.77.2.0/25", 1) }, 0},
	{"network moved away", func(s string) string { return strings.Replace(s, "10.77.2.0/24", "10.77.4.0/24", 1) }, 0},
	{"network removed", func(s string) string { return strings.Replace(s, "  far: {prefix: 10.77.2.0/24}\n", "", 1) }, 0},
	{"network renamed", func(s string) string { return strings.Replace(s, "  far: {", "  away: {", 1) }, 0},
	{"overlay port", func(s string) string {
		return strings.Replace(s, "prefix: 10.77.0.0/16}", "prefix: 10.77.0.0/16, port: 7000}", 1)
	}, 0},
	{"overlay faces", func(s string) string {
		return strings.Replace(s, "prefix: 10.77.0.0/16}", "prefix: 10.77.0.0/16, faces: 127.78.0.0/16}", 1)
	}, 0},
	{"overlay broken", func(s string) string { return strings.Replace(s, "prefix: 10.77.0.0/16}", "prefix: 10.77.0.0/33}", 1) }, 0},
	{"a test added", func(s string) string {
		return s + "tests:\n  - {from: a, to: c, port: 9100, expect: allow}\n  - {from: c, to: a, port: 9100, expect: allow}\n"
	}, 4},
	{"not the fast shape", func(s string) string { return strings.Replace(s, "endpoint: 192.0.2.1}", "endpoint: '192.0.2.1'}", 1) }, 0},
	{"last entry without newline", func(s string) string { return strings.TrimSuffix(s, "\n") }, 3},
	{"indented deeper", func(s string) string { return strings.ReplaceAll(s, "\n  ", "\n   ") }, 0},
}

func TestParserReuse(t *testing.T) {
	base := keys.Replace(reuseHead + reusePeers)
	for _, c := range reuseCases {
		t.Run(c.name, func(t *testing.T) {
			edited := keys.Replace(c.edit(reuseHead + reusePeers))
			if got := checkReuse(t, []byte(base), []byte(edited)); got != c.reused {
				t.Errorf("reused %d entries, want %d", got, c.reused)
			}
			checkReuse(t, []byte(edited), []byte(base))
		})
	}
	t.Run("a file with errors leaves nothing to reuse", func(t *testing.T) {
		bad := keys.Replace(reuseHead + strings.Replace(reusePeers, "address: 10.77.1.1", "address: 10.77.2.1", 1))
		if got := checkReuse(t, []byte(bad), []byte(bad)); got != 0 {
			t.Errorf("reused %d entries, want 0", got)
		}
		// Parsed after the good file, the bad one reuses its other entries.
		if got := checkReuse(t, []byte(base), []byte(bad)); got != 3 {
			t.Errorf("reused %d entries, want 3", got)
		}
	})
	t.Run("big", func(t *testing.T) {
		data := string(bigFile(t))
		i := strings.Index(data, "\n  p-3-7:")
		more := data[:i+1] + "  extra: {network: net-3, public_key: " + key1 + ", address: 10.77.4.253}\n" + data[i+1:]
		if got, want := checkReuse(t, []byte(data), []byte(more)), strings.Count(data, "public_key:"); got != want {
			t.Errorf("reused %d entries, want %d", got, want)
		}
	})
}

// FuzzParserReuse: a Parser that parsed one file gives for another what
// Parse gives, errors and line numbers included.
func FuzzParserReuse(f *testing.F) {
	base := keys.Replace(reuseHead + reusePeers)
	for _, c := range reuseCases {
		f.Add([]byte(base), []byte(keys.Replace(c.edit(reuseHead+reusePeers))))
	}
	for _, data := range fixtureFiles(f) {
		f.Add([]byte(base), data)
		f.Add(data, data)
	}
	f.Fuzz(func(t *testing.T, a, b []byte) {
		if strings.Count(string(a), "\n") > 200 || strings.Count(string(b), "\n") > 200 {
			return
		}
		checkReuse(t, a, b)
	})
}
