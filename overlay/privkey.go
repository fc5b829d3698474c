package overlay

import (
	"fmt"
	"os"
	"strings"

	"github.com/nodewire/nodewire/peers"
	"golang.org/x/crypto/curve25519"
)

// LoadPrivateKey reads a base64 private key as `wg genkey` writes it. It
// refuses a file that group or others may read: a key that leaked is an
// identity that leaked.
func LoadPrivateKey(path string) (peers.Key, error) {
	var k peers.Key
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
	k, err = peers.ParseKey(strings.TrimSpace(string(data)))
	if err != nil {
		return k, fmt.Errorf("private key %s: %w", path, err)
	}
	return k, nil
}

// PublicKey derives the public key of a private key.
func PublicKey(private peers.Key) (peers.Key, error) {
	var pub peers.Key
	out, err := curve25519.X25519(private[:], curve25519.Basepoint)
	if err != nil {
		return pub, fmt.Errorf("derive public key: %w", err)
	}
	copy(pub[:], out)
	return pub, nil
}
