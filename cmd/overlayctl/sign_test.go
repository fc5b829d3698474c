package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/nodewire/nodewire/overlay/control"
)

// adminKey writes a new ed25519 OpenSSH private key (encrypted with
// passphrase unless it is empty) and a trust file naming it, and returns
// their paths and the key's fingerprint.
func adminKey(t *testing.T, dir, name, passphrase string) (key, trust, fingerprint string) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var block *pem.Block
	if passphrase == "" {
		block, err = ssh.MarshalPrivateKey(priv, name)
	} else {
		block, err = ssh.MarshalPrivateKeyWithPassphrase(priv, name, []byte(passphrase))
	}
	if err != nil {
		t.Fatal(err)
	}
	key = filepath.Join(dir, name)
	if err := os.WriteFile(key, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	trust = filepath.Join(dir, name+".trust")
	if err := os.WriteFile(trust, append([]byte(name+"@nodewire "), ssh.MarshalAuthorizedKey(sp)...), 0o644); err != nil {
		t.Fatal(err)
	}
	return key, trust, ssh.FingerprintSHA256(sp)
}

func TestSignVerify(t *testing.T) {
	dir := t.TempDir()
	key, trust, fp := adminKey(t, dir, "admin", "")
	_, otherTrust, _ := adminKey(t, dir, "other", "")
	locked, _, _ := adminKey(t, dir, "locked", "secret")
	file := writeFixture(t, "serial: 41\nexpires: 2099-01-01T00:00:00Z\n"+fixture)

	r := runCmd("", "sign", "--key", key, file)
	if r.code != 0 || r.stderr != "" || !strings.HasPrefix(r.stdout, "signed "+file+" (serial 41, expires 2099-01-01T00:00:00Z (in ") ||
		!strings.HasSuffix(r.stdout, "with ssh-ed25519 "+fp+": "+file+".sig\n") {
		t.Fatalf("sign: %d %q %q", r.code, r.stdout, r.stderr)
	}
	if fi, err := os.Stat(file + ".sig"); err != nil || fi.Mode().Perm() != 0o644 {
		t.Fatalf("FILE.sig: %v %v", fi, err)
	}
	r = runCmd("", "verify", "--trust", trust, file)
	if r.code != 0 || !strings.HasPrefix(r.stdout, file+": good signature by ssh-ed25519 "+fp+"\nserial: 41\nexpires: 2099-01-01T00:00:00Z (in ") {
		t.Fatalf("verify: %d %q %q", r.code, r.stdout, r.stderr)
	}

	// An edit invalidates the signature until the file is signed again.
	if r := runCmd("", "remove-peer", "--file", file, "--name", "pay-2"); r.code != 0 ||
		r.stderr != "overlayctl remove-peer: note: "+file+".sig signs the file as it was before this edit; hosts running overlayd --trust refuse the file until it is signed again (overlayctl sign --key ADMIN_KEY "+file+")\n" {
		t.Fatalf("remove-peer: %d %q", r.code, r.stderr)
	}
	r = runCmd("", "verify", "--trust", trust, file)
	if r.code != 1 || !strings.Contains(r.stderr, "overlayctl verify: "+file+": refused (bad_signature): signature does not match the data") {
		t.Errorf("verify after an edit: %d %q %q", r.code, r.stdout, r.stderr)
	}
	if r := runCmd("", "sign", "--key", key, file); r.code != 0 || !strings.Contains(r.stdout, "(serial 42, ") {
		t.Fatalf("sign after the edit (serial bumped to 42): %d %q %q", r.code, r.stdout, r.stderr)
	}
	if r := runCmd("", "verify", "--trust", trust, file); r.code != 0 || !strings.Contains(r.stdout, "serial: 42\n") {
		t.Errorf("verify after signing again: %d %q %q", r.code, r.stdout, r.stderr)
	}

	for _, tc := range []struct {
		name string
		args []string
		code int
		err  string
	}{
		{"unknown key", []string{"verify", "--trust", otherTrust, file}, 1, "refused (untrusted_key): signing key is not trusted: ssh-ed25519 " + fp},
		{"no signature", []string{"verify", "--trust", trust, "--sig", file + ".missing", file}, 1, "refused (unsigned)"},
		{"encrypted key", []string{"sign", "--key", locked, file}, 1, locked + " is passphrase-protected; overlayctl does not ask for passphrases: sign with ssh-keygen -Y sign -n nodewire -f " + locked + " FILE"},
		{"not a key", []string{"sign", "--key", trust, file}, 1, trust + ": not an OpenSSH private key"},
		{"no --key", []string{"sign", file}, 2, "--key is required"},
		{"no --trust", []string{"verify", file}, 2, "--trust is required"},
		{"no file", []string{"verify", "--trust", trust}, 2, "missing arguments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := runCmd("", tc.args...)
			if r.code != tc.code || !strings.Contains(r.stderr, tc.err) || strings.Count(r.stderr, "\n") != 1 {
				t.Errorf("overlayctl %q: %d %q, want %d and one line containing %q", tc.args, r.code, r.stderr, tc.code, tc.err)
			}
		})
	}

	// An invalid file is not signed.
	bad := writeFixture(t, fixture+"bogus: 1\n")
	r = runCmd("", "sign", "--key", key, bad)
	if r.code != 1 || !strings.Contains(r.stderr, "not signed: "+bad+" is invalid") {
		t.Errorf("sign of an invalid file: %d %q", r.code, r.stderr)
	}
	if _, err := os.Stat(bad + ".sig"); err == nil {
		t.Errorf("signature written for an invalid file")
	}
	// An expired file does not verify.
	old := writeFixture(t, "serial: 3\nexpires: 2020-01-01T00:00:00Z\n"+fixture)
	if r := runCmd("", "sign", "--key", key, old); r.code != 0 {
		t.Fatalf("sign: %s", r.stderr)
	}
	if r := runCmd("", "verify", "--trust", trust, old); r.code != 1 || !strings.Contains(r.stderr, "refused (expired): expired at 2020-01-01T00:00:00Z") {
		t.Errorf("verify of an expired file: %d %q", r.code, r.stderr)
	}
}

