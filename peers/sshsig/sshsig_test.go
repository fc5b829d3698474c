package sshsig

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"
)

var testData = []byte("overlay:\n  prefix: 10.77.0.0/16\nserial: 7\n")

func newSigner(t testing.TB, typ string) ssh.Signer {
	t.Helper()
	var priv any
	var err error
	switch typ {
	case "ed25519":
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case "ecdsa":
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "rsa":
		priv, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSignVerify(t *testing.T) {
	for _, typ := range []string{"ed25519", "ecdsa", "rsa"} {
		t.Run(typ, func(t *testing.T) {
			s := newSigner(t, typ)
			other := newSigner(t, "ed25519")
			sig, err := Sign(testData, s, Namespace)
			if err != nil {
				t.Fatal(err)
			}
			key, err := Verify(testData, sig, []ssh.PublicKey{other.PublicKey(), s.PublicKey()}, Namespace)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if !bytes.Equal(key.Marshal(), s.PublicKey().Marshal()) {
				t.Errorf("Verify named key %s, want %s", ssh.FingerprintSHA256(key), ssh.FingerprintSHA256(s.PublicKey()))
			}
		})
	}
}

func TestVerifyRefuses(t *testing.T) {
	s := newSigner(t, "ed25519")
	other := newSigner(t, "ed25519")
	sig, err := Sign(testData, s, Namespace)
	if err != nil {
		t.Fatal(err)
	}
	otherNS, err := Sign(testData, s, "git")
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Replace(testData, []byte("serial: 7"), []byte("serial: 8"), 1)
	// flip one bit of the signature bytes inside the blob (its last bytes)
	blob, _ := dearmor(sig)
	blob[len(blob)-3] ^= 1
	badSig := armor(blob)
	trusted := []ssh.PublicKey{s.PublicKey()}
	for _, tc := range []struct {
		name    string
		data    []byte
		sig     []byte
		trusted []ssh.PublicKey
		want    error
	}{
		{"tampered data", tampered, sig, trusted, ErrBadSignature},
		{"tampered signature", testData, badSig, trusted, ErrBadSignature},
		{"wrong namespace", testData, otherNS, trusted, ErrNamespace},
		{"unknown key", testData, sig, []ssh.PublicKey{other.PublicKey()}, ErrUntrusted},
		{"no trusted keys", testData, sig, nil, ErrUntrusted},
		{"empty signature", testData, nil, trusted, ErrMalformed},
		{"not armored", testData, []byte("hello\n"), trusted, ErrMalformed},
		{"truncated", testData, sig[:len(sig)/2], trusted, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, err := Verify(tc.data, tc.sig, tc.trusted, Namespace)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, %v; want error %v", key, err, tc.want)
			}
			if key != nil {
				t.Errorf("Verify returned a key with error %v", err)
			}
		})
	}
}

func TestBundle(t *testing.T) {
	s := newSigner(t, "ed25519")
	for _, data := range [][]byte{
		testData,
		[]byte("no final newline"),
		[]byte("# a comment naming " + beginArmor + "\nserial: 1\n"),
		{},
	} {
		sig, err := Sign(data, s, Namespace)
		if err != nil {
			t.Fatal(err)
		}
		file, gotSig, err := SplitBundle(Bundle(data, sig))
		if err != nil {
			t.Fatalf("SplitBundle(%q): %v", data, err)
		}
		if !bytes.Equal(file, data) || !bytes.Equal(gotSig, sig) {
			t.Errorf("SplitBundle(Bundle(%q)) = %q, %q", data, file, gotSig)
		}
		if _, err := Verify(file, gotSig, []ssh.PublicKey{s.PublicKey()}, Namespace); err != nil {
			t.Errorf("Verify after split: %v", err)
		}
	}
	if _, _, err := SplitBundle(testData); !errors.Is(err, ErrMalformed) {
		t.Errorf("SplitBundle(unsigned) = %v, want ErrMalformed", err)
	}
}

func TestParseTrust(t *testing.T) {
	a, b, c := newSigner(t, "ed25519"), newSigner(t, "ecdsa"), newSigner(t, "ed25519")
	line := func(s ssh.Signer) string { return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.PublicKey()))) }
	good := "# admins\n\n" +
		line(a) + " alice@laptop\n" +
		"bob@example.org " + line(b) + "\n" +
		"carol@example.org\tnamespaces=\"git,file\" " + line(c) + "\n"
	keys, err := ParseTrust("trust", []byte(good), Namespace)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || !bytes.Equal(keys[0].Marshal(), a.PublicKey().Marshal()) || !bytes.Equal(keys[1].Marshal(), b.PublicKey().Marshal()) {
		t.Errorf("ParseTrust kept %d keys, want alice's and bob's (carol's is for other namespaces)", len(keys))
	}
	for _, tc := range []struct{ name, in, want string }{
		{"garbage", line(a) + "\nnot a key\n", "trust:2: not a public key line"},
		{"cert-authority", "cert-authority " + line(a) + "\n", "trust:1: option cert-authority is not supported"},
		{"valid-before", `x@y valid-before="20300101" ` + line(a) + "\n", "trust:1: option valid-before is not supported"},
		{"empty", "# nobody\n", "trust: no trusted public key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseTrust("trust", []byte(tc.in), Namespace)
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("ParseTrust = %v, want %q...", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
		})
	}
}

