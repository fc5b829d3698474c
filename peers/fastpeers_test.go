package peers

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// yamlRoot is the root node as yaml.v3 alone parses data, or nil.
func yamlRoot(data []byte) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc, extra yaml.Node
	if dec.Decode(&doc) != nil || !errors.Is(dec.Decode(&extra), io.EOF) || len(doc.Content) != 1 {
		return nil
	}
	return doc.Content[0]
}

// sameTree reports where two trees differ in anything the parser reads:
// kind, style, tag, value, anchor, line and column (comments aside).
func sameTree(a, b *yaml.Node, path string) error {
	if a == nil || b == nil {
		if a != b {
			return fmt.Errorf("%s: %v vs %v", path, a, b)
		}
		return nil
	}
	if a.Kind != b.Kind || a.Style != b.Style || a.Tag != b.Tag || a.ShortTag() != b.ShortTag() || a.Value != b.Value ||
		a.Anchor != b.Anchor || a.Line != b.Line || a.Column != b.Column || len(a.Content) != len(b.Content) {
		return fmt.Errorf("%s: fast {kind %v style %v tag %q value %q anchor %q at %d:%d, %d children} yaml.v3 {kind %v style %v tag %q value %q anchor %q at %d:%d, %d children}",
			path, a.Kind, a.Style, a.Tag, a.Value, a.Anchor, a.Line, a.Column, len(a.Content),
			b.Kind, b.Style, b.Tag, b.Value, b.Anchor, b.Line, b.Column, len(b.Content))
	}
	if a.Kind == yaml.AliasNode {
		return sameTree(a.Alias, b.Alias, path+"*")
	}
	for i := range a.Content {
		if err := sameTree(a.Content[i], b.Content[i], fmt.Sprintf("%s/%d", path, i)); err != nil {
			return err
		}
	}
	return nil
}

// checkFast checks that where fastDecode applies to data, it gives the
// tree yaml.v3 gives, and Parse the same result as without it.
func checkFast(t *testing.T, data []byte) (applied bool) {
	t.Helper()
	fast, ok := fastDecode(data)
	if !ok {
		return false
	}
	slow := yamlRoot(data)
	if slow == nil {
		t.Fatalf("fast path took a file yaml.v3 refuses:\n%s", data)
	}
	if err := sameTree(fast, slow, "root"); err != nil {
		t.Fatalf("%v\nin:\n%s", err, data)
	}
	f1, err1 := Parse("peers.yaml", data)
	p := &parser{name: "peers.yaml", noFast: true}
	f2 := p.parseFile(data)
	var err2 error
	if len(p.errs) > 0 {
		p.errs.sort()
		err2, f2 = p.errs, nil
	}
	if fmt.Sprint(err1) != fmt.Sprint(err2) || (f1 == nil) != (f2 == nil) {
		t.Fatalf("fast path: %v; yaml.v3: %v\nin:\n%s", err1, err2, data)
	}
	if f1 != nil && fmt.Sprint(peerLines(f1)) != fmt.Sprint(peerLines(f2)) {
		t.Fatalf("fast path peers %v; yaml.v3 %v", peerLines(f1), peerLines(f2))
	}
	return true
}

func peerLines(f *File) []string {
	var out []string
	for _, p := range f.Peers {
		out = append(out, fmt.Sprintf("%s@%d %s %s %s %s %s %v %v %v %v", p.Name, p.Line, p.Network.Name, p.PublicKey, p.Address, p.Face, p.Endpoint, p.Keepalive, p.Expose, p.Mode, p.Transport))
	}
	return out
}

const fastHead = "overlay: {prefix: 10.77.0.0/16}\nnetworks:\n  lab: {prefix: 10.77.1.0/24}\n"

