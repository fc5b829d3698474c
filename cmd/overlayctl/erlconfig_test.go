package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tunFixture is the test overlay with mon-1 in TUN mode and a standard
// WireGuard laptop in monitoring.
func tunFixture() string {
	f := strings.Replace(fixture, "    expose: [9100-9199]\n", "    expose: [9100-9199]\n    mode: tun\n", 1)
	return f + "\n  laptop:\n    network: monitoring\n    public_key: " + keyLaptop + "\n    address: 10.77.2.9\n    keepalive: 25s\n    mode: wireguard\n"
}

// keyLaptop is a public key for the laptop peer (any valid key).
const keyLaptop = "upCQnMpAlmiSjBNWwKfVC90VLEtSWPzwl7p6keR0Bnp="

func TestShowTUN(t *testing.T) {
	path := writeFixture(t, tunFixture())
	r := runCmd("", "show", "--file", path, "mon-1")
	if r.code != 0 {
		t.Fatalf("show: %d %s", r.code, r.stderr)
	}
	for _, want := range []string{
		"mode      tun\n",
		"face      none (tun mode: Erlang uses the overlay address)\n",
		"\nexport ERL_EPMD_ADDRESS=10.77.2.1\n",
		"\nerl -name app@10.77.2.1 -kernel inet_dist_use_interface '{10,77,2,1}'\n",
		"#   erl -name app@mon-1.nodewire",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("show mon-1 lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "127.77.2.1") {
		t.Errorf("show of a TUN host mentions its face:\n%s", r.stdout)
	}
	r = runCmd("", "show", "--file", path, "laptop")
	if r.code != 0 || !strings.Contains(r.stdout, "overlayctl wg-config --file F laptop") {
		t.Errorf("show laptop: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

func TestErlInetrc(t *testing.T) {
	path := writeFixture(t, tunFixture())
	tests := []struct {
		args []string
		code int
		want []string
		err  string
	}{
		{[]string{"--self", "pay-1"}, 0, []string{ // userspace (its mode in the file): faces
			"{lookup, [file, native]}.\n",
			`{host, {127,77,1,1}, ["pay-1.nodewire"]}.`,
			`{host, {127,77,2,1}, ["mon-1.nodewire"]}.`,
		}, ""},
		{[]string{"--self", "mon-1"}, 0, []string{ // tun: overlay addresses
			`{host, {10,77,1,1}, ["pay-1.nodewire"]}.`,
			`{host, {10,77,2,1}, ["mon-1.nodewire"]}.`,
		}, ""},
		{[]string{"--self", "pay-1", "--mode", "tun", "--domain", "ov.example"}, 0, []string{
			`{host, {10,77,1,2}, ["pay-2.ov.example"]}.`,
		}, ""},
		{[]string{"--self", "pay-1", "--domain", "Bad_Domain"}, 2, nil, "--domain"},
		{[]string{"--self", "pay-1", "--mode", "kernel"}, 2, nil, "--mode"},
		{[]string{"--self", "nobody"}, 1, nil, "no peer nobody"},
	}
	for _, tt := range tests {
		r := runCmd("", append([]string{"erl-inetrc", "--file", path}, tt.args...)...)
		if r.code != tt.code || !strings.Contains(r.stderr, tt.err) {
			t.Errorf("erl-inetrc %v: code %d, stderr %q", tt.args, r.code, r.stderr)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(r.stdout, w) {
				t.Errorf("erl-inetrc %v lacks %s:\n%s", tt.args, w, r.stdout)
			}
		}
	}
	out := filepath.Join(t.TempDir(), "inetrc")
	if r := runCmd("", "erl-inetrc", "--file", path, "--self", "mon-1", "--out", out); r.code != 0 {
		t.Fatalf("--out: %s", r.stderr)
	}
	if b, err := os.ReadFile(out); err != nil || !strings.Contains(string(b), `["pay-2.nodewire"]`) {
		t.Fatalf("--out wrote %q, %v", b, err)
	}
}

// erlang-hosts lists the hosts whose epmd the host may reach, itself
// included: monitoring reaches payments one way, so pay-1's file has no
// monitoring host and mon-1's has every payments host.
func TestErlangHosts(t *testing.T) {
	path := writeFixture(t, tunFixture())
	tests := []struct {
		args []string
		code int
		want string // the file after its comment line
		err  string
	}{
		{[]string{"--self", "pay-1"}, 0, "'127.77.1.1'.\n'127.77.1.2'.\n", ""},                           // userspace: faces
		{[]string{"--self", "pay-1", "--mode", "tun"}, 0, "'10.77.1.1'.\n'10.77.1.2'.\n", ""},            // as a TUN host would
		{[]string{"--self", "mon-1"}, 0, "'10.77.1.1'.\n'10.77.1.2'.\n'10.77.2.1'.\n'10.77.2.9'.\n", ""}, // tun: overlay addresses
		{[]string{"--self", "mon-1", "--domain", "nodewire"}, 0, "'pay-1.nodewire'.\n'pay-2.nodewire'.\n'mon-1.nodewire'.\n'laptop.nodewire'.\n", ""},
		{[]string{"--self", "pay-1", "--domain", "Bad_Domain"}, 2, "", "--domain"},
		{[]string{"--self", "pay-1", "--mode", "kernel"}, 2, "", "--mode"},
		{[]string{"--self", "nobody"}, 1, "", "no peer nobody"},
		{[]string{}, 2, "", "--self"},
	}
	for _, tt := range tests {
		r := runCmd("", append([]string{"erlang-hosts", "--file", path}, tt.args...)...)
		if r.code != tt.code || !strings.Contains(r.stderr, tt.err) {
			t.Errorf("erlang-hosts %v: code %d, stderr %q; want %d, %q", tt.args, r.code, r.stderr, tt.code, tt.err)
			continue
		}
		if tt.code != 0 {
			continue
		}
		first, rest, _ := strings.Cut(r.stdout, "\n")
		if !strings.HasPrefix(first, "% ") || rest != tt.want {
			t.Errorf("erlang-hosts %v:\n%s\nwant a %% comment line, then\n%s", tt.args, r.stdout, tt.want)
		}
	}
	out := filepath.Join(t.TempDir(), ".hosts.erlang")
	if r := runCmd("", "erlang-hosts", "--file", path, "--self", "pay-2", "-o", out); r.code != 0 {
		t.Fatalf("-o: %s", r.stderr)
	}
	if b, err := os.ReadFile(out); err != nil || !strings.HasSuffix(string(b), "\n'127.77.1.1'.\n'127.77.1.2'.\n") {
		t.Fatalf("-o wrote %q, %v", b, err)
	}
}
