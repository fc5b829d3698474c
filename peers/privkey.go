package peers

import (
	"crypto/ecdh"
	"fmt"
	"os"
	"strings"
)

// LoadPrivateKey reads a base64 private key as `wg genkey` writes it. It
// refuses a file that group or others may read: a key that leaked is an
// identity that leaked.
func LoadPrivateKey(path string) (Key, error) {
	var k Key
	st, err := os.Stat(path)
	if err != nil {
		return k, fmt.Errorf("private key: %w", err)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return k, fmt.Errorf("private key %s: mode %04o lets others read it; run chmod 600 %s", path, perm, path)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return k, fmt.Errorf("private key: %w", err)
	}
	k, err = ParseKey(strings.TrimSpace(string(data)))
	if err != nil {
		return k, fmt.Errorf("private key %s: %w", path, err)
	}
	return k, nil
}

// PublicKey derives the public key of a private key, as `wg pubkey` does
// (X25519 clamps the scalar itself). It uses the standard library's
// crypto/ecdh, so the control client can check keys without WireGuard.
func PublicKey(private Key) (Key, error) {
	var pub Key
	k, err := ecdh.X25519().NewPrivateKey(private[:])
	if err != nil {
		return pub, fmt.Errorf("derive public key: %w", err)
	}
	copy(pub[:], k.PublicKey().Bytes())
	return pub, nil
}