var fastCases = []struct {
	name  string
	peers string // after "peers:\n"
	fast  bool
}{
	{"flow", "  a: {network: lab, public_key: $K1, address: 10.77.1.1, endpoint: 192.0.2.1:51820}\n  b: {network: lab, public_key: $K2, address: 10.77.1.2}\n", true},
	{"block", "  a:\n    network: lab\n    public_key: $K1\n    address: 10.77.1.1\n    keepalive: 25s\n  b:\n      network: lab\n      public_key: $K2\n      address: 10.77.1.2\n", true},
	{"mixed with comments", "  # the lab\n  a: {network: lab, public_key: $K1, address: 10.77.1.1}  # first\n\n# aside\n  b:   # second\n    network: lab # where\n    public_key: $K2\n    address: 10.77.1.2\n", true},
	{"errors", "  a: {network: lab, public_key: $K1, address: 10.77.1.1, adress: 1}\n  a: {network: nope, public_key: $K1, address: 10.77.9.1, endpoint: x:0}\n  B-: {network: null, public_key: $K2, address: 300.1.1.1, keepalive: 1.5s}\n", true},
	{"names that are numbers", "  1: {network: lab, public_key: $K1, address: 10.77.1.1}\n  true: {network: lab, public_key: $K2, address: 10.77.1.2}\n", true},
	{"values that are numbers and times", "  a: {network: lab, public_key: $K1, address: 10.77.1.1, x: 0x1F, y: 1e3, z: 2001-12-14, w: +.inf, v: 0b101, u: 1_000, t: 0o17, s: +12, r: 12.5, q: 1.2.3, p: +1e-5, o: 2001-12-14t21:59:43.10-05:00, n: null, m: True, l: off, k: 0xZ, j: 12:30}\n", true},
	{"wide spacing", "    a: {  network:   lab ,public_key: $K1,  address: 10.77.1.1  }\n", true},
	{"peers twice", "  a: {network: lab, public_key: $K1, address: 10.77.1.1}\npeers:\n  b: {network: lab, public_key: $K2, address: 10.77.1.2}\n", true},
	{"a second document", "  a: {network: lab, public_key: $K1, address: 10.77.1.1}\n---\nx: 1\n", false},
	{"quoted", "  a: {network: \"lab\", public_key: $K1, address: 10.77.1.1}\n", false},
	{"ipv6 endpoint", "  a: {network: lab, public_key: $K1, address: 10.77.1.1, endpoint: '[::1]:5'}\n", false},
	{"list", "  a: {network: lab, public_key: $K1, address: 10.77.1.1, expose: [9100]}\n", false},
	{"anchor", "  a: &x {network: lab, public_key: $K1, address: 10.77.1.1}\n", false},
	{"empty entry", "  a:\n  b: {network: lab, public_key: $K2, address: 10.77.1.2}\n", false},
	{"continued value", "  a:\n    network: lab\n      more\n", false},
	{"uneven", "  a: {network: lab, public_key: $K1, address: 10.77.1.1}\n   b: {network: lab}\n", false},
	{"tab", "  a: {network: lab,\tpublic_key: $K1, address: 10.77.1.1}\n", false},
	{"crlf", "  a: {network: lab, public_key: $K1, address: 10.77.1.1}\r\n", false},
	{"colon key", "  a: {net:work: lab}\n", false},
	{"no comment space", "  a: {network: lab}#x\n", false},
}

func TestFastDecodeSameTree(t *testing.T) {
	for _, c := range fastCases {
		t.Run(c.name, func(t *testing.T) {
			for _, tail := range []string{"", "tests:\n  - {from: a, to: a, port: 1, expect: allow}\n"} {
				data := []byte(keys.Replace(fastHead + "peers:\n" + c.peers + tail))
				if got := checkFast(t, data); got != c.fast {
					t.Fatalf("fast path applied: %v, want %v", got, c.fast)
				}
			}
		})
	}
	t.Run("testdata", func(t *testing.T) {
		for _, data := range fixtureFiles(t) {
			checkFast(t, data)
		}
	})
	t.Run("big", func(t *testing.T) {
		if !checkFast(t, bigFile(t)) {
			t.Fatal("fast path not applied to bigFile")
		}
	})
	t.Run("peers key not at the root", func(t *testing.T) {
		for _, s := range []string{
			"overlay: {prefix: 10.77.0.0/16}\nx: \"a\npeers:\n  a: {network: lab}\n\"\n",
			"overlay: {prefix: 10.77.0.0/16,\npeers:\n  a: {network: lab}\n}\n",
			"- peers:\npeers:\n  a: {network: lab}\n",
		} {
			if checkFast(t, []byte(s)) {
				t.Fatalf("fast path applied to\n%s", s)
			}
		}
	})
}

// FuzzFastDecode: wherever the fast path applies, it gives yaml.v3's tree
// and Parse's result.
func FuzzFastDecode(f *testing.F) {
	for _, c := range fastCases {
		f.Add([]byte(keys.Replace(fastHead + "peers:\n" + c.peers)))
	}
	for _, data := range fixtureFiles(f) {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if strings.Count(string(data), "\n") > 200 {
			return
		}
		checkFast(t, data)
	})
}
