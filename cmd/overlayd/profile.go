package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
)

// startProfiles starts a CPU profile into cpuFile and an execution trace
// into traceFile (each if set) and returns a function, to be called at
// exit, that stops them and writes a heap profile (allocations since start
// and memory in use, after a GC) into memFile (if set). All are for
// benchmarks (`go tool pprof`, `go tool trace`: which goroutine waited for
// what, and for how long); they are off by default.
func startProfiles(cpuFile, memFile, traceFile string) (stop func() error, err error) {
	var cpu, tr *os.File
	if traceFile != "" {
		if tr, err = os.Create(traceFile); err != nil {
			return nil, fmt.Errorf("--trace: %w", err)
		}
		if err := trace.Start(tr); err != nil {
			tr.Close()
			return nil, fmt.Errorf("--trace: %w", err)
		}
	}
	if cpuFile != "" {
		if cpu, err = os.Create(cpuFile); err == nil {
			if err = pprof.StartCPUProfile(cpu); err != nil {
				cpu.Close()
			}
		}
		if err != nil {
			if tr != nil {
				trace.Stop()
				tr.Close()
			}
			return nil, fmt.Errorf("--cpuprofile: %w", err)
		}
	}
	return func() error {
		var first error
		if tr != nil {
			trace.Stop()
			if err := tr.Close(); err != nil {
				first = fmt.Errorf("--trace: %w", err)
			}
		}
		if cpu != nil {
			pprof.StopCPUProfile()
			if err := cpu.Close(); err != nil {
				first = fmt.Errorf("--cpuprofile: %w", err)
			}
		}
		if memFile != "" {
			if err := writeHeapProfile(memFile); err != nil && first == nil {
				first = err
			}
		}
		return first
	}, nil
}

func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("--memprofile: %w", err)
	}
	runtime.GC() // up-to-date in-use figures
	if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
		f.Close()
		return fmt.Errorf("--memprofile: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("--memprofile: %w", err)
	}
	return nil
}
