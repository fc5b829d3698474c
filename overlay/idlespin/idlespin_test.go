package idlespin

import (
	"testing"
	"time"
)

// TestSpinsAfterKickOnly checks that the spinners sleep until a Kick, spin
// for the window after it, sleep again, and that Close stops them.
func TestSpinsAfterKickOnly(t *testing.T) {
	s := New(2, 30*time.Millisecond)
	defer s.Close()
	poll := func(what string, ok func() bool) {
		t.Helper()
		// Idle-priority threads on a loaded machine may wait for a CPU.
		deadline := time.Now().Add(30 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d spinners asleep, %d wake-ups", what, s.asleep.Load(), s.woken.Load())
			}
			time.Sleep(time.Millisecond)
		}
	}
	poll("before a Kick", func() bool { return s.asleep.Load() == 2 })
	if n := s.woken.Load(); n != 0 {
		t.Fatalf("%d wake-ups before a Kick", n)
	}
	s.Kick()
	poll("after a Kick", func() bool { return s.woken.Load() >= 1 })
	poll("after the window", func() bool { return s.asleep.Load() == 2 })
}

func TestNilSpinner(t *testing.T) {
	s := New(0, time.Second)
	if s != nil || s.Procs() != 0 {
		t.Fatalf("New(0, ...) = %v, want nil", s)
	}
	s.Kick()
	s.Close()
}
