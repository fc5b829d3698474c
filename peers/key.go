package peers

import (
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
)

// ParseKey decodes a base64 key as `wg pubkey` prints it. The all-zero key
// is refused: WireGuard rejects it, and it usually means a placeholder was
// left in the file.
func ParseKey(s string) (Key, error) {
	var k Key
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return k, fmt.Errorf("%q is not base64 (want 44 characters as `wg pubkey` prints)", s)
	}
	if len(b) != len(k) {
		return k, fmt.Errorf("%q is %d bytes, want 32", s, len(b))
	}
	copy(k[:], b)
	if k.IsZero() {
		return k, errors.New("the all-zero key is not a valid key")
	}
	return k, nil
}

// IsZero reports whether k is unset.
func (k Key) IsZero() bool { return k == Key{} }

// String is the base64 form, as in peer files and `wg`.
func (k Key) String() string { return base64.StdEncoding.EncodeToString(k[:]) }

// Hex is the lowercase hex form that WireGuard's UAPI expects.
func (k Key) Hex() string { return hex.EncodeToString(k[:]) }

// MarshalText encodes k in base64, so keys read naturally in JSON status output.
func (k Key) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText is the inverse of MarshalText.
func (k *Key) UnmarshalText(b []byte) error {
	v, err := ParseKey(string(b))
	if err != nil {
		return err
	}
	*k = v
	return nil
}
