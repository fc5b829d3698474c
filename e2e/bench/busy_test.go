package main

import (
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestBusyLoad checks that the load runs one idle-priority loop per CPU
// and that stop leaves none behind.
func TestBusyLoad(t *testing.T) {
	load, err := startBusy()
	if err != nil {
		t.Fatal(err)
	}
	defer load.stop()
	var pids []int
	for _, c := range load.cmds {
		pids = append(pids, c.Process.Pid)
	}
	if len(pids) == 0 {
		t.Fatal("no loops started")
	}
	for _, pid := range pids {
		// nice execs sh: poll until the process runs at nice 19.
		deadline := time.Now().Add(10 * time.Second)
		for {
			n, err := niceOf(pid)
			if err == nil && n == 19 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("loop %d: nice %d, %v; want 19", pid, n, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	load.stop()
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); err == nil {
			t.Errorf("loop %d still exists after stop", pid)
		}
	}
}

// niceOf reads a process's nice value from /proc/PID/stat (field 19).
func niceOf(pid int) (int, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which ends at the last ')'.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	return strconv.Atoi(f[16])
}