// TestSignVerifyWithSSHKeygen: what overlayctl signs, ssh-keygen verifies,
// and the other way round, with the commands the README gives operators.
func TestSignVerifyWithSSHKeygen(t *testing.T) {
	keygen, err := exec.LookPath("ssh-keygen")
	if err != nil {
		t.Skip("ssh-keygen not installed (bash e2e/deps.sh installs openssh-client)")
	}
	dir := t.TempDir()
	key, trust, _ := adminKey(t, dir, "admin", "")
	file := writeFixture(t, "serial: 1\n"+fixture)
	if r := runCmd("", "sign", "--key", key, file); r.code != 0 {
		t.Fatalf("sign: %s", r.stderr)
	}
	verify := exec.Command(keygen, "-Y", "verify", "-f", trust, "-I", "admin@nodewire", "-n", "nodewire", "-s", file+".sig")
	verify.Stdin, _ = os.Open(file)
	if out, err := verify.CombinedOutput(); err != nil {
		t.Errorf("ssh-keygen -Y verify refused overlayctl's signature: %v\n%s", err, out)
	}
	os.Remove(file + ".sig")
	if out, err := exec.Command(keygen, "-Y", "sign", "-n", "nodewire", "-f", key, file).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen -Y sign: %v\n%s", err, out)
	}
	if r := runCmd("", "verify", "--trust", trust, file); r.code != 0 {
		t.Errorf("overlayctl verify refused ssh-keygen's signature: %s", r.stderr)
	}
}

// TestStatusSerial: status names the running file's serial, when it has one.
func TestStatusSerial(t *testing.T) {
	now := time.Now()
	for _, tc := range []struct {
		serial uint64
		want   string
	}{
		{0, "peer file /etc/nodewire/peers.yaml, loaded 1m0s ago, 2 reloads\n"},
		{42, "peer file /etc/nodewire/peers.yaml serial 42, loaded 1m0s ago, 2 reloads\n"},
	} {
		var b bytes.Buffer
		writeStatus(&b, &control.Status{PeerFile: "/etc/nodewire/peers.yaml", PeerFileSerial: tc.serial, LoadedAt: now.Add(-time.Minute), Reloads: 2}, now)
		if !strings.Contains(b.String(), "\n"+tc.want) {
			t.Errorf("status with serial %d:\n%s\nwant a line %q", tc.serial, b.String(), tc.want)
		}
	}
}

