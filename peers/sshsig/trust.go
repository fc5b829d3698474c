package sshsig

import (
	"bytes"
	"fmt"
	"os"
	"strings"

	"golang.org/x/crypto/ssh"
)

// ParseTrust reads a trust file: the public keys whose signatures a host
// accepts, one per line, as in authorized_keys ("ssh-ed25519 AAAA... admin")
// or in ssh-keygen's allowed_signers ("admin@example ssh-ed25519 AAAA..."),
// so the file given to `ssh-keygen -Y verify -f` also works here. Blank
// lines and lines starting with # are skipped. A key whose
// namespaces="..." option does not list namespace is left out, as
// ssh-keygen would; options this package cannot honour (cert-authority,
// valid-before, valid-after) are refused rather than silently ignored.
// name is the file name used in errors ("trust.pub:3: ...").
func ParseTrust(name string, data []byte, namespace string) ([]ssh.PublicKey, error) {
	var keys []ssh.PublicKey
	for i, line := range bytes.Split(data, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		key, opts, err := parseTrustLine(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %v", name, i+1, err)
		}
		use := true
		for _, o := range opts {
			k, v, _ := strings.Cut(o, "=")
			switch strings.ToLower(k) {
			case "namespaces":
				use = false
				for _, ns := range strings.Split(strings.Trim(v, `"`), ",") {
					if ns == namespace || ns == "*" {
						use = true
					}
				}
			case "cert-authority", "valid-before", "valid-after":
				return nil, fmt.Errorf("%s:%d: option %s is not supported in a trust file", name, i+1, k)
			}
		}
		if use {
			keys = append(keys, key)
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s: no trusted public key for namespace %q", name, namespace)
	}
	return keys, nil
}

// parseTrustLine parses one authorized_keys line, or one allowed_signers
// line (whose first field is a principal list).
func parseTrustLine(line []byte) (ssh.PublicKey, []string, error) {
	key, _, opts, _, err := ssh.ParseAuthorizedKey(line)
	if err == nil {
		return key, opts, nil
	}
	if i := bytes.IndexAny(line, " \t"); i > 0 {
		if key, _, opts, _, err2 := ssh.ParseAuthorizedKey(bytes.TrimSpace(line[i:])); err2 == nil {
			return key, opts, nil
		}
	}
	return nil, nil, fmt.Errorf("not a public key line: %v", err)
}

// LoadTrust reads and parses the trust file at path.
func LoadTrust(path, namespace string) ([]ssh.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("trust file: %w", err)
	}
	return ParseTrust(path, data, namespace)
}