// sshKeygen finds OpenSSH's ssh-keygen (package openssh-client, which
// e2e/deps.sh installs).
func sshKeygen(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("ssh-keygen")
	if err != nil {
		t.Skip("ssh-keygen not installed (bash e2e/deps.sh installs openssh-client)")
	}
	return p
}

func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestInteropSSHKeygen checks both directions against the real ssh-keygen:
// it signs and we verify; we sign and it verifies; and it refuses what we
// refuse.
func TestInteropSSHKeygen(t *testing.T) {
	keygen := sshKeygen(t)
	for _, typ := range []string{"ed25519", "ecdsa", "rsa"} {
		t.Run(typ, func(t *testing.T) {
			dir := t.TempDir()
			keyPath := filepath.Join(dir, "admin")
			run(t, keygen, "-q", "-t", typ, "-N", "", "-C", "admin", "-f", keyPath)
			pemBytes, err := os.ReadFile(keyPath)
			if err != nil {
				t.Fatal(err)
			}
			signer, err := ssh.ParsePrivateKey(pemBytes)
			if err != nil {
				t.Fatal(err)
			}
			pubLine, err := os.ReadFile(keyPath + ".pub")
			if err != nil {
				t.Fatal(err)
			}
			allowed := filepath.Join(dir, "allowed_signers")
			if err := os.WriteFile(allowed, append([]byte("admin@nodewire "), pubLine...), 0o644); err != nil {
				t.Fatal(err)
			}
			trusted, err := LoadTrust(allowed, Namespace)
			if err != nil {
				t.Fatal(err)
			}
			file := filepath.Join(dir, "peers.yaml")
			if err := os.WriteFile(file, testData, 0o644); err != nil {
				t.Fatal(err)
			}

			// ssh-keygen signs, we verify.
			run(t, keygen, "-Y", "sign", "-n", Namespace, "-f", keyPath, file)
			theirSig, err := os.ReadFile(file + SigExt)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Verify(testData, theirSig, trusted, Namespace); err != nil {
				t.Errorf("Verify(ssh-keygen's signature): %v", err)
			}
			if _, err := Verify(append(testData, '\n'), theirSig, trusted, Namespace); !errors.Is(err, ErrBadSignature) {
				t.Errorf("Verify(tampered data, ssh-keygen's signature) = %v, want ErrBadSignature", err)
			}
			theirOtherNS := filepath.Join(dir, "other")
			if err := os.WriteFile(theirOtherNS, testData, 0o644); err != nil {
				t.Fatal(err)
			}
			run(t, keygen, "-Y", "sign", "-n", "file", "-f", keyPath, theirOtherNS)
			otherSig, err := os.ReadFile(theirOtherNS + SigExt)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Verify(testData, otherSig, trusted, Namespace); !errors.Is(err, ErrNamespace) {
				t.Errorf("Verify(ssh-keygen's signature in namespace file) = %v, want ErrNamespace", err)
			}

			// We sign, ssh-keygen verifies.
			ourSig, err := Sign(testData, signer, Namespace)
			if err != nil {
				t.Fatal(err)
			}
			if typ == "ed25519" && !bytes.Equal(ourSig, theirSig) {
				// Ed25519 signatures are deterministic: same key, same
				// data, same bytes, armor included.
				t.Errorf("our signature differs from ssh-keygen's:\nours:\n%s\ntheirs:\n%s", ourSig, theirSig)
			}
			if err := os.WriteFile(file+SigExt, ourSig, 0o644); err != nil {
				t.Fatal(err)
			}
			verify := func(ns, data string) error {
				cmd := exec.Command(keygen, "-Y", "verify", "-f", allowed, "-I", "admin@nodewire", "-n", ns, "-s", file+SigExt)
				cmd.Stdin = strings.NewReader(data)
				out, err := cmd.CombinedOutput()
				if err != nil {
					return errors.New(strings.TrimSpace(string(out)))
				}
				return nil
			}
			if err := verify(Namespace, string(testData)); err != nil {
				t.Errorf("ssh-keygen -Y verify refused our signature: %v", err)
			}
			if err := verify(Namespace, string(testData)+"x"); err == nil {
				t.Errorf("ssh-keygen -Y verify accepted our signature over tampered data")
			}
			if err := verify("file", string(testData)); err == nil {
				t.Errorf("ssh-keygen -Y verify accepted our signature in another namespace")
			}
		})
	}
}

// BenchmarkVerify1MB: what a signature check costs per MiB of peer file
// (one of 10,000 peers is about 1.7 MB): SHA-512 of the file and one
// ed25519 verification.
func BenchmarkVerify1MB(b *testing.B) {
	data := bytes.Repeat([]byte("  p-1-1: {network: net-1, address: 10.77.1.1}\n"), 1<<20/48)
	s := newSigner(b, "ed25519")
	sig, err := Sign(data, s, Namespace)
	if err != nil {
		b.Fatal(err)
	}
	trusted := []ssh.PublicKey{s.PublicKey()}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Verify(data, sig, trusted, Namespace); err != nil {
			b.Fatal(err)
		}
	}
}
