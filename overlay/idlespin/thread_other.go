//go:build !linux

package idlespin

import "runtime"

func lockIdleThread() { runtime.LockOSThread() }
