package main

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
)

func TestProcs(t *testing.T) {
	for _, tc := range []struct {
		flag int
		env  string
		want int
	}{
		{0, "", 1},  // default: one thread, hand-offs stay on it
		{0, "4", 4}, // $GOMAXPROCS as Go users expect
		{0, "x", 1}, // unparsable: the default
		{0, "0", 1}, // not a count
		{2, "4", 2}, // the flag (or config file) wins
		{3, "", 3},
		{0, " 2", 1}, // not a plain count
		{0, "-1", 1},
		{8, "bad", 8},
	} {
		if got := procs(tc.flag, tc.env); got != tc.want {
			t.Errorf("procs(%d, %q) = %d, want %d", tc.flag, tc.env, got, tc.want)
		}
	}
}

func TestRunRefusesNegativeProcs(t *testing.T) {
	var out testWriter
	if code := run([]string{"--peers", "p", "--self", "s", "--private-key", "k", "--procs", "-1"}, &out); code != 2 {
		t.Fatalf("run with --procs -1: exit %d, want 2", code)
	}
	if want := "overlayd: --procs -1: want 1 or more\n"; string(out) != want {
		t.Errorf("stderr %q, want %q", out, want)
	}
}

type testWriter []byte

func (w *testWriter) Write(p []byte) (int, error) { *w = append(*w, p...); return len(p), nil }

// --mtu on the command line wins over mtu: in the --config file, which wins
// over the default (0: derived per peer by the daemon).
func TestMTUPrecedence(t *testing.T) {
	dir := t.TempDir()
	withMTU := filepath.Join(dir, "with.yaml")
	without := filepath.Join(dir, "without.yaml")
	if err := os.WriteFile(withMTU, []byte("mtu: 1380\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(without, []byte("log-level: debug\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args   []string
		config string
		want   int
	}{
		{nil, "", 0},
		{nil, without, 0},
		{nil, withMTU, 1380},
		{[]string{"--mtu", "1420"}, "", 1420},
		{[]string{"--mtu", "1420"}, withMTU, 1420},
		{[]string{"--mtu", "1420"}, without, 1420},
	} {
		fs := flag.NewFlagSet("overlayd", flag.ContinueOnError)
		var c fileConfig
		fs.IntVar(&c.MTU, "mtu", 0, "")
		if err := fs.Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		if tc.config != "" {
			if err := mergeConfigFile(&c, tc.config, fs); err != nil {
				t.Fatal(err)
			}
		}
		if c.MTU != tc.want {
			t.Errorf("args %v, config %q: MTU %d, want %d", tc.args, filepath.Base(tc.config), c.MTU, tc.want)
		}
	}
}

func TestRunRefusesBadMTU(t *testing.T) {
	for _, v := range []string{"100", "575", "65536", "-1"} {
		var out testWriter
		if code := run([]string{"--peers", "p", "--self", "s", "--private-key", "k", "--mtu", v}, &out); code != 2 {
			t.Errorf("run with --mtu %s: exit %d, want 2", v, code)
		}
		if want := "overlayd: --mtu " + v + ": want 576..65535\n"; string(out) != want {
			t.Errorf("stderr %q, want %q", out, want)
		}
	}
}

func TestRunRefusesUnknownCongestionControl(t *testing.T) {
	for _, v := range []string{"cubic", "BBR", "bbr"} {
		var out testWriter
		if code := run([]string{"--peers", "p", "--self", "s", "--private-key", "k", "--tcp-congestion", v}, &out); code != 2 {
			t.Errorf("run with --tcp-congestion %s: exit %d, want 2", v, code)
		}
		if want := "overlayd: --tcp-congestion \"" + v + "\": want bbrfloor or reno\n"; string(out) != want {
			t.Errorf("stderr %q, want %q", out, want)
		}
	}
}
