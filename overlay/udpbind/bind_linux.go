package udpbind

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/conn"
)

// endpointCacheSize bounds each socket's endpoint cache: past this many
// sources, new ones evict old ones (and so allocate again).
const endpointCacheSize = 1 << 14

var _ conn.Bind = (*Bind)(nil)

// Bind listens on one port for IPv4 and IPv6 UDP, like conn.StdNetBind.
type Bind struct {
	mu    sync.Mutex              // serialises Open, Close and SetMark
	socks atomic.Pointer[sockets] // nil when closed; read lock-free by Send
	pool  sendPool
}

type sockets struct {
	v4, v6 *socket
}

// New returns a Bind; on Linux a *Bind.
func New() conn.Bind { return &Bind{pool: sendPool{batch: conn.IdealBatchSize}} }

// Open binds IPv4 and IPv6 sockets to port (both to the same random port if
// port is 0); a family the host lacks is skipped.
func (b *Bind) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.socks.Load() != nil {
		return nil, 0, conn.ErrBindAlreadyOpen
	}
	var (
		v4, v6 *socket
		actual int
		err    error
	)
	for tries := 0; ; tries++ {
		v4, actual, err = listen("udp4", int(port))
		if err != nil && !isAFNoSupport(err) {
			return nil, 0, err
		}
		if v4 == nil {
			actual = int(port)
		}
		v6, actual, err = listen("udp6", actual)
		if port == 0 && v4 != nil && errors.Is(err, syscall.EADDRINUSE) && tries < 100 {
			v4.conn.Close()
			continue // the random IPv4 port is taken for IPv6: try another
		}
		if err != nil && !isAFNoSupport(err) {
			if v4 != nil {
				v4.conn.Close()
			}
			return nil, 0, err
		}
		break
	}
	var fns []conn.ReceiveFunc
	if v4 != nil {
		fns = append(fns, newReceiver(v4, conn.IdealBatchSize, endpointCacheSize).receiveIPv4)
		actual = v4.conn.LocalAddr().(*net.UDPAddr).Port
	}
	if v6 != nil {
		fns = append(fns, newReceiver(v6, conn.IdealBatchSize, endpointCacheSize).receiveIPv6)
		actual = v6.conn.LocalAddr().(*net.UDPAddr).Port
	}
	if len(fns) == 0 {
		return nil, 0, syscall.EAFNOSUPPORT
	}
	b.socks.Store(&sockets{v4: v4, v6: v6})
	return fns, uint16(actual), nil
}

// Close closes the sockets; every ReceiveFunc from Open then returns an
// error wrapping net.ErrClosed, including one blocked in a read.
func (b *Bind) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.socks.Swap(nil)
	if s == nil {
		return nil
	}
	var err1, err2 error
	if s.v4 != nil {
		err1 = s.v4.conn.Close()
	}
	if s.v6 != nil {
		err2 = s.v6.conn.Close()
	}
	if err1 != nil {
		return err1
	}
	return err2
}

// SetMark sets SO_MARK on the open sockets (as StdNetBind, a no-op when
// closed: wireguard-go sets it again after each Open).
func (b *Bind) SetMark(mark uint32) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.socks.Load()
	if s == nil {
		return nil
	}
	for _, so := range []*socket{s.v4, s.v6} {
		if so == nil {
			continue
		}
		if err := so.setMark(mark); err != nil {
			return err
		}
	}
	return nil
}

// BatchSize is conn.IdealBatchSize, as StdNetBind's on Linux.
func (b *Bind) BatchSize() int { return conn.IdealBatchSize }

// ParseEndpoint parses "ip:port" (IPv6 in brackets, with an optional zone).
func (b *Bind) ParseEndpoint(s string) (conn.Endpoint, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return nil, err
	}
	return newEndpoint(ap, netip.Addr{}, 0), nil
}

// Send writes bufs to ep with as few sendmmsg calls as the socket allows.
// It returns net.ErrClosed when the Bind is closed, syscall.EAFNOSUPPORT when
// ep's family has no socket, and conn.ErrUDPGSODisabled (wrapping the retry's
// result) when the first send showed the device cannot do UDP_SEGMENT.
func (b *Bind) Send(bufs [][]byte, ep conn.Endpoint) error {
	e, ok := ep.(*Endpoint)
	if !ok {
		return conn.ErrWrongEndpointType
	}
	s := b.socks.Load()
	if s == nil {
		return net.ErrClosed
	}
	so := s.v4
	if e.is6() {
		so = s.v6
	}
	if so == nil {
		return syscall.EAFNOSUPPORT
	}
	if len(bufs) == 0 {
		return nil
	}
	sb := b.pool.get()
	defer b.pool.put(sb)
	if len(bufs) > len(sb.hdrs) {
		bufs = bufs[:len(sb.hdrs)] // the contract caps len(bufs) at BatchSize
	}
	return so.send(sb, bufs, e)
}

func (so *socket) send(sb *sendBatch, bufs [][]byte, e *Endpoint) error {
	gso, sticky := so.gso.Load(), e.sticky()
	gsoDisabled := false
	from := 0
	for {
		sb.n = sb.build(bufs, from, e, gso, sticky)
		sb.start, sb.errno = 0, 0
		if err := so.rc.Write(sb.write); err != nil {
			return err // net.ErrClosed after Close
		}
		if sb.errno == 0 {
			break
		}
		from = sb.from[sb.start] // what went before the failing message is sent
		switch {
		case sb.errno == unix.EIO && gso:
			// The device has no checksum offload, which UDP_SEGMENT needs.
			so.gso.Store(false)
			gso, gsoDisabled = false, true
		case (sb.errno == unix.EINVAL || sb.errno == unix.EMSGSIZE) && gso:
			// A segment larger than the route's MTU: Linux refuses the
			// whole message (EINVAL before 6.x, EMSGSIZE since). Send these
			// unsegmented: the kernel fragments each datagram to fit. TCP
			// never gets here (the daemon clamps its MSS to the path);
			// a large ping or UDP packet may.
			gso = false
		case sticky && staleSource(sb.errno):
			// The sticky source (or its interface) is no longer ours: let
			// the kernel choose until the peer's next packet teaches us a
			// new one.
			e.ClearSrc()
			sticky = false
		default:
			err := so.opError("sendmmsg", sb.errno)
			if gsoDisabled {
				return conn.ErrUDPGSODisabled{RetryErr: err}
			}
			return err
		}
	}
	if gsoDisabled {
		return conn.ErrUDPGSODisabled{}
	}
	return nil
}

func isAFNoSupport(err error) bool { return errors.Is(err, syscall.EAFNOSUPPORT) }

// staleSource reports whether a send error may come from a sticky source
// address or interface that went away (the kernel's answer varies).
func staleSource(errno syscall.Errno) bool {
	switch errno {
	case unix.EINVAL, unix.ENETUNREACH, unix.EADDRNOTAVAIL, unix.ENODEV:
		return true
	}
	return false
}
