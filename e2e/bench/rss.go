package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// procMem reads VmRSS and VmHWM (KiB) of pid from /proc.
func procMem(pid int) (rss, hwm int64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || (k != "VmRSS" && k != "VmHWM") {
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/%d/status: %s: %q", pid, k, v)
		}
		if k == "VmRSS" {
			rss = n
		} else {
			hwm = n
		}
	}
	if rss == 0 {
		return 0, 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
	}
	return rss, hwm, sc.Err()
}

// rssSampler records the largest VmRSS of a process until stopped. It owns
// one goroutine, which stop ends.
type rssSampler struct {
	pid  int
	quit chan struct{}
	done chan struct{}
	mu   sync.Mutex
	peak int64
}

func startRSSSampler(pid int, every time.Duration) *rssSampler {
	s := &rssSampler{pid: pid, quit: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			s.sample()
			select {
			case <-s.quit:
				return
			case <-tick.C:
			}
		}
	}()
	return s
}

func (s *rssSampler) sample() (rss, hwm int64) {
	rss, hwm, err := procMem(s.pid)
	if err != nil {
		return 0, 0
	}
	s.mu.Lock()
	s.peak = max(s.peak, rss)
	s.mu.Unlock()
	return rss, hwm
}

// stop ends sampling and returns the figures, the high-water mark read last.
func (s *rssSampler) stop() DaemonMem {
	close(s.quit)
	<-s.done
	rss, hwm := s.sample()
	s.mu.Lock()
	defer s.mu.Unlock()
	return DaemonMem{PeakRSSKB: s.peak, HWMKB: hwm, EndRSSKB: rss}
}
