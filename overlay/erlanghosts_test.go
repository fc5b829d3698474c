package overlay

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// overlayd keeps --erlang-hosts current: written at start, rewritten on
// every reload as the policy changes; by address, or by name with
// --inetrc.
func TestDaemonErlangHosts(t *testing.T) {
	a, b, c := newTestHost(t), newTestHost(t), newTestHost(t)
	dir := t.TempDir()
	write := func(rules string) {
		t.Helper()
		text := fmt.Sprintf(`overlay: {prefix: 10.91.0.0/16, faces: 127.91.0.0/16}
networks:
  lab: {prefix: 10.91.1.0/24}
  far: {prefix: 10.91.2.0/24}
%speers:
  a: {network: lab, public_key: %s, address: 10.91.1.1, endpoint: 127.0.0.1:9}
  b: {network: lab, public_key: %s, address: 10.91.1.2, endpoint: 127.0.0.1:9}
  c: {network: far, public_key: %s, address: 10.91.2.1, endpoint: 127.0.0.1:9}
`, rules, a.pub, b.pub, c.pub)
		if err := os.WriteFile(filepath.Join(dir, "peers.yaml"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tt := range []struct {
		name   string
		inetrc bool
		start  string // the hosts after the comment line, with no rule
		toC    string // once lab may reach far's epmd
		fromC  string // once only far may reach lab
	}{
		{"by address", false,
			"'127.91.1.1'.\n'127.91.1.2'.\n",
			"'127.91.1.1'.\n'127.91.1.2'.\n'127.91.2.1'.\n",
			"'127.91.1.1'.\n'127.91.1.2'.\n"},
		{"by name with --inetrc", true,
			"'a.nodewire'.\n'b.nodewire'.\n",
			"'a.nodewire'.\n'b.nodewire'.\n'c.nodewire'.\n",
			"'a.nodewire'.\n'b.nodewire'.\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := testConfig(t, dir, a, b, "nwtest-hosts")
			write("") // over testConfig's file
			cfg.ErlangHosts = filepath.Join(t.TempDir(), ".hosts.erlang")
			if tt.inetrc {
				cfg.Inetrc = filepath.Join(t.TempDir(), "inetrc")
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			d, err := New(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			check := func(when, want string) {
				t.Helper()
				text := mustRead(t, cfg.ErlangHosts)
				if !strings.HasPrefix(text, "% ") || !strings.HasSuffix(text, "\n"+want) {
					t.Errorf("%s: .hosts.erlang\n%s\nwant a %% comment line, then\n%s", when, text, want)
				}
			}
			check("at start", tt.start)
			for _, step := range []struct{ rules, want string }{
				{"interconnect:\n  - {from: lab, to: far, ports: [erlang]}\n", tt.toC},
				{"interconnect:\n  - {from: far, to: lab, ports: [erlang]}\n", tt.fromC},
			} {
				write(step.rules)
				if err := d.Reload(ctx); err != nil {
					t.Fatal(err)
				}
				check("after reload with "+step.rules, step.want)
			}
		})
	}
}
