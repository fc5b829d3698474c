package main

import (
	"bytes"
	"encoding/base64"
	"os/exec"
	"strings"
	"testing"
)

func TestPubkeyVectors(t *testing.T) {
	for _, tc := range []struct{ name, priv, pub string }{
		// RFC 7748 section 6.1: Alice's and Bob's private and public keys.
		{"rfc7748 alice", "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=", "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo="},
		{"rfc7748 bob", "XasIfmJKikt54X+Lg4AO5m87sSkmGLb9HC+LJ/+I4Os=", "3p7bfXt9wbTTW2HC7OQ1Nz+DQ8hbeGdNrfx+FG+IK08="},
		// An unclamped key, as wg pubkey 1.0.20210914 answers it: the scalar
		// is clamped before the multiplication.
		{"unclamped", "//////////////////////////////////////////8=", "hHwNLDdSNPNl5mCVUYejc1oPdhPRYJ06ak2MU66qWiI="},
		// Whitespace around the key, as from a file or echo, is ignored.
		{"whitespace", "  \tXasIfmJKikt54X+Lg4AO5m87sSkmGLb9HC+LJ/+I4Os=\r\n\n", "3p7bfXt9wbTTW2HC7OQ1Nz+DQ8hbeGdNrfx+FG+IK08="},
	} {
		r := runCmd(tc.priv, "pubkey")
		if r.code != exitOK || r.stdout != tc.pub+"\n" || r.stderr != "" {
			t.Errorf("%s: code %d, stdout %q, stderr %q; want %q", tc.name, r.code, r.stdout, r.stderr, tc.pub)
		}
	}
}

func TestPubkeyErrors(t *testing.T) {
	for _, in := range []string{"", "abc", "not base64 at all!!", base64.StdEncoding.EncodeToString(make([]byte, 31)), strings.Repeat("A", 5000)} {
		r := runCmd(in, "pubkey")
		if r.code != exitFailed || r.stdout != "" || !strings.HasPrefix(r.stderr, "overlayctl pubkey: stdin: not a private key") || strings.Count(r.stderr, "\n") != 1 {
			t.Errorf("pubkey < %.20q: code %d, stdout %q, stderr %q", in, r.code, r.stdout, r.stderr)
		}
	}
}

func TestGenkey(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 20; i++ {
		r := runCmd("", "genkey")
		if r.code != exitOK || r.stderr != "" || !strings.HasSuffix(r.stdout, "\n") {
			t.Fatalf("genkey: code %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
		priv := strings.TrimSuffix(r.stdout, "\n")
		k, err := base64.StdEncoding.DecodeString(priv)
		if err != nil || len(k) != 32 {
			t.Fatalf("genkey printed %q: %v", priv, err)
		}
		if k[0]&7 != 0 || k[31]&128 != 0 || k[31]&64 == 0 {
			t.Errorf("genkey printed an unclamped key %x", k)
		}
		if seen[priv] {
			t.Errorf("genkey repeated %s", priv)
		}
		seen[priv] = true
		if p := runCmd(r.stdout, "pubkey"); p.code != exitOK {
			t.Errorf("pubkey refuses genkey's key: %q", p.stderr)
		}
	}
}

func TestGenPrivateKeyClamps(t *testing.T) {
	k, err := genPrivateKey(bytes.NewReader(bytes.Repeat([]byte{0xff}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Repeat([]byte{0xff}, 32)
	want[0], want[31] = 0xf8, 0x7f
	if !bytes.Equal(k[:], want) {
		t.Errorf("clamped all-ones: %x, want %x", k, want)
	}
	k, _ = genPrivateKey(bytes.NewReader(make([]byte, 32)))
	if k[31] != 0x40 || k[0] != 0 {
		t.Errorf("clamped zeros: %x", k)
	}
	if _, err := genPrivateKey(bytes.NewReader(make([]byte, 10))); err == nil {
		t.Error("short random source: no error")
	}
}

// TestAgainstWG checks both directions against wireguard-tools when it is
// installed.
func TestAgainstWG(t *testing.T) {
	wg, err := exec.LookPath("wg")
	if err != nil {
		t.Skip("wg not installed")
	}
	for i := 0; i < 5; i++ {
		ours := runCmd("", "genkey").stdout
		cmd := exec.Command(wg, "pubkey")
		cmd.Stdin = strings.NewReader(ours)
		theirs, err := cmd.Output()
		if err != nil {
			t.Fatalf("wg pubkey: %v", err)
		}
		if got := runCmd(ours, "pubkey").stdout; got != string(theirs) {
			t.Errorf("pubkey of %s: ours %q, wg's %q", ours, got, theirs)
		}
		theirKey, err := exec.Command(wg, "genkey").Output()
		if err != nil {
			t.Fatalf("wg genkey: %v", err)
		}
		cmd = exec.Command(wg, "pubkey")
		cmd.Stdin = bytes.NewReader(theirKey)
		theirs, err = cmd.Output()
		if err != nil {
			t.Fatalf("wg pubkey: %v", err)
		}
		if got := runCmd(string(theirKey), "pubkey").stdout; got != string(theirs) {
			t.Errorf("pubkey of wg's %s: ours %q, wg's %q", theirKey, got, theirs)
		}
	}
}
