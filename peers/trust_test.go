package peers

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/nodewire/nodewire/peers/sshsig"
)

func testSigner(t *testing.T) ssh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func signed(t *testing.T, s ssh.Signer, ns, file string) []byte {
	t.Helper()
	sig, err := sshsig.Sign([]byte(file), s, ns)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// TestCheckUpdate covers every refusal reason, and what is accepted.
func TestCheckUpdate(t *testing.T) {
	admin, stranger := testSigner(t), testSigner(t)
	trusted := []ssh.PublicKey{testSigner(t).PublicKey(), admin.PublicKey()}
	now := time.Date(2026, 12, 6, 2, 0, 0, 0, time.UTC)
	file := func(serial int, extra string) string {
		return keys.Replace(base + "serial: " + strconv.Itoa(serial) + "\n" + extra)
	}
	running := Version{Serial: 5, Sum: sha256.Sum256([]byte(file(5, "")))}
	tamper := func(f string) string { return strings.Replace(f, "10.77.2.0/24", "10.77.3.0/24", 1) }

	for _, tc := range []struct {
		name    string
		running Version
		file    string
		sig     []byte        // nil: signed by admin in namespace nodewire
		want    RefusalReason // "": accepted
		serial  uint64        // in the refusal
	}{
		{"newer", running, file(6, ""), nil, "", 0},
		{"much newer", running, file(900, ""), nil, "", 0},
		{"same file again", running, file(5, ""), nil, "", 0},
		{"first file, any serial", Version{}, file(0, ""), nil, "", 0},
		{"not yet expired", running, file(6, "expires: 2026-12-06T02:00:01Z\n"), nil, "", 0},

		{"unsigned", running, file(6, ""), []byte{}, ReasonUnsigned, 6},
		{"signature of blanks", running, file(6, ""), []byte(" \n"), ReasonUnsigned, 6},
		{"garbage signature", running, file(6, ""), []byte("-----BEGIN SSH SIGNATURE-----\nAAAA\n-----END SSH SIGNATURE-----\n"), ReasonBadSignature, 6},
		{"tampered", running, tamper(file(6, "")), signed(t, admin, sshsig.Namespace, file(6, "")), ReasonBadSignature, 6},
		{"serial raised after signing", running, file(7, ""), signed(t, admin, sshsig.Namespace, file(6, "")), ReasonBadSignature, 7},
		{"other namespace", running, file(6, ""), signed(t, admin, "git", file(6, "")), ReasonWrongNS, 6},
		{"unknown key", running, file(6, ""), signed(t, stranger, sshsig.Namespace, file(6, "")), ReasonUntrustedKey, 6},
		{"signed but invalid", running, file(6, "networks: {}\n"), nil, ReasonInvalid, 6},
		{"rollback", running, file(4, ""), nil, ReasonRollback, 4},
		{"rollback to no serial", running, keys.Replace(base), nil, ReasonRollback, 0},
		{"serial reused", running, tamper(file(5, "")), nil, ReasonSerialReused, 5},
		{"expired", running, file(6, "expires: 2026-12-06T02:00:00Z\n"), nil, ReasonExpired, 6},
		{"long expired", running, file(6, "expires: 2020-01-01T00:00:00+01:00\n"), nil, ReasonExpired, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sig := tc.sig
			if sig == nil {
				sig = signed(t, admin, sshsig.Namespace, tc.file)
			}
			v, err := CheckUpdate(trusted, tc.running, "peers.yaml", []byte(tc.file), sig, now)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("CheckUpdate refused: %v", err)
				}
				if v.Version.Sum != sha256.Sum256([]byte(tc.file)) || v.Version.Serial != v.File.Serial {
					t.Errorf("Version = %v, want the file's", v.Version)
				}
				if string(v.Key.Marshal()) != string(admin.PublicKey().Marshal()) {
					t.Errorf("Key = %s, want the admin's", ssh.FingerprintSHA256(v.Key))
				}
				return
			}
			var r *RefusedError
			if !errors.As(err, &r) {
				t.Fatalf("CheckUpdate = %v, %v; want a RefusedError (%s)", v, err, tc.want)
			}
			if r.Reason != tc.want || r.Serial != tc.serial || r.Running != tc.running.Serial || r.Source != "peers.yaml" {
				t.Errorf("refusal %+v, want reason %s serial %d running %d", r, tc.want, tc.serial, tc.running.Serial)
			}
			if v != nil {
				t.Errorf("refusal returned a file")
			}
			if msg := err.Error(); strings.Contains(msg, "\n") || !strings.HasPrefix(msg, "peers.yaml: refused ("+string(tc.want)+"): ") {
				t.Errorf("message %q: want one line starting with the source and reason", msg)
			}
		})
	}
}

func TestVersionString(t *testing.T) {
	v := Version{Serial: 42, Sum: sha256.Sum256([]byte("x"))}
	got, err := ParseVersion(v.String() + "\n")
	if err != nil || got != v {
		t.Errorf("ParseVersion(%q) = %v, %v", v.String(), got, err)
	}
	for _, bad := range []string{"", "serial 1", "serial x sha256 00", "serial 1 sha256 zz", "serial 1 sha256 " + strings.Repeat("0", 62)} {
		if _, err := ParseVersion(bad); err == nil {
			t.Errorf("ParseVersion(%q) succeeded", bad)
		}
	}
}

// BenchmarkCheckUpdate10000Peers is what --trust adds to a reload of a
// big file: compare with BenchmarkParse10000Peers (the same file, parsed
// only).
func BenchmarkCheckUpdate10000Peers(b *testing.B) {
	data := append([]byte("serial: 2\n"), bigFile(b)...)
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		b.Fatal(err)
	}
	sig, err := sshsig.Sign(data, s, sshsig.Namespace)
	if err != nil {
		b.Fatal(err)
	}
	trusted := []ssh.PublicKey{s.PublicKey()}
	now := time.Now()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		v, err := CheckUpdate(trusted, Version{Serial: 1}, "peers.yaml", data, sig, now)
		if err != nil {
			b.Fatal(err)
		}
		if len(v.File.Peers) != 10000 {
			b.Fatalf("%d peers", len(v.File.Peers))
		}
	}
}
