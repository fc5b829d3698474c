// Package idlespin keeps CPUs out of idle while the overlay carries
// traffic, so that waking a daemon or a node costs what it costs on a busy
// host. On an idle 2-vCPU VM every packet wakes a sleeping thread on a
// halted vCPU (tens of µs each, several per round trip); with every CPU
// kept busy by idle-priority work the same round trip is ~40% shorter
// (`go run ./e2e/bench -budget`).
//
// A Spinner runs goroutines, each locked to an OS thread of scheduling
// policy SCHED_IDLE (the kernel runs it only when nothing else wants the
// CPU, and preempts it at once when something does), that spin for a
// window after the last [Spinner.Kick] and then sleep on a channel: no CPU
// at all while the overlay is quiet. Each goroutine holds a Go P while it
// spins, so the daemon's GOMAXPROCS must count them ([Spinner.Procs]).
// A cost besides the idle CPU time: on a host busy with other work a
// spinner may wait long for its CPU while it holds its P, and a garbage
// collection's stop-the-world waits for it too. Off unless asked for.
package idlespin

import (
	"sync"
	"sync/atomic"
	"time"
)

// Spinner is a set of idle-priority spinning threads woken by traffic.
type Spinner struct {
	window time.Duration
	n      int
	last   atomic.Int64 // unix nanoseconds of the last Kick
	// asleep counts spinners waiting on wake; Kick sends only then.
	asleep atomic.Int32
	wake   chan struct{}
	woken  atomic.Uint64 // times a spinner woke on a Kick (tests)
	done   chan struct{}
	wg     sync.WaitGroup
}

// New starts n spinners that spin for window after each Kick. n < 1 or
// window <= 0 returns nil, a Spinner that does nothing.
func New(n int, window time.Duration) *Spinner {
	if n < 1 || window <= 0 {
		return nil
	}
	s := &Spinner{window: window, n: n, wake: make(chan struct{}, n), done: make(chan struct{})}
	for range n {
		s.wg.Add(1)
		go s.run()
	}
	return s
}

// Procs is how many Go Ps the spinners hold while they spin: add it to
// GOMAXPROCS.
func (s *Spinner) Procs() int {
	if s == nil {
		return 0
	}
	return s.n
}

// Kick says traffic passed now: the spinners spin until window after the
// last Kick. It costs an atomic store per packet, and a channel send when
// the spinners sleep.
func (s *Spinner) Kick() {
	if s == nil {
		return
	}
	s.last.Store(time.Now().UnixNano())
	for range s.asleep.Load() {
		select {
		case s.wake <- struct{}{}:
		default:
			return
		}
	}
}

// Close stops the spinners and waits for them.
func (s *Spinner) Close() {
	if s == nil {
		return
	}
	close(s.done)
	s.wg.Wait()
}

func (s *Spinner) active() bool {
	return time.Now().UnixNano()-s.last.Load() < int64(s.window)
}

func (s *Spinner) run() {
	defer s.wg.Done()
	// Never unlocked: the thread, with its idle policy, ends with this
	// goroutine instead of running other goroutines at idle priority.
	lockIdleThread()
	for {
		s.asleep.Add(1)
		if !s.active() { // checked after counting as asleep: no lost Kick
			select {
			case <-s.wake:
				s.woken.Add(1)
			case <-s.done:
				s.asleep.Add(-1)
				return
			}
		}
		s.asleep.Add(-1)
		for s.active() {
			select {
			case <-s.done:
				return
			default:
			}
		}
	}
}
