package tcpbind

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.zx2c4.com/wireguard/conn"
)

// session is the Bind between one Open and its Close: the listener, the
// streams, and the goroutines that serve them.
type session struct {
	b      *Bind
	log    *slog.Logger
	ln     net.Listener // nil when not listening
	ctx    context.Context
	cancel context.CancelFunc
	rx     chan rxPacket
	done   chan struct{}
	wg     sync.WaitGroup

	mu      sync.Mutex // guards the fields below
	closed  bool
	streams map[*stream]struct{}
	pending map[netip.Addr]int // unanswered accepted streams per source
	nPend   int
}

func newSession(b *Bind) *session {
	ctx, cancel := context.WithCancel(context.Background())
	return &session{b: b, log: b.log, ctx: ctx, cancel: cancel, rx: make(chan rxPacket, rxQueue),
		done: make(chan struct{}), streams: make(map[*stream]struct{}), pending: make(map[netip.Addr]int)}
}

// spawn runs f in a goroutine the session waits for, unless it is closed.
func (s *session) spawn(f func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	go func() { defer s.wg.Done(); f() }()
	return true
}

func (s *session) close() {
	s.mu.Lock()
	s.closed = true
	streams := make([]*stream, 0, len(s.streams))
	for st := range s.streams {
		streams = append(streams, st)
	}
	s.mu.Unlock()
	s.cancel()
	if s.ln != nil {
		s.ln.Close()
	}
	for _, st := range streams {
		st.close()
	}
	close(s.done)
	s.wg.Wait()
	for {
		select {
		case p := <-s.rx:
			putBuf(p.buf)
		default:
			return
		}
	}
}

// receive is the ReceiveFunc of every stream's messages.
func (s *session) receive(packets [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
	var p rxPacket
	select {
	case p = <-s.rx:
	case <-s.done:
		return 0, net.ErrClosed
	}
	n := 0
	for {
		sizes[n] = copy(packets[n], (*p.buf)[:p.n])
		eps[n] = p.ep
		putBuf(p.buf)
		if n++; n == len(packets) {
			return n, nil
		}
		select {
		case p = <-s.rx:
		default:
			return n, nil
		}
	}
}

// register adds st to the session; false when closed or full.
func (s *session) register(st *stream) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || len(s.streams) >= maxStreams {
		return false
	}
	s.streams[st] = struct{}{}
	return true
}

func (s *session) forget(st *stream) {
	s.mu.Lock()
	delete(s.streams, st)
	s.mu.Unlock()
}

// admit takes a pending slot for a stream from ip, within the bounds.
func (s *session) admit(ip netip.Addr) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.nPend >= maxPending || s.pending[ip] >= maxPendingPerIP {
		return false
	}
	s.pending[ip]++
	s.nPend++
	return true
}

func (s *session) release(ip netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending[ip]--; s.pending[ip] <= 0 {
		delete(s.pending, ip)
	}
	s.nPend--
}

func (s *session) accept() {
	backoff := 5 * time.Millisecond
	for {
		c, err := s.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Warn("tcp accept", slog.Any("err", err))
			select {
			case <-time.After(backoff):
			case <-s.done:
				return
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		remote := addrPortOf(c.RemoteAddr())
		if !s.admit(remote.Addr()) {
			c.Close() // too many unanswered streams from there
			continue
		}
		st := &stream{s: s, remote: remote, accepted: true}
		st.pending.Store(true)
		st.ep = &streamEndpoint{st: st}
		st.c = tls.Server(c, &tls.Config{Certificates: []tls.Certificate{s.b.cert}, MinVersion: tls.VersionTLS13})
		if !s.register(st) {
			st.close()
			continue
		}
		if !s.spawn(func() { s.serve(st) }) {
			st.close()
		}
	}
}

// serve runs an accepted stream: the TLS handshake within handshakeTimeout,
// then messages, and closes it if the device has not answered within
// verifyWithin.
func (s *session) serve(st *stream) {
	ctx, cancel := context.WithTimeout(s.ctx, handshakeTimeout)
	err := st.c.(*tls.Conn).HandshakeContext(ctx)
	cancel()
	if err != nil {
		s.log.Debug("tcp handshake failed", slog.String("remote", st.remote.String()), slog.Any("err", err))
		st.close()
		return
	}
	t := time.AfterFunc(verifyWithin, func() {
		if st.pending.Load() {
			s.log.Debug("tcp stream closed: no valid WireGuard handshake", slog.String("remote", st.remote.String()))
			st.close()
		}
	})
	defer t.Stop()
	s.log.Debug("tcp stream accepted", slog.String("remote", st.remote.String()))
	st.read()
}

// sendLate writes a probe's stream copy after probeDelay.
func (s *session) sendLate(st *stream, m []byte) {
	t := time.NewTimer(probeDelay)
	defer t.Stop()
	select {
	case <-t.C:
		st.write([][]byte{m}, -1)
	case <-s.done:
	}
}

// streamFor returns e's dialed stream, or nil while one is being dialed
// (starting the dial if none is under way and the backoff allows).
func (s *session) streamFor(e *Endpoint, now int64) *stream {
	if st := e.st.Load(); st != nil && st.s == s && !st.closed.Load() {
		return st
	}
	if now < e.nextDial.Load() || !e.dialing.CompareAndSwap(false, true) {
		return nil
	}
	if !s.spawn(func() { s.dial(e) }) {
		e.dialing.Store(false)
	}
	return nil
}

func (s *session) dial(e *Endpoint) {
	st, err := s.connect(e)
	if err != nil {
		e.nextDial.Store(s.b.now() + int64(dialBackoff))
		e.dialing.Store(false)
		level := slog.LevelDebug
		if e.dialFails.Add(1) == 1 {
			level = slog.LevelInfo // the first of a run of failures
		}
		s.log.Log(s.ctx, level, "tcp dial failed", slog.String("tcp", e.tcpAddr), slog.Any("err", err))
		return
	}
	e.dialFails.Store(0)
	if old := e.st.Swap(st); old != nil {
		old.close()
	}
	e.dialing.Store(false)
	s.log.Debug("tcp stream dialed", slog.String("tcp", e.tcpAddr))
	if e.onTCP.Load() || e.pinned() {
		if m := e.takeHeld(); m != nil {
			st.write([][]byte{m}, -1)
		}
	}
	st.read()
}

func (s *session) connect(e *Endpoint) (*stream, error) {
	ctx, cancel := context.WithTimeout(s.ctx, dialTimeout)
	defer cancel()
	raw, err := s.b.cfg.Dial(ctx, "tcp", e.tcpAddr)
	if err != nil {
		return nil, err
	}
	host, _, _ := net.SplitHostPort(e.tcpAddr)
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS13,
		// The TLS layer only gets WireGuard through firewalls that want
		// TLS on 443; WireGuard authenticates the peer end to end, so the
		// listener's throwaway certificate is not checked.
		InsecureSkipVerify: true,
	}
	if _, err := netip.ParseAddr(host); err != nil {
		cfg.ServerName = host // SNI as a browser would send it
	}
	tc := tls.Client(raw, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	st := &stream{s: s, c: tc, remote: addrPortOf(raw.RemoteAddr()), ep: e}
	if !s.register(st) {
		tc.Close()
		return nil, errSessionClosed
	}
	return st, nil
}

func addrPortOf(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}
