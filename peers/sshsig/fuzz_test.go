package sshsig

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/crypto/ssh"
)

// FuzzVerify feeds arbitrary bytes to the signature and bundle parsers:
// they must never panic, and never accept a signature the trusted key did
// not make over the data.
func FuzzVerify(f *testing.F) {
	s := newSigner(f, "ed25519")
	sig, err := Sign(testData, s, Namespace)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sig)
	f.Add(Bundle(testData, sig))
	f.Add([]byte(beginArmor + endArmor))
	f.Add([]byte(beginArmor + "\n" + endArmor))
	seeds, _ := filepath.Glob("testdata/*.sig")
	for _, p := range seeds {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	trusted := []ssh.PublicKey{s.PublicKey()}
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := Verify(testData, b, trusted, Namespace); err == nil && !bytes.Equal(b, sig) {
			// Another encoding of the same signature (whitespace, line
			// length) is fine; a different blob is not.
			got, _ := dearmor(b)
			want, _ := dearmor(sig)
			if !bytes.Equal(got, want) {
				t.Errorf("Verify accepted a different signature blob:\n%s", b)
			}
		}
		if file, sg, err := SplitBundle(b); err == nil {
			if !bytes.Equal(Bundle(file, sg), b) {
				t.Errorf("Bundle(SplitBundle(b)) != b")
			}
		}
		_, _ = ParseTrust("fuzz", b, Namespace)
	})
}
