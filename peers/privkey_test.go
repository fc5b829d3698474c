package peers

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadPrivateKey(t *testing.T) {
	dir := t.TempDir()
	const priv = "gHxUR93mROBEPOUF7azzxGvqCsxptU4HDl53EvIDSWM=" // a `wg genkey` output
	tests := []struct {
		name    string
		content string
		mode    os.FileMode
		errHas  string
	}{
		{"good", priv + "\n", 0o600, ""},
		{"owner read only", priv, 0o400, ""},
		{"group readable", priv, 0o640, "chmod 600"},
		{"world readable", priv, 0o644, "lets others read it"},
		{"not base64", "not a key", 0o600, "private key"},
		{"short", "AAAA", 0o600, "private key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-"))
			if err := os.WriteFile(path, []byte(tt.content), tt.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			k, err := LoadPrivateKey(path)
			if tt.errHas == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if k.String() != priv {
					t.Fatalf("key %s, want %s", k, priv)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.errHas) {
				t.Fatalf("error %v, want one containing %q", err, tt.errHas)
			}
		})
	}
	if _, err := LoadPrivateKey(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("missing file: no error")
	}
}

func TestPublicKeyMatchesWG(t *testing.T) {
	// Pair printed by `wg genkey | tee /dev/stderr | wg pubkey`.
	const priv, pub = "gHxUR93mROBEPOUF7azzxGvqCsxptU4HDl53EvIDSWM=", "PC47v7lOMJUMJjDA+Xn1V2QIT6eNV7rL7IRihBgjBDQ="
	path := filepath.Join(t.TempDir(), "k")
	if err := os.WriteFile(path, []byte(priv), 0o600); err != nil {
		t.Fatal(err)
	}
	k, err := LoadPrivateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	p, err := PublicKey(k)
	if err != nil {
		t.Fatal(err)
	}
	if p.String() != pub {
		t.Fatalf("public key %s, want %s", p, pub)
	}
}
