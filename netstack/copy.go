package netstack

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"

	"github.com/nodewire/nodewire/netstack/hoptrace"
)

// copyBufSize is the size of one pooled copy buffer. Small buffers cost a
// syscall or a stack hand-off per few KiB; 64 KiB keeps a bulk stream to a
// handful of reads per window.
const copyBufSize = 64 << 10

// copyBufs pools copy buffers so a read never allocates. It holds *[]byte:
// putting a slice header in an interface would allocate on every Put.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// HalfCloser is a stream that can end its sending side alone: both
// *net.TCPConn and *gonet.TCPConn are.
type HalfCloser interface {
	net.Conn
	CloseWrite() error
}

// Splice copies a→b and b→a until both directions are done, then closes
// both. An EOF on one side ends only that direction (the other side gets a
// FIN through CloseWrite), so half-closed protocols keep working; any other
// error ends both. aToB and bToA, when not nil, count the bytes copied each
// way as they go, so live stats stay current. Splice returns the first error
// that is not an orderly close.
//
// One direction runs on a new goroutine, the other on the caller's; Splice
// returns only after both have stopped.
func Splice(a, b HalfCloser, aToB, bToA *atomic.Uint64) error {
	var (
		once  sync.Once
		first error
	)
	abort := func(err error) {
		once.Do(func() {
			first = err
			a.Close()
			b.Close()
		})
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		growStack()
		if err := copyHalf(b, a, aToB); err != nil {
			abort(err)
		}
	}()
	if err := copyHalf(a, b, bToA); err != nil {
		abort(err)
	}
	<-done
	abort(nil)
	return first
}

// copyHalf copies src to dst until src reports EOF, then half-closes dst.
func copyHalf(dst, src HalfCloser, count *atomic.Uint64) error {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	for {
		n, rerr := src.Read(buf)
		if n > 0 {
			hoptrace.Read(src, n)
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return werr
			}
			hoptrace.Wrote(dst, n)
			if count != nil {
				count.Add(uint64(n))
			}
		}
		if rerr != nil {
			if errors.Is(rerr, io.EOF) {
				// Pass the FIN on; stop reading src (it has nothing more).
				return dst.CloseWrite()
			}
			return rerr
		}
	}
}
