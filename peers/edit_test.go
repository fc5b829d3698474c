package peers

import (
	"bytes"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// These tests work on text and yaml.Node only: they do not depend on Parse,
// so the editor can be checked on files that are not (yet) valid peer files.

var editUpdate = flag.Bool("update-edit", false, "rewrite the golden files of the editor tests (testdata/edit/*.golden)")

// editCase is one edit of one input file.
type editCase struct {
	name    string // the golden file is testdata/edit/<name>.golden
	input   string // in testdata/edit
	edit    func([]byte) ([]byte, error)
	added   []string // exactly the lines the edit adds ...
	removed []string // ... and removes, in order, as one hunk
	// change applies the same edit to the decoded input, to check that the
	// output means what it should.
	change func(doc map[string]any)
}

func editCases() []editCase {
	pay3 := PeerEntry{
		Name:      "pay-3",
		Network:   "payments",
		PublicKey: "+7sHTp1LHy9ADF4Z1qjJXk2zw3S0nYLuzfnGmKJVO0U=",
		Address:   netip.MustParseAddr("10.77.1.3"),
		Endpoint:  "10.0.0.3:51820",
		Keepalive: 25 * time.Second,
		Expose:    []string{"8080", "9100-9199"},
	}
	pay3Map := map[string]any{
		"network": "payments", "public_key": pay3.PublicKey, "address": "10.77.1.3",
		"endpoint": "10.0.0.3:51820", "keepalive": "25s", "expose": []any{8080, "9100-9199"},
	}
	return []editCase{
		{
			name: "add-network", input: "commented.yaml",
			edit: func(b []byte) ([]byte, error) {
				return AddNetwork(b, "billing", netip.MustParsePrefix("10.77.3.0/24"))
			},
			added: []string{"  billing:    {prefix: 10.77.3.0/24}"},
			change: func(doc map[string]any) {
				editSub(doc, "networks")["billing"] = map[string]any{"prefix": "10.77.3.0/24"}
			},
		},
		{
			name: "add-peer", input: "commented.yaml",
			edit:  func(b []byte) ([]byte, error) { return AddPeer(b, pay3) },
			added: []string{"", "  pay-3:", "    network: payments", "    public_key: " + pay3.PublicKey, "    address: 10.77.1.3", "    endpoint: 10.0.0.3:51820", "    keepalive: 25s", "    expose: [8080, 9100-9199]"},
			change: func(doc map[string]any) {
				editSub(doc, "peers")["pay-3"] = pay3Map
			},
		},
		{
			// The comment right above pay-1 describes it and goes with it; so
			// does the blank line that separated it from pay-2.
			name: "remove-first-peer", input: "commented.yaml",
			edit: func(b []byte) ([]byte, error) { return RemovePeer(b, "pay-1") },
			removed: []string{
				"  # The first payments node; a VM in DC1.",
				"  pay-1:",
				"    network: payments",
				"    public_key: 9sAIBGj+6fnZmaURm6fv1yqFbx0VD9vbbzT4bFoYdGE=   # from `wg pubkey`",
				"    address: 10.77.1.1",
				"    endpoint: pay-1.example.net:51820",
				"    keepalive: 25s",
				"",
			},
			change: func(doc map[string]any) { delete(editSub(doc, "peers"), "pay-1") },
		},
		{
			// Its commented-out field goes with it; "# Monitoring." belongs to
			// mon-1 and stays.
			name: "remove-middle-peer", input: "commented.yaml",
			edit: func(b []byte) ([]byte, error) { return RemovePeer(b, "pay-2") },
			removed: []string{
				"  pay-2:   # behind NAT",
				"    network: payments",
				`    public_key: "hKJ2Y7x0ZVwoDaO1kJq5Bf5BKk3Bt+4VyPGQ4ghhl2Q="`,
				"    address: 10.77.1.2",
				"    # endpoint: none, it dials out",
				"",
			},
			change: func(doc map[string]any) { delete(editSub(doc, "peers"), "pay-2") },
		},
		{
			// "# Monitoring." is separated from mon-1 by a blank line: it
			// heads a group, not this peer, and stays. The comment after the
			// last peer, indented like the section key, stays too.
			name: "remove-last-peer", input: "commented.yaml",
			edit: func(b []byte) ([]byte, error) { return RemovePeer(b, "mon-1") },
			removed: []string{
				"  mon-1:",
				"    network: monitoring",
				"    public_key: dGhpcyBpcyBub3QgYSByZWFsIGtleSBhdCBhbGwgISE=",
				"    address: 10.77.2.1",
				"    # keepalive: 25s",
			},
			change: func(doc map[string]any) { delete(editSub(doc, "peers"), "mon-1") },
		},
		{
			name: "allow-from-to", input: "commented.yaml",
			edit: func(b []byte) ([]byte, error) {
				return AddRule(b, RuleEntry{From: "monitoring", To: "billing", Ports: []string{"erlang", "9100"}})
			},
			added: []string{"", "  - from: monitoring", "    to: billing", "    ports: [erlang, 9100]"},
			change: func(doc map[string]any) {
				doc["interconnect"] = append(doc["interconnect"].([]any),
					map[string]any{"from": "monitoring", "to": "billing", "ports": []any{"erlang", 9100}})
			},
		},
		{
			name: "allow-between", input: "commented.yaml",
			edit: func(b []byte) ([]byte, error) {
				return AddRule(b, RuleEntry{From: "payments", To: "billing", Both: true})
			},
			added: []string{"", "  - between: [payments, billing]"},
			change: func(doc map[string]any) {
				doc["interconnect"] = append(doc["interconnect"].([]any),
					map[string]any{"between": []any{"payments", "billing"}})
			},
		},
		{
			// Missing section, created after the one before it in the usual
			// order, spaced like the other sections.
			name: "create-networks", input: "minimal.yaml",
			edit: func(b []byte) ([]byte, error) {
				return AddNetwork(b, "payments", netip.MustParsePrefix("10.78.1.0/24"))
			},
			added: []string{"", "networks:", "  payments: {prefix: 10.78.1.0/24}", ""},
			change: func(doc map[string]any) {
				doc["networks"] = map[string]any{"payments": map[string]any{"prefix": "10.78.1.0/24"}}
			},
		},
		{
			name: "create-peers", input: "minimal.yaml",
			edit: func(b []byte) ([]byte, error) {
				return AddPeer(b, PeerEntry{Name: "pay-1", Network: "payments", PublicKey: pay3.PublicKey, Address: netip.MustParseAddr("10.78.1.1")})
			},
			added: []string{"", "peers:", "  pay-1:", "    network: payments", "    public_key: " + pay3.PublicKey, "    address: 10.78.1.1", ""},
			change: func(doc map[string]any) {
				doc["peers"] = map[string]any{"pay-1": map[string]any{"network": "payments", "public_key": pay3.PublicKey, "address": "10.78.1.1"}}
			},
		},
		{
			name: "create-interconnect", input: "minimal.yaml",
			edit: func(b []byte) ([]byte, error) {
				return AddRule(b, RuleEntry{From: "a", To: "b", Ports: []string{"erlang"}})
			},
			added: []string{"", "interconnect:", "  - from: a", "    to: b", "    ports: [erlang]", ""},
			change: func(doc map[string]any) {
				doc["interconnect"] = []any{map[string]any{"from": "a", "to": "b", "ports": []any{"erlang"}}}
			},
		},
		{
			name: "fill-empty-networks", input: "empty.yaml",
			edit: func(b []byte) ([]byte, error) {
				return AddNetwork(b, "payments", netip.MustParsePrefix("10.79.1.0/24"))
			},
			removed: []string{"networks: {}"},
			added:   []string{"networks:", "  payments: {prefix: 10.79.1.0/24}"},
			change: func(doc map[string]any) {
				doc["networks"] = map[string]any{"payments": map[string]any{"prefix": "10.79.1.0/24"}}
			},
		},
		{
			name: "fill-empty-interconnect", input: "empty.yaml",
			edit: func(b []byte) ([]byte, error) {
				return AddRule(b, RuleEntry{From: "a", To: "b", Both: true, Ports: []string{"5000-5010"}})
			},
			removed: []string{"interconnect: []   # nothing crosses networks yet"},
			added:   []string{"interconnect: # nothing crosses networks yet", "  - between: [a, b]", "    ports: [5000-5010]"},
			change: func(doc map[string]any) {
				doc["interconnect"] = []any{map[string]any{"between": []any{"a", "b"}, "ports": []any{"5000-5010"}}}
			},
		},
		{
			name: "fill-empty-peers", input: "empty.yaml",
			edit: func(b []byte) ([]byte, error) {
				return AddPeer(b, PeerEntry{Name: "pay-1", Network: "payments", PublicKey: pay3.PublicKey, Address: netip.MustParseAddr("10.79.1.1"), Keepalive: 90 * time.Second})
			},
			removed: []string{"peers: {}   # none yet"},
			added:   []string{"peers: # none yet", "  pay-1:", "    network: payments", "    public_key: " + pay3.PublicKey, "    address: 10.79.1.1", "    keepalive: 1m30s"},
			change: func(doc map[string]any) {
				doc["peers"] = map[string]any{"pay-1": map[string]any{"network": "payments", "public_key": pay3.PublicKey, "address": "10.79.1.1", "keepalive": "1m30s"}}
			},
		},
	}
}

// editSub returns doc[key] as a mapping.
func editSub(doc map[string]any, key string) map[string]any {
	return doc[key].(map[string]any)
}

func TestEditGolden(t *testing.T) {
	for _, tc := range editCases() {
		t.Run(tc.name, func(t *testing.T) {
			in, err := os.ReadFile(filepath.Join("testdata", "edit", tc.input))
			if err != nil {
				t.Fatal(err)
			}
			orig := bytes.Clone(in)
			out, err := tc.edit(in)
			if err != nil {
				t.Fatalf("edit: %v", err)
			}
			if !bytes.Equal(in, orig) {
				t.Fatal("edit modified its input slice")
			}
			golden := filepath.Join("testdata", "edit", tc.name+".golden")
			if *editUpdate {
				if err := os.WriteFile(golden, out, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out, want) {
				t.Errorf("output differs from %s:\n%s", golden, out)
			}

			// The edit is one hunk of exactly the expected lines; all the
			// rest is byte for byte the input.
			removed, added := editHunk(string(in), string(out))
			if !reflect.DeepEqual(removed, editNilIfEmpty(tc.removed)) || !reflect.DeepEqual(added, editNilIfEmpty(tc.added)) {
				t.Errorf("hunk:\n removed %q\n added   %q\nwant:\n removed %q\n added   %q", removed, added, tc.removed, tc.added)
			}

			// And it means what it should.
			var before, after map[string]any
			if err := yaml.Unmarshal(in, &before); err != nil {
				t.Fatal(err)
			}
			if err := yaml.Unmarshal(out, &after); err != nil {
				t.Fatalf("output is not YAML: %v", err)
			}
			tc.change(before)
			if !reflect.DeepEqual(before, after) {
				t.Errorf("output decodes to\n%v\nwant\n%v", after, before)
			}
		})
	}
}

// editHunk returns the lines of a that b replaces, and the lines that replace
// them, after taking off the longest common prefix and suffix of lines.
func editHunk(a, b string) (removed, added []string) {
	al, bl := strings.SplitAfter(a, "\n"), strings.SplitAfter(b, "\n")
	p := 0
	for p < len(al) && p < len(bl) && al[p] == bl[p] {
		p++
	}
	s := 0
	for s < len(al)-p && s < len(bl)-p && al[len(al)-1-s] == bl[len(bl)-1-s] {
		s++
	}
	trim := func(ls []string) []string {
		var out []string
		for _, l := range ls {
			out = append(out, strings.TrimSuffix(l, "\n"))
		}
		return out
	}
	return trim(al[p : len(al)-s]), trim(bl[p : len(bl)-s])
}

func editNilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return s
}

func TestEditErrors(t *testing.T) {
	in, err := os.ReadFile(filepath.Join("testdata", "edit", "commented.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	key := "+7sHTp1LHy9ADF4Z1qjJXk2zw3S0nYLuzfnGmKJVO0U="
	addr := netip.MustParseAddr("10.77.1.9")
	tests := []struct {
		name string
		data string
		edit func([]byte) ([]byte, error)
		want string
	}{
		{"duplicate network", string(in), func(b []byte) ([]byte, error) {
			return AddNetwork(b, "payments", netip.MustParsePrefix("10.77.9.0/24"))
		}, "network payments already exists (line 11)"},
		{"duplicate peer", string(in), func(b []byte) ([]byte, error) {
			return AddPeer(b, PeerEntry{Name: "pay-2", Network: "payments", PublicKey: key, Address: addr})
		}, "peer pay-2 already exists (line 37)"},
		{"missing peer", string(in), func(b []byte) ([]byte, error) { return RemovePeer(b, "pay-9") }, "peer pay-9 not found"},
		{"no peers section", "overlay: {}\n", func(b []byte) ([]byte, error) { return RemovePeer(b, "pay-1") }, "peer pay-1 not found"},
		{"empty name", string(in), func(b []byte) ([]byte, error) {
			return AddPeer(b, PeerEntry{Name: " ", Network: "payments", PublicKey: key, Address: addr})
		}, "peer name is empty"},
		{"incomplete peer", string(in), func(b []byte) ([]byte, error) {
			return AddPeer(b, PeerEntry{Name: "x", Network: "payments"})
		}, "peer x: network, public key and address are required"},
		{"rule without end", string(in), func(b []byte) ([]byte, error) { return AddRule(b, RuleEntry{From: "a"}) }, "rule: both ends must be named"},
		{"not YAML", "peers: [\n", func(b []byte) ([]byte, error) { return RemovePeer(b, "a") }, "parse peer file: "},
		{"not a mapping", "- a\n", func(b []byte) ([]byte, error) { return RemovePeer(b, "a") }, "top level is not a mapping"},
		{"a scalar", "~\n", func(b []byte) ([]byte, error) { return RemovePeer(b, "a") }, "top level is not a mapping"},
		{"two documents", "a: 1\n---\nb: 2\n", func(b []byte) ([]byte, error) { return RemovePeer(b, "a") }, "more than one YAML document"},
		{"end marker", "a: 1\n...\n", func(b []byte) ([]byte, error) { return RemovePeer(b, "a") }, "line 2: remove the end-of-document marker"},
		{"a layout the editor does not know", "peers:\n ?\n", func(b []byte) ([]byte, error) {
			return AddPeer(b, PeerEntry{Name: "x", Network: "payments", PublicKey: key, Address: addr})
		}, "edit it by hand"},
		{"lone CR", "a: 1\rb: 2\r\n", func(b []byte) ([]byte, error) { return RemovePeer(b, "a") }, "carriage return without a newline"},
		{"explicit key", "? peers\n: {}\n", func(b []byte) ([]byte, error) { return RemovePeer(b, "a") }, "line 1: explicit keys (? key) are not supported"},
		{"UTF-16", "\xfe\xff\x00a\x00:", func(b []byte) ([]byte, error) { return RemovePeer(b, "a") }, "not UTF-8"},
		{"flow peers", "peers: {a: {network: n}}\n", func(b []byte) ([]byte, error) {
			return AddPeer(b, PeerEntry{Name: "b", Network: "n", PublicKey: key, Address: addr})
		}, "line 1: peers: written in flow style; rewrite it as a block to edit it"},
		{"flow peers remove", "peers: {a: {network: n}}\n", func(b []byte) ([]byte, error) { return RemovePeer(b, "a") }, "peers: written in flow style"},
		{"peers is a list", "peers:\n  - a\n", func(b []byte) ([]byte, error) {
			return AddPeer(b, PeerEntry{Name: "b", Network: "n", PublicKey: key, Address: addr})
		}, "line 2: peers: should be a mapping"},
		{"interconnect is a mapping", "interconnect: {a: b}\n", func(b []byte) ([]byte, error) {
			return AddRule(b, RuleEntry{From: "a", To: "b"})
		}, "line 1: interconnect: should be a list"},
		{"junk after empty value", "peers: {} x\n", func(b []byte) ([]byte, error) {
			return AddPeer(b, PeerEntry{Name: "b", Network: "n", PublicKey: key, Address: addr})
		}, "parse peer file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := tc.edit([]byte(tc.data))
			if err == nil {
				t.Fatalf("no error; output:\n%s", out)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want it to contain %q", err, tc.want)
			}
			if out != nil {
				t.Errorf("output %q on error", out)
			}
		})
	}
}

// TestEditShapes covers layouts that the golden input does not have.
func TestEditShapes(t *testing.T) {
	key := "+7sHTp1LHy9ADF4Z1qjJXk2zw3S0nYLuzfnGmKJVO0U="
	peer := PeerEntry{Name: "b", Network: "n", PublicKey: key, Address: netip.MustParseAddr("10.0.0.2")}
	tests := []struct {
		name string
		in   string
		edit func([]byte) ([]byte, error)
		want string
	}{
		{
			"CRLF and no final newline", "peers:\r\n  a:\r\n    network: n\r\n    address: 10.0.0.1",
			func(b []byte) ([]byte, error) { return AddPeer(b, peer) },
			"peers:\r\n  a:\r\n    network: n\r\n    address: 10.0.0.1\r\n  b:\r\n    network: n\r\n    public_key: " + key + "\r\n    address: 10.0.0.2\r\n",
		},
		{
			"four-space indent, aligned values", "peers:\n    a:\n        network:    n\n        address:    10.0.0.1\n",
			func(b []byte) ([]byte, error) { return AddPeer(b, peer) },
			"peers:\n    a:\n        network:    n\n        address:    10.0.0.1\n    b:\n        network:    n\n        public_key: " + key + "\n        address:    10.0.0.2\n",
		},
		{
			"flow peers entries", "peers:\n  a: {network: n, address: 10.0.0.1}\n",
			func(b []byte) ([]byte, error) { return AddPeer(b, peer) },
			"peers:\n  a: {network: n, address: 10.0.0.1}\n  b: {network: n, public_key: " + key + ", address: 10.0.0.2}\n",
		},
		{
			"block networks", "networks:\n  a:\n    prefix: 10.0.1.0/24\n",
			func(b []byte) ([]byte, error) { return AddNetwork(b, "b", netip.MustParsePrefix("10.0.2.0/24")) },
			"networks:\n  a:\n    prefix: 10.0.1.0/24\n  b:\n    prefix: 10.0.2.0/24\n",
		},
		{
			"flow rules, unindented list", "interconnect:\n- {from: a, to: b}\ntests: []\n",
			func(b []byte) ([]byte, error) {
				return AddRule(b, RuleEntry{From: "c", To: "d", Ports: []string{"erlang"}})
			},
			"interconnect:\n- {from: a, to: b}\n- {from: c, to: d, ports: [erlang]}\ntests: []\n",
		},
		{
			"null section", "peers:\n# a comment below\n",
			func(b []byte) ([]byte, error) { return AddPeer(b, peer) },
			"peers:\n  b:\n    network: n\n    public_key: " + key + "\n    address: 10.0.0.2\n# a comment below\n",
		},
		{
			"tilde section with comments inside", "peers: ~\n  # add peers here\ntests: []\n",
			func(b []byte) ([]byte, error) { return AddPeer(b, peer) },
			"peers:\n  # add peers here\n  b:\n    network: n\n    public_key: " + key + "\n    address: 10.0.0.2\ntests: []\n",
		},
		{
			"tagged null section", "networks: !!null # none yet\ntests: []\n",
			func(b []byte) ([]byte, error) { return AddNetwork(b, "b", netip.MustParsePrefix("10.0.2.0/24")) },
			"networks: # none yet\n  b: {prefix: 10.0.2.0/24}\ntests: []\n",
		},
		{
			"bare tag below the key", "networks:\n !\ntests: []\n",
			func(b []byte) ([]byte, error) { return AddNetwork(b, "b", netip.MustParsePrefix("10.0.2.0/24")) },
			"networks:\n  b: {prefix: 10.0.2.0/24}\ntests: []\n",
		},
		{
			"names that need quotes", "peers:\n  a:\n    network: n\n",
			func(b []byte) ([]byte, error) {
				p := peer
				p.Name, p.Network, p.Endpoint = "123", "yes: no", "[fd00::1]:51820"
				return AddPeer(b, p)
			},
			"peers:\n  a:\n    network: n\n  \"123\":\n    network: \"yes: no\"\n    public_key: " + key + "\n    address: 10.0.0.2\n    endpoint: \"[fd00::1]:51820\"\n",
		},
		{
			"remove the only peer", "peers:\n  a:\n    network: n\n\ntests: []\n",
			func(b []byte) ([]byte, error) { return RemovePeer(b, "a") },
			"peers:\n\ntests: []\n",
		},
		{
			"remove last peer before EOF after blank", "peers:\n  a: {}\n\n  b: {}\n",
			func(b []byte) ([]byte, error) { return RemovePeer(b, "b") },
			"peers:\n  a: {}\n",
		},
		{
			"remove a peer with a block scalar", "peers:\n  a:\n    note: |\n      text\n\n      # not a comment\n  b: {}\n",
			func(b []byte) ([]byte, error) { return RemovePeer(b, "a") },
			"peers:\n  b: {}\n",
		},
		{
			"empty file", "",
			func(b []byte) ([]byte, error) { return AddNetwork(b, "a", netip.MustParsePrefix("10.0.1.0/24")) },
			"networks:\n  a: {prefix: 10.0.1.0/24}\n",
		},
		{
			"only comments, no final newline", "# nothing yet",
			func(b []byte) ([]byte, error) { return AddNetwork(b, "a", netip.MustParsePrefix("10.0.1.0/24")) },
			"# nothing yet\n\nnetworks:\n  a: {prefix: 10.0.1.0/24}\n",
		},
		{
			"compact sections get no blank line", "overlay:\n  port: 1\npeers:\n  a: {}\n",
			func(b []byte) ([]byte, error) { return AddNetwork(b, "a", netip.MustParsePrefix("10.0.1.0/24")) },
			"overlay:\n  port: 1\nnetworks:\n  a: {prefix: 10.0.1.0/24}\npeers:\n  a: {}\n",
		},
		{
			"ports that need quotes", "interconnect:\n",
			func(b []byte) ([]byte, error) {
				return AddRule(b, RuleEntry{From: "a", To: "b", Ports: []string{"erlang", "a,b"}})
			},
			"interconnect:\n  - from: a\n    to: b\n    ports: [erlang, \"a,b\"]\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out, err := tc.edit([]byte(tc.in))
			if err != nil {
				t.Fatalf("edit: %v", err)
			}
			if string(out) != tc.want {
				t.Errorf("got\n%q\nwant\n%q", out, tc.want)
			}
		})
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "peers.yaml")

	// A new file gets perm.
	if err := WriteFileAtomic(path, []byte("a\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	editCheckFile(t, path, "a\n", 0o640)

	// An existing file keeps its mode, whatever perm says.
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(path, []byte("b\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	editCheckFile(t, path, "b\n", 0o600)

	// A link stays a link; its target is replaced.
	link := filepath.Join(dir, "link.yaml")
	if err := os.Symlink("peers.yaml", link); err != nil {
		t.Fatal(err)
	}
	if err := WriteFileAtomic(link, []byte("c\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("link replaced: %v %v", fi, err)
	}
	editCheckFile(t, path, "c\n", 0o600)

	// No temporary files are left behind.
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Errorf("directory holds %d entries, want 2", len(ents))
	}

	// A failure leaves no trace and says where.
	err := WriteFileAtomic(filepath.Join(dir, "missing", "p.yaml"), []byte("x"), 0o644)
	if err == nil || !strings.Contains(err.Error(), "missing/p.yaml") {
		t.Errorf("write into a missing directory: %v", err)
	}
}

func editCheckFile(t *testing.T, path, data string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != data {
		t.Errorf("%s holds %q, want %q", path, b, data)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != mode {
		t.Errorf("%s mode %v, want %v", path, fi.Mode().Perm(), mode)
	}
}

// FuzzEdit: on any input the editor either refuses or makes exactly the
// change asked for, keeping the rest of the document's meaning and every
// line but at most one (an empty value like `peers: {}` it turns into a
// block).
func FuzzEdit(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "edit", "*.yaml"))
	for _, path := range files {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("peers:\n  a: {x: 1}\n  b:\n    y: |\n      text\n"))
	f.Add([]byte("interconnect:\n- from: a\n  to: b\n"))
	f.Add([]byte("networks: ~ # none\n"))
	f.Add([]byte(" 0:"))
	f.Add([]byte("?\n"))
	f.Add([]byte("~"))
	f.Add([]byte("\xfe\xff"))
	f.Add([]byte("0:\n...\n"))
	f.Add([]byte("\r0:"))
	f.Add([]byte("?\n 0"))
	f.Fuzz(func(t *testing.T, data []byte) {
		// A hang is a failure too; the fuzzer reports the input.
		watchdog := time.AfterFunc(10*time.Second, func() { panic(fmt.Sprintf("edit of %q hangs", data)) })
		defer watchdog.Stop()
		var in map[string]any
		decodes := yaml.Unmarshal(data, &in) == nil
		peer := PeerEntry{Name: "zz-new", Network: "n", PublicKey: "k", Address: netip.MustParseAddr("10.0.0.1")}
		ops := []struct {
			name   string
			edit   func([]byte) ([]byte, error)
			change func(doc map[string]any)
		}{
			{"add-peer", func(b []byte) ([]byte, error) { return AddPeer(b, peer) }, func(doc map[string]any) {
				editPut(doc, "peers", "zz-new", map[string]any{"network": "n", "public_key": "k", "address": "10.0.0.1"})
			}},
			{"add-network", func(b []byte) ([]byte, error) {
				return AddNetwork(b, "zz-net", netip.MustParsePrefix("10.0.0.0/24"))
			}, func(doc map[string]any) {
				editPut(doc, "networks", "zz-net", map[string]any{"prefix": "10.0.0.0/24"})
			}},
			{"allow", func(b []byte) ([]byte, error) {
				return AddRule(b, RuleEntry{From: "a", To: "b", Ports: []string{"erlang"}})
			}, func(doc map[string]any) {
				rules, _ := doc["interconnect"].([]any)
				doc["interconnect"] = append(rules, map[string]any{"from": "a", "to": "b", "ports": []any{"erlang"}})
			}},
		}
		if ps, ok := in["peers"].(map[string]any); ok {
			for name := range ps {
				ops = append(ops, struct {
					name   string
					edit   func([]byte) ([]byte, error)
					change func(doc map[string]any)
				}{"remove-peer " + name, func(b []byte) ([]byte, error) { return RemovePeer(b, name) }, func(doc map[string]any) {
					delete(doc["peers"].(map[string]any), name)
				}})
				break
			}
		}
		for _, op := range ops {
			out, err := op.edit(data)
			if err != nil || !decodes {
				continue
			}
			var got map[string]any
			if err := yaml.Unmarshal(out, &got); err != nil {
				t.Fatalf("%s: output is not YAML (%v):\n%s\ninput:\n%s", op.name, err, out, data)
			}
			// An edit may end the last line, which changes a block scalar
			// there ("|" keeps the final line break): either meaning will do.
			ok := false
			var want map[string]any
			for _, in := range [][]byte{data, append(bytes.Clone(data), '\n')} {
				want = nil
				if yaml.Unmarshal(in, &want) != nil {
					continue
				}
				if want == nil {
					want = map[string]any{}
				}
				op.change(want)
				// Removing the last peer leaves `peers:` empty, which is null.
				if m, isMap := want["peers"].(map[string]any); isMap && len(m) == 0 && got["peers"] == nil {
					want["peers"] = nil
				}
				ok = ok || reflect.DeepEqual(got, want)
			}
			if !ok {
				t.Fatalf("%s: output means\n%v\nwant\n%v\noutput:\n%s\ninput:\n%s", op.name, got, want, out, data)
			}
			if lost := editLostLines(string(data), string(out)); len(lost) > 1 && !strings.HasPrefix(op.name, "remove-peer") {
				t.Fatalf("%s: lost lines %q\noutput:\n%s\ninput:\n%s", op.name, lost, out, data)
			}
		}
	})
}

// editLostLines returns the lines of a that are not found, in order, in b.
func editLostLines(a, b string) []string {
	bl := strings.Split(strings.TrimSuffix(b, "\n"), "\n")
	var lost []string
	j := 0
	for _, l := range strings.Split(strings.TrimSuffix(a, "\n"), "\n") {
		k := j
		for k < len(bl) && bl[k] != l {
			k++
		}
		if k == len(bl) {
			lost = append(lost, l)
			continue
		}
		j = k + 1
	}
	return lost
}

// editPut sets doc[section][key], creating the section.
func editPut(doc map[string]any, section, key string, v any) {
	switch m := doc[section].(type) {
	case map[string]any:
		m[key] = v
	case map[any]any: // yaml.v3's choice when some key is not a string
		m[key] = v
	default:
		doc[section] = map[string]any{key: v}
	}
}

// TestEditKeepsTCPFields: adding and removing peers keeps another peer's
// tcp_endpoint and transport with their comments; AddPeer writes them.
func TestEditKeepsTCPFields(t *testing.T) {
	data := []byte(`overlay: {prefix: 10.77.0.0/16}
networks:
  a: {prefix: 10.77.1.0/24}
peers:
  a-1:
    network: a
    public_key: ` + testKey(1).String() + `
    address: 10.77.1.1
    tcp_endpoint: a-1.example.net:443  # through the office firewall
    transport: tcp                     # UDP never passes there
`)
	out, err := AddPeer(data, PeerEntry{Name: "a-2", Network: "a", PublicKey: testKey(2).String(),
		Address: netip.MustParseAddr("10.77.1.2"), TCPEndpoint: "10.0.0.2", Transport: TransportTCP})
	if err != nil {
		t.Fatal(err)
	}
	if out, err = RemovePeer(append(out, []byte("  a-3: {network: a, public_key: "+testKey(3).String()+", address: 10.77.1.3}\n")...), "a-3"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"tcp_endpoint: a-1.example.net:443  # through the office firewall", "transport: tcp                     # UDP never passes there"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("lost %q:\n%s", want, out)
		}
	}
	f, err := Parse("peers.yaml", out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if p := f.Peer("a-2"); p.TCPEndpoint != "10.0.0.2:443" || p.Transport != TransportTCP {
		t.Fatalf("a-2: tcp_endpoint %q transport %s", p.TCPEndpoint, p.Transport)
	}
	if p := f.Peer("a-1"); p.TCPEndpoint != "a-1.example.net:443" || p.Transport != TransportTCP {
		t.Fatalf("a-1: tcp_endpoint %q transport %s", p.TCPEndpoint, p.Transport)
	}
}
