package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Keys of the fixture's peers (public keys of RFC 7748's test scalars and
// of the example file).
const (
	keyPay1 = "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo="
	keyPay2 = "3p7bfXt9wbTTW2HC7OQ1Nz+DQ8hbeGdNrfx+FG+IK08="
	keyMon1 = "D6tQ9iI2HkwXf32P8Z7VzO2JIuNWuP4uDuWjBI2yfHY="
	keyNew  = "hHwNLDdSNPNl5mCVUYejc1oPdhPRYJ06ak2MU66qWiI="
)

// fixture is a valid, commented peer file.
const fixture = `# Test overlay.

overlay:
  prefix: 10.77.0.0/16
  faces: 127.77.0.0/16
  port: 51820

networks:
  payments:   {prefix: 10.77.1.0/24}
  monitoring: {prefix: 10.77.2.0/24}

# Nothing crosses networks unless a rule says so.
interconnect:
  - from: monitoring
    to: payments
    ports: [erlang]

tests:
  - {from: mon-1, to: pay-1, port: 4369, expect: allow}

peers:
  pay-1:
    network: payments
    public_key: ` + keyPay1 + `
    address: 10.77.1.1
    endpoint: pay-1.example.net:51820
    keepalive: 25s

  # behind NAT
  pay-2:
    network: payments
    public_key: ` + keyPay2 + `
    address: 10.77.1.2

  mon-1:
    network: monitoring
    public_key: ` + keyMon1 + `
    address: 10.77.2.1
    expose: [9100-9199]
`

// result is what one run of a command did.
type result struct {
	code           int
	stdout, stderr string
}

// runCmd runs overlayctl in-process with stdin.
func runCmd(stdin string, args ...string) result {
	var out, errb bytes.Buffer
	code := run(args, &env{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb})
	return result{code, out.String(), errb.String()}
}

// writeFixture writes data as peers.yaml in a new temporary directory.
func writeFixture(t *testing.T, data string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "peers.yaml")
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestTopLevel(t *testing.T) {
	for _, tc := range []struct {
		args       []string
		code       int
		out, err   string // substrings; "" checks nothing
		emptyOther bool
	}{
		{nil, exitUsage, "", "usage: overlayctl COMMAND", true},
		{[]string{"-h"}, exitOK, "usage: overlayctl COMMAND", "", true},
		{[]string{"--help"}, exitOK, "  add-peer     add a peer to the peer file\n", "", true},
		{[]string{"help"}, exitOK, "  status ", "", true},
		{[]string{"help", "show"}, exitOK, "usage: overlayctl show --file F NAME", "", true},
		{[]string{"frobnicate"}, exitUsage, "", "overlayctl: unknown command \"frobnicate\" (see overlayctl -h)\n", true},
	} {
		r := runCmd("", tc.args...)
		if r.code != tc.code || !strings.Contains(r.stdout, tc.out) || !strings.Contains(r.stderr, tc.err) {
			t.Errorf("overlayctl %q: code %d\nstdout %q\nstderr %q", tc.args, r.code, r.stdout, r.stderr)
		}
		if tc.emptyOther && (tc.out != "" && r.stderr != "" || tc.err != "" && r.stdout != "") {
			t.Errorf("overlayctl %q: output on both streams:\nstdout %q\nstderr %q", tc.args, r.stdout, r.stderr)
		}
	}
	// Every command is listed with its line.
	r := runCmd("", "-h")
	for _, c := range commands() {
		if !strings.Contains(r.stdout, "  "+c.name+" ") || !strings.Contains(r.stdout, c.summary) {
			t.Errorf("-h does not list %s", c.name)
		}
	}
}

func TestHelpEveryCommand(t *testing.T) {
	for _, c := range commands() {
		for _, h := range []string{"-h", "--help"} {
			r := runCmd("", c.name, h)
			if r.code != exitOK || !strings.HasPrefix(r.stdout, "usage: overlayctl "+c.name) || r.stderr != "" {
				t.Errorf("%s %s: code %d\nstdout %q\nstderr %q", c.name, h, r.code, r.stdout, r.stderr)
			}
		}
	}
}

// TestUsageErrors: unknown flags, stray arguments and missing required
// flags exit 2 with one line naming the command.
func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{[]string{"genkey", "--bits", "3"}, "overlayctl genkey: flag provided but not defined: -bits (see overlayctl genkey -h)\n"},
		{[]string{"genkey", "extra"}, "overlayctl genkey: unexpected argument \"extra\" (see overlayctl genkey -h)\n"},
		{[]string{"pubkey", "x"}, "overlayctl pubkey: unexpected argument \"x\""},
		{[]string{"check"}, "overlayctl check: --file is required (see overlayctl check -h)\n"},
		{[]string{"check", "--file"}, "overlayctl check: flag needs an argument: -file"},
		{[]string{"add-network", "--file", "f"}, "overlayctl add-network: --name is required"},
		{[]string{"add-peer", "--file", "f", "--name", "a", "--network", "n"}, "overlayctl add-peer: --public-key is required"},
		{[]string{"add-peer", "--file", "f", "--name", "a", "--network", "n", "--public-key", "k", "--keepalive", "soon"}, "overlayctl add-peer: invalid value \"soon\" for flag -keepalive"},
		{[]string{"remove-peer", "--name", "a"}, "overlayctl remove-peer: --file is required"},
		{[]string{"explain", "--file", "f", "a"}, "overlayctl explain: missing arguments"},
		{[]string{"explain", "--file", "f", "a", "b", "1", "2"}, "overlayctl explain: unexpected argument \"2\""},
		{[]string{"show", "--file", "f"}, "overlayctl show: missing arguments"},
		{[]string{"init", "--file", "f"}, "overlayctl init: --prefix is required"},
		// The daemon commands parse the same way as the others.
		{[]string{"reload", "x"}, "overlayctl reload: unexpected argument \"x\" (see overlayctl reload -h)\n"},
		{[]string{"status", "--bogus"}, "overlayctl status: flag provided but not defined: -bogus (see overlayctl status -h)\n"},
		{[]string{"ping", "--control", "s"}, "overlayctl ping: missing arguments (see overlayctl ping -h)\n"},
	} {
		r := runCmd("", tc.args...)
		if r.code != exitUsage || !strings.HasPrefix(r.stderr, tc.err) || strings.Count(r.stderr, "\n") != 1 || r.stdout != "" {
			t.Errorf("overlayctl %q: code %d\nstdout %q\nstderr %q\nwant stderr %q", tc.args, r.code, r.stdout, r.stderr, tc.err)
		}
	}
}

func TestSplitList(t *testing.T) {
	got := splitList(" erlang, 9100-9199,,4369 ")
	if strings.Join(got, "|") != "erlang|9100-9199|4369" {
		t.Errorf("splitList: %q", got)
	}
	if splitList("") != nil {
		t.Error("splitList of empty is not nil")
	}
}
