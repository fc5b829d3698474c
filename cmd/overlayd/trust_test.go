package main

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
)

// TestTrustConfig: trust: and trust-state: in the config file reach the
// daemon's config, and the flags win over them.
func TestTrustConfig(t *testing.T) {
	path := filepath.Join(t.TempDir(), "overlayd.yaml")
	if err := os.WriteFile(path, []byte("trust: /etc/nodewire/admins\ntrust-state: /var/lib/nodewire/applied\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var c fileConfig
	if err := mergeConfigFile(&c, path, flag.NewFlagSet("t", flag.ContinueOnError)); err != nil {
		t.Fatal(err)
	}
	if c.Trust != "/etc/nodewire/admins" || c.TrustState != "/var/lib/nodewire/applied" {
		t.Errorf("trust %q, trust-state %q", c.Trust, c.TrustState)
	}
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	c = fileConfig{}
	fs.StringVar(&c.Trust, "trust", "", "")
	if err := fs.Parse([]string{"--trust", "/tmp/other"}); err != nil {
		t.Fatal(err)
	}
	if err := mergeConfigFile(&c, path, fs); err != nil {
		t.Fatal(err)
	}
	if c.Trust != "/tmp/other" || c.TrustState != "/var/lib/nodewire/applied" {
		t.Errorf("with --trust: trust %q, trust-state %q; want the flag's and the file's", c.Trust, c.TrustState)
	}
}
