package main

import "testing"

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
