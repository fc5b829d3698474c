package main

import (
	"encoding/base64"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// alicePrivate is RFC 7748's test scalar whose public key is keyPay1.
func alicePrivate(t *testing.T) string {
	b, err := hex.DecodeString("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

func TestCheckWarnsOfGaps(t *testing.T) {
	// monitoring reaches payments and billing; they do not reach each other.
	withBilling := strings.Replace(fixture, "  monitoring: {prefix: 10.77.2.0/24}\n",
		"  monitoring: {prefix: 10.77.2.0/24}\n  billing: {prefix: 10.77.3.0/24}\n", 1)
	withBilling = strings.Replace(withBilling, "    ports: [erlang]\n", "    ports: [erlang]\n  - {from: monitoring, to: billing}\n", 1)
	withBilling += "  bill-1:\n    network: billing\n    public_key: " + keyNew + "\n    address: 10.77.3.1\n"
	r := runCmd("", "check", "--file", writeFixture(t, withBilling))
	if r.code != 0 {
		t.Fatalf("check: %d %s", r.code, r.stderr)
	}
	for _, want := range []string{
		"warning: the interconnect is not transitive (1 gap):",
		"  payments <-> monitoring and monitoring <-> billing, but not payments <-> billing",
		"Once a node of monitoring is connected to nodes of both payments and billing",
		"has one of them disconnect, sometimes both",
		"-kernel connect_all false",
		"start the bridging nodes (monitoring) with -hidden",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("check output lacks %q:\n%s", want, r.stdout)
		}
	}
	if r := runCmd("", "check", "--file", writeFixture(t, fixture)); strings.Contains(r.stdout, "warning") {
		t.Errorf("warning for a file without gaps:\n%s", r.stdout)
	}
}

func TestExplainNode(t *testing.T) {
	data := strings.Replace(fixture, "    ports: [erlang]\n", "    ports: [erlang]\n    nodes: [metrics]\n", 1)
	path := writeFixture(t, data)
	for _, tc := range []struct{ node, want string }{
		{"metrics", "allow rule " + path + ":14 (monitoring -> payments ports [erlang] nodes [metrics])\n"},
		{"app", "deny node app (rule " + path + ":14 (monitoring -> payments ports [erlang] nodes [metrics]) allows the port but not this node)\n"},
	} {
		r := runCmd("", "explain", "--file", path, "--node", tc.node, "mon-1", "pay-1")
		if r.code != 0 || r.stdout != tc.want {
			t.Errorf("explain --node %s: %d %q %s, want %q", tc.node, r.code, r.stdout, r.stderr, tc.want)
		}
	}
	if r := runCmd("", "explain", "--control", "/nonexistent.sock", "--file", path, "mon-1", "pay-1"); r.code != 2 {
		t.Errorf("--control with --file: %d %s", r.code, r.stderr)
	}
}

func TestRotateKey(t *testing.T) {
	path := writeFixture(t, fixture)
	key := filepath.Join(filepath.Dir(path), "private.key")
	if err := os.WriteFile(key, []byte(alicePrivate(t)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The wrong host's key is refused, nothing changes.
	r := runCmd("", "rotate-key", "--file", path, "--self", "pay-2", "--private-key", key)
	if r.code != 1 || !strings.Contains(r.stderr, "is not the public key of") || readFile(t, path) != fixture {
		t.Fatalf("rotate-key for another host: %d %s", r.code, r.stderr)
	}
	if _, err := os.Stat(key + ".new"); err == nil {
		t.Error("left a .new key behind")
	}
	r = runCmd("", "rotate-key", "--file", path, "--self", "pay-1", "--private-key", key)
	if r.code != 0 {
		t.Fatalf("rotate-key: %d %s", r.code, r.stderr)
	}
	after := readFile(t, path)
	newPriv := strings.TrimSpace(readFile(t, key))
	pub := runCmd(newPriv, "pubkey")
	newPub := strings.TrimSpace(pub.stdout)
	if want := strings.Replace(fixture, keyPay1, newPub, 1); unbump(t, fixture, after) != want {
		t.Errorf("peer file after rotation:\n%s", after)
	}
	if old := strings.TrimSpace(readFile(t, key+".old")); old != alicePrivate(t) {
		t.Errorf("old key not kept: %q", old)
	}
	for _, f := range []string{key, key + ".old"} {
		if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want mode 0600", f, fi.Mode(), err)
		}
	}
	if !strings.Contains(r.stdout, "pay-1: new public key "+newPub+" (was "+keyPay1+")") {
		t.Errorf("output:\n%s", r.stdout)
	}
}