func TestSignExpires(t *testing.T) {
	dir := t.TempDir()
	key, trust, _ := adminKey(t, dir, "admin", "")
	file := writeFixture(t, "# the fleet\nserial: 7\n"+fixture)

	r := runCmd("", "sign", "--key", key, "--expires", "30d", file)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "signed "+file+" (serial 8, expires ") || !strings.Contains(r.stdout, "(in 720h0m0s)") {
		t.Fatalf("sign --expires 30d: %d %q %q", r.code, r.stdout, r.stderr)
	}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(data), "# the fleet\nserial: 8\nexpires: ") || !strings.HasSuffix(string(data), fixture) {
		t.Errorf("file after sign --expires:\n%s", data)
	}
	if r := runCmd("", "verify", "--trust", trust, file); r.code != 0 || !strings.Contains(r.stdout, "serial: 8\nexpires: ") {
		t.Errorf("verify after sign --expires: %d %q %q", r.code, r.stdout, r.stderr)
	}
	r = runCmd("", "sign", "--key", key, "--expires", "2099-01-01T00:00:00+01:00", file)
	if r.code != 0 || !strings.HasPrefix(r.stdout, "signed "+file+" (serial 9, expires 2098-12-31T23:00:00Z (in ") {
		t.Errorf("sign --expires RFC 3339: %d %q %q", r.code, r.stdout, r.stderr)
	}
	for _, tc := range []struct{ arg, want string }{
		{"soon", `--expires: "soon" is not a duration (720h, 30d) or an RFC 3339 time (2027-01-31T00:00:00Z)`},
		{"2020-01-01T00:00:00Z", "--expires: 2020-01-01T00:00:00Z is not in the future"},
		{"-1h", "is not in the future"},
		{"xd", `--expires: "xd" is not a number of days`},
	} {
		before, _ := os.ReadFile(file)
		if r := runCmd("", "sign", "--key", key, "--expires", tc.arg, file); r.code != 1 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("sign --expires %s: %d %q, want %q", tc.arg, r.code, r.stderr, tc.want)
		}
		if after, _ := os.ReadFile(file); string(after) != string(before) {
			t.Errorf("sign --expires %s changed the file", tc.arg)
		}
	}
}

// TestVerifyBundle: verify takes a bundle as a store carries it (the file
// with its signature appended) when there is no FILE.sig.
func TestVerifyBundle(t *testing.T) {
	dir := t.TempDir()
	key, trust, fp := adminKey(t, dir, "admin", "")
	file := writeFixture(t, "serial: 3\n"+fixture)
	if r := runCmd("", "sign", "--key", key, file); r.code != 0 {
		t.Fatalf("sign: %d %q", r.code, r.stderr)
	}
	data, sig := mustReadFile(t, file), mustReadFile(t, file+".sig")
	bundle := filepath.Join(dir, "bundle")
	if err := os.WriteFile(bundle, append(data, sig...), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := runCmd("", "verify", "--trust", trust, bundle); r.code != 0 || !strings.HasPrefix(r.stdout, bundle+": good signature by ssh-ed25519 "+fp+"\nserial: 3\n") {
		t.Errorf("verify of a bundle: %d %q %q", r.code, r.stdout, r.stderr)
	}
	tampered := filepath.Join(dir, "tampered")
	if err := os.WriteFile(tampered, append(append(data, "# edited\n"...), sig...), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := runCmd("", "verify", "--trust", trust, tampered); r.code != 1 || !strings.Contains(r.stderr, "refused (bad_signature)") {
		t.Errorf("verify of a tampered bundle: %d %q %q", r.code, r.stdout, r.stderr)
	}
}

func mustReadFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
