package main

import (
	"fmt"
	"os/exec"
	"runtime"
	"syscall"
)

// busyLoad keeps every CPU busy with idle-priority work: one
// `nice -n 19 sh -c 'while :; do :; done'` per CPU. On a busy host the
// kernel never lets a CPU go idle, so a process that sleeps between
// packets is woken without the idle-exit latency it pays on an idle host;
// rows that depend on that (or that gain from a busy neighbour's
// scheduling) move, and the harness reports both conditions.
type busyLoad struct{ cmds []*exec.Cmd }

// startBusy starts the loops. Each dies with the harness (Pdeathsig) and
// is killed by stop; stop is safe to call more than once.
func startBusy() (*busyLoad, error) {
	b := &busyLoad{}
	for range runtime.NumCPU() {
		cmd := exec.Command("nice", "-n", "19", "sh", "-c", "while :; do :; done")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			b.stop()
			return nil, fmt.Errorf("starting idle-priority load: %w", err)
		}
		b.cmds = append(b.cmds, cmd)
	}
	return b, nil
}

func (b *busyLoad) stop() {
	for _, c := range b.cmds {
		// The loop's process group: nice execs sh, which has no children,
		// but kill the group in case a shell forks.
		_ = syscall.Kill(-c.Process.Pid, syscall.SIGKILL)
		_ = c.Wait()
	}
	b.cmds = nil
}
