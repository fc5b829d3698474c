package netstack

// A connection's goroutines start on Go's smallest stack (2 KiB) and run
// straight into gVisor's deepest paths (connect and its port reservation,
// the handshake, the first write through TCP, IP and the link), where the
// stack is grown by doubling: each growth copies every frame below it and
// walks their tables (runtime.copystack, pcvalue). In an in-process cold
// dial (BenchmarkColdDial) that was about a tenth of the CPU time, spread
// over the steps of the connect that the dialling node waits for. growStack
// grows it once, at the top of such a goroutine, where there is one frame
// to copy. Measured: runtime.copystack fell from 9% to under 2% of the CPU
// samples of BenchmarkColdDial (-cpu 1), and in timestamped traces of 30
// cold connects between two overlayds (one run before, one after; medians;
// a loaded shared machine) the
// face dial's gVisor connect took 44 µs instead of 87 before its SYN was
// out, and the first write of the handshake 9 µs instead of 53.

// growStackFrame is the frame growStack asks for: the stack then grows to
// the next power of two that holds it, 16 KiB, the largest size the
// runtime keeps in its per-P stack caches (a 16 KiB frame made it 32 KiB,
// allocated from the heap each time). The paths above fit: with it the
// benchmark's profile shows no other growth on these goroutines.
const growStackFrame = 10 << 10

// growStack grows the calling goroutine's stack to hold growStackFrame at
// once. The runtime shrinks it again at a garbage collection if the
// goroutine does not use it.
//
//go:noinline
func growStack() {
	var b [growStackFrame]byte
	touchStack(b[:])
}

// touchStack keeps growStack's frame from being optimised away.
//
//go:noinline
func touchStack(b []byte) { b[0] = 0 }
