package tcpbind

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/conn"
)

// stream is one TLS connection carrying framed WireGuard messages.
type stream struct {
	s        *session
	c        net.Conn
	remote   netip.AddrPort
	ep       conn.Endpoint // what its datagrams arrive as
	accepted bool
	// pending: accepted and not yet answered by the device, which answers
	// only a valid handshake (or a valid data message); such a stream counts
	// against its source's bounds and lives at most verifyWithin.
	pending atomic.Bool

	wmu  sync.Mutex
	wbuf []byte

	closeOnce sync.Once
	closed    atomic.Bool
}

func (st *stream) close() {
	st.closeOnce.Do(func() {
		st.closed.Store(true)
		st.c.Close()
		st.settle()
		st.s.forget(st)
	})
}

// settle ends the pending state once, releasing the source's slot.
func (st *stream) settle() {
	if st.pending.CompareAndSwap(true, false) {
		st.s.release(st.remote.Addr())
	}
}

// write sends bufs (all but index skip) as frames in one write, so that
// concurrent senders never interleave frames. A stream that cannot take a
// batch within writeTimeout is closed: the peer is gone or stuck, and
// WireGuard's sender must not block on it.
func (st *stream) write(bufs [][]byte, skip int) error {
	st.wmu.Lock()
	defer st.wmu.Unlock()
	b := st.wbuf[:0]
	for i, m := range bufs {
		if i != skip && len(m) <= maxMessage {
			b = appendFrame(b, m)
		}
	}
	if len(b) == 0 {
		return nil
	}
	if cap(b) <= maxWriteBuffer {
		st.wbuf = b
	} else {
		st.wbuf = nil
	}
	st.c.SetWriteDeadline(time.Now().Add(writeTimeout))
	if _, err := st.c.Write(b); err != nil {
		st.close()
		return fmt.Errorf("tcp %s: %w", st.remote, err)
	}
	return nil
}

// rxPacket is one received message on its way to the device.
type rxPacket struct {
	buf *[]byte
	n   int
	ep  conn.Endpoint
}

var smallBufs = sync.Pool{New: func() any { b := make([]byte, smallBuffer); return &b }}

func getBuf(n int) *[]byte {
	if n <= smallBuffer {
		return smallBufs.Get().(*[]byte)
	}
	b := make([]byte, n)
	return &b
}

func putBuf(b *[]byte) {
	if cap(*b) == smallBuffer {
		smallBufs.Put(b)
	}
}

// read hands the stream's messages to the device until the stream ends or
// breaks the framing. A pending stream may send at most maxPendingFrames
// messages before the device answers it.
func (st *stream) read() {
	defer st.close()
	fr := &frameReader{r: bufio.NewReaderSize(st.c, readBuffer)}
	var cur *[]byte
	alloc := func(n int) []byte {
		cur = getBuf(n)
		return (*cur)[:n]
	}
	frames := 0
	for {
		m, err := fr.next(alloc)
		if err != nil {
			if cur != nil && m == nil {
				putBuf(cur)
			}
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				st.s.log.Debug("tcp stream closed", slog.String("remote", st.remote.String()), slog.Any("err", err))
			}
			return
		}
		if st.pending.Load() {
			if frames++; frames > maxPendingFrames {
				st.s.log.Debug("tcp stream closed: too many messages before a handshake", slog.String("remote", st.remote.String()))
				putBuf(cur)
				return
			}
		}
		select {
		case st.s.rx <- rxPacket{buf: cur, n: len(m), ep: st.ep}:
			cur = nil
		case <-st.s.done:
			putBuf(cur)
			return
		}
	}
}
