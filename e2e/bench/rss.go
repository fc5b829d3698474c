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

// clockTick is USER_HZ, the unit of utime and stime in /proc/<pid>/stat
// (100 on every Linux architecture Go supports).
const clockTick = 100

// procCPU is the CPU time (user + system) pid has used so far.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces: fields count
	// from the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	// utime and stime are fields 14 and 15 of the line, 12 and 13 here.
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime %q stime %q", pid, f[11], f[12])
	}
	return time.Duration(ut+st) * time.Second / clockTick, nil
}

// cpuMeter measures the CPU share (100% = one core) of a set of processes
// over an interval: who is the bottleneck of a workload.
type cpuMeter struct {
	pids  map[string]int
	start map[string]time.Duration
	t0    time.Time
}

func startCPUMeter(pids map[string]int) *cpuMeter {
	m := &cpuMeter{pids: pids, start: map[string]time.Duration{}, t0: time.Now()}
	for k, pid := range pids {
		m.start[k], _ = procCPU(pid)
	}
	return m
}

// stop returns each process's CPU use in percent of one core.
func (m *cpuMeter) stop() map[string]float64 {
	wall := time.Since(m.t0)
	out := map[string]float64{}
	for k, pid := range m.pids {
		end, err := procCPU(pid)
		if err != nil || wall <= 0 {
			continue
		}
		out[k] = 100 * float64(end-m.start[k]) / float64(wall)
	}
	return out
}
