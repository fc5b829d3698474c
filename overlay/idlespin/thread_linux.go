package idlespin

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// lockIdleThread locks the goroutine to its thread and gives the thread
// the SCHED_IDLE policy. If the kernel refuses, the thread spins at its
// normal priority at nice 19.
func lockIdleThread() {
	runtime.LockOSThread()
	attr := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_IDLE}
	if unix.SchedSetAttr(0, &attr, 0) != nil {
		_ = unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), 19)
	}
}
