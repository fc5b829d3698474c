package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWGConfig(t *testing.T) {
	path := writeFixture(t, tunFixture())
	r := runCmd("", "wg-config", "--file", path, "laptop")
	if r.code != 0 {
		t.Fatalf("wg-config: %d %s", r.code, r.stderr)
	}
	// The laptop (monitoring) reaches mon-1 (same network) and, by the
	// rule, payments' hosts; each with its endpoint if any; the laptop is
	// behind NAT, so it keeps every path open.
	for _, want := range []string{
		"[Interface]\nPrivateKey = <the private key of laptop",
		"Address = 10.77.2.9/32\n",
		"PublicKey = " + keyPay1 + "\nEndpoint = pay-1.example.net:51820\nAllowedIPs = 10.77.1.1/32\nPersistentKeepalive = 25\n",
		"PublicKey = " + keyPay2 + "\nAllowedIPs = 10.77.1.2/32\nPersistentKeepalive = 25\n",
		"PublicKey = " + keyMon1 + "\nAllowedIPs = 10.77.2.1/32\n",
		"# mon-1 (network monitoring, tun mode): same network monitoring\n",
		"(monitoring -> payments ports [erlang])",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("wg-config lacks %q:\n%s", want, r.stdout)
		}
	}
	// pay-2 with the rule gone: no peer across networks.
	noRule := strings.Replace(tunFixture(), "  - from: monitoring\n    to: payments\n    ports: [erlang]\n", "", 1)
	noRule = strings.Replace(noRule, "  - {from: mon-1, to: pay-1, port: 4369, expect: allow}\n", "", 1)
	r = runCmd("", "wg-config", "--file", writeFixture(t, noRule), "laptop")
	if r.code != 0 || strings.Contains(r.stdout, keyPay1) || !strings.Contains(r.stdout, keyMon1) {
		t.Errorf("wg-config without the rule: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// With the key: checked against the file, then written in.
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "pay-2.key")
	gen := runCmd("", "genkey")
	if err := os.WriteFile(keyFile, []byte(gen.stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	r = runCmd("", "wg-config", "--file", path, "--private-key", keyFile, "laptop")
	if r.code != 1 || !strings.Contains(r.stderr, "is not laptop's") {
		t.Errorf("a foreign key: %d %q", r.code, r.stderr)
	}
	pub := runCmd(gen.stdout, "pubkey")
	withKey := strings.Replace(tunFixture(), keyLaptop, strings.TrimSpace(pub.stdout), 1)
	r = runCmd("", "wg-config", "--file", writeFixture(t, withKey), "--private-key", keyFile, "laptop")
	if r.code != 0 || !strings.Contains(r.stdout, "PrivateKey = "+strings.TrimSpace(gen.stdout)+"\n") {
		t.Errorf("wg-config --private-key: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
