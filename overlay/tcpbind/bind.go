// Package tcpbind carries WireGuard's datagrams over TLS/TCP where UDP is
// blocked. Its Bind wraps a UDP conn.Bind: peers with a TCP endpoint get an
// Endpoint that sends over UDP while UDP is answered and over a TLS stream
// to the peer's tcp_endpoint otherwise, probing UDP now and then to move back;
// a peer dialing our listener is answered on its stream. The stream carries
// WireGuard messages unchanged, so WireGuard's encryption, authentication,
// cryptokey routing and the policy behind the device apply as over UDP. TLS
// is for passing firewalls that inspect port 443, not for trust: the
// listener's certificate is self-signed and ephemeral, and the client does
// not verify it. WireGuard's keys remain the identity.
package tcpbind

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/conn"
)

// Tunables: how fast the Bind falls back and probes, and its abuse bounds.
const (
	probeMaxSize = 256                   // only small datagrams (handshakes, ACKs, keepalives) probe
	probeDelay   = 30 * time.Millisecond // a probe's stream copy waits this long after its UDP copy
	dialTimeout  = 10 * time.Second
	dialBackoff  = time.Second
	writeTimeout = 5 * time.Second

	handshakeTimeout = 5 * time.Second  // TLS handshake of an accepted stream
	verifyWithin     = 10 * time.Second // an accepted stream the device has not answered by then is closed
	maxPendingFrames = 16               // messages a stream may send before the device answers it
	maxPendingPerIP  = 8                // unanswered streams per source address
	maxPending       = 256              // unanswered streams in all
	maxStreams       = 4096

	smallBuffer    = 2048
	readBuffer     = 16 << 10
	maxWriteBuffer = 1 << 20
	rxQueue        = 256
	udpCacheMax    = 1 << 12
)

// timing is when a peer falls back to TCP and probes UDP; tests shorten it.
type timing struct {
	udpFresh      time.Duration // a datagram from the peer's UDP address within this: UDP works
	fallbackAfter time.Duration // sending over UDP this long unanswered: use TCP
	probeEvery    time.Duration // on TCP, send one small datagram over UDP this often
}

// unansweredSends is how many data messages must have gone out over UDP,
// unanswered for fallbackAfter, before a peer heard from within udpFresh is
// moved to TCP: UDP cut in the middle of a session. The overlay carries TCP,
// whose data is acknowledged within a round trip and retransmitted when it
// is not (kernel TCP in TUN mode: 0, 0.2, 0.6, 1.4 s; gVisor sooner), so a
// live path answers long before; a count, not time alone, keeps one lone
// message that needs no answer (the last ACK of a transfer) from moving a
// quiet peer. Keepalives are not counted: WireGuard answers none.
const unansweredSends = 4

var defaultTiming = timing{udpFresh: 15 * time.Second, fallbackAfter: 3 * time.Second, probeEvery: 2 * time.Second}

// Config says where to listen and how to dial.
type Config struct {
	Listen string // "host:port" for the TLS listener; "": dial only
	// Dial opens the TCP connection to a peer's tcp_endpoint (e.g. through
	// an HTTP proxy); nil: a plain net.Dialer.
	Dial   func(ctx context.Context, network, addr string) (net.Conn, error)
	Logger *slog.Logger
}

var _ conn.Bind = (*Bind)(nil)

// Bind is a conn.Bind over an inner UDP Bind plus TLS streams.
type Bind struct {
	inner conn.Bind
	cfg   Config
	log   *slog.Logger
	cert  tls.Certificate
	epoch time.Time
	t     timing

	mu   sync.Mutex // serialises Open and Close
	sess atomic.Pointer[session]
	addr atomic.Pointer[net.TCPAddr] // the listener's address while open

	regMu sync.Mutex
	byUDP map[netip.AddrPort]*Endpoint // peers with a TCP endpoint, by UDP address
	byTCP map[string]*Endpoint         // peers pinned to TCP, by TCP address
	gen   atomic.Uint64                // bumped when byUDP changes
	nDual atomic.Int32
}

// New wraps inner. It makes the listener's ephemeral certificate now.
func New(inner conn.Bind, cfg Config) (*Bind, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Dial == nil {
		var d net.Dialer
		cfg.Dial = d.DialContext
	}
	cert, err := selfSigned()
	if err != nil {
		return nil, fmt.Errorf("tcp transport certificate: %w", err)
	}
	return &Bind{inner: inner, cfg: cfg, log: cfg.Logger.With(slog.String("component", "tcpbind")),
		cert: cert, epoch: time.Now(), t: defaultTiming, byUDP: make(map[netip.AddrPort]*Endpoint), byTCP: make(map[string]*Endpoint)}, nil
}

// ListenAddr is the TLS listener's address, nil when closed or not listening.
func (b *Bind) ListenAddr() *net.TCPAddr { return b.addr.Load() }

// now is monotonic nanoseconds since New, never 0.
func (b *Bind) now() int64 { return int64(time.Since(b.epoch)) + 1 }

// Open opens the inner Bind and, if configured, the TLS listener.
func (b *Bind) Open(port uint16) ([]conn.ReceiveFunc, uint16, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.sess.Load() != nil {
		return nil, 0, conn.ErrBindAlreadyOpen
	}
	fns, actual, err := b.inner.Open(port)
	if err != nil {
		return nil, 0, err
	}
	s := newSession(b)
	if b.cfg.Listen != "" {
		ln, err := net.Listen("tcp", b.cfg.Listen)
		if err != nil {
			b.inner.Close()
			return nil, 0, fmt.Errorf("tcp transport: %w", err)
		}
		s.ln = ln
		b.addr.Store(ln.Addr().(*net.TCPAddr))
		s.spawn(s.accept)
	}
	b.sess.Store(s)
	out := make([]conn.ReceiveFunc, 0, len(fns)+1)
	for _, fn := range fns {
		out = append(out, b.wrapUDP(fn))
	}
	return append(out, s.receive), actual, nil
}

// Close closes the inner Bind, the listener and every stream, and waits for
// the goroutines it started.
func (b *Bind) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	err := b.inner.Close()
	if s := b.sess.Swap(nil); s != nil {
		s.close()
	}
	b.addr.Store(nil)
	return err
}

func (b *Bind) SetMark(mark uint32) error { return b.inner.SetMark(mark) }
func (b *Bind) BatchSize() int            { return b.inner.BatchSize() }

// ParseEndpoint takes what the inner Bind takes, "tcp://host:port" (a peer
// pinned to TCP) or "ip:port,tcp://host:port" (UDP with TCP fallback).
func (b *Bind) ParseEndpoint(s string) (conn.Endpoint, error) {
	udpPart, tcpPart, both := strings.Cut(s, ","+TCPPrefix)
	if !both {
		if !strings.HasPrefix(s, TCPPrefix) {
			return b.inner.ParseEndpoint(s)
		}
		udpPart, tcpPart = "", strings.TrimPrefix(s, TCPPrefix)
	}
	host, _, err := net.SplitHostPort(tcpPart)
	if err != nil {
		return nil, fmt.Errorf("tcp endpoint %q: %w", tcpPart, err)
	}
	e := &Endpoint{tcpAddr: tcpPart}
	e.tcpIP, _ = netip.ParseAddr(host)
	if udpPart == "" {
		e.onTCP.Store(true)
		b.register(e)
		return e, nil
	}
	if e.udpAddr, err = netip.ParseAddrPort(udpPart); err != nil {
		return nil, fmt.Errorf("udp endpoint %q: %w", udpPart, err)
	}
	e.udpAddr = netip.AddrPortFrom(e.udpAddr.Addr().Unmap(), e.udpAddr.Port())
	if e.udp, err = b.inner.ParseEndpoint(udpPart); err != nil {
		return nil, err
	}
	b.register(e)
	return e, nil
}

// register makes e the Endpoint of its addresses. The Endpoint it replaces
// (a reload changed the peer's endpoint or transport) is retired: its stream
// closed and its UDP address forgotten, so that nothing arrives as it any
// more and WireGuard's roaming cannot bring it back.
func (b *Bind) register(e *Endpoint) {
	b.regMu.Lock()
	var old []*Endpoint
	if o := b.byTCP[e.tcpAddr]; o != nil {
		old = append(old, o)
	}
	if o := b.byUDP[e.udpAddr]; e.udp != nil && o != nil {
		old = append(old, o)
	}
	for _, o := range old {
		if b.byTCP[o.tcpAddr] == o {
			delete(b.byTCP, o.tcpAddr)
		}
		if o.udp != nil && b.byUDP[o.udpAddr] == o {
			delete(b.byUDP, o.udpAddr)
		}
	}
	b.byTCP[e.tcpAddr] = e
	if e.udp != nil {
		b.byUDP[e.udpAddr] = e
	}
	b.nDual.Store(int32(len(b.byUDP)))
	b.gen.Add(1)
	b.regMu.Unlock()
	for _, o := range old {
		o.retire()
	}
}

// TCPEndpoints is the set of endpoint addresses (as DstToString gives them,
// and so as UAPI and `wg show` print them) whose datagrams go over TCP now:
// peers on their tcp_endpoint and streams peers dialed to us.
func (b *Bind) TCPEndpoints() map[string]bool {
	out := make(map[string]bool)
	b.regMu.Lock()
	for _, e := range b.byTCP {
		if e.Transport() == "tcp" {
			if d := e.tcpDst(); d != "" {
				out[d] = true
			}
		}
	}
	b.regMu.Unlock()
	if s := b.sess.Load(); s != nil {
		s.mu.Lock()
		for st := range s.streams {
			if st.accepted {
				out[st.remote.String()] = true
			}
		}
		s.mu.Unlock()
	}
	return out
}

// wrapUDP makes datagrams from a TCP-capable peer's UDP address arrive as
// its Endpoint (so roaming keeps it) and notes that UDP works.
func (b *Bind) wrapUDP(fn conn.ReceiveFunc) conn.ReceiveFunc {
	var (
		lastIn  conn.Endpoint
		lastOut *Endpoint
		lastGen uint64
		cache   = make(map[conn.Endpoint]*Endpoint)
	)
	return func(packets [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
		n, err := fn(packets, sizes, eps)
		if n == 0 || b.nDual.Load() == 0 {
			return n, err
		}
		if g := b.gen.Load(); g != lastGen {
			clear(cache)
			lastIn, lastOut, lastGen = nil, nil, g
		}
		var now int64
		for i := range n {
			in := eps[i]
			d := lastOut
			if in != lastIn {
				var ok bool
				if d, ok = cache[in]; !ok {
					d = b.lookupUDP(in)
					if len(cache) >= udpCacheMax {
						clear(cache)
					}
					cache[in] = d
				}
				lastIn, lastOut = in, d
			}
			if d != nil {
				eps[i] = d
				if now == 0 {
					now = b.now()
				}
				d.lastUDPRx.Store(now)
			}
		}
		return n, err
	}
}

func (b *Bind) lookupUDP(ep conn.Endpoint) *Endpoint {
	ap, err := netip.ParseAddrPort(ep.DstToString())
	if err != nil {
		return nil
	}
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	b.regMu.Lock()
	defer b.regMu.Unlock()
	return b.byUDP[ap]
}

// Send sends over the transport ep calls for.
func (b *Bind) Send(bufs [][]byte, ep conn.Endpoint) error {
	switch e := ep.(type) {
	case *Endpoint:
		return b.sendPeer(bufs, e)
	case *streamEndpoint:
		if e.st.closed.Load() {
			return fmt.Errorf("tcp %s: %w", e.st.remote, net.ErrClosed)
		}
		e.st.settle() // the device answers: a handshake or session is valid
		return e.st.write(bufs, -1)
	}
	return b.inner.Send(bufs, ep)
}

func (b *Bind) sendPeer(bufs [][]byte, e *Endpoint) error {
	now := b.now()
	tcp := b.useTCP(e, now, carriesData(bufs))
	b.setTransport(e, tcp)
	if !tcp {
		if e.udpTry.Load() != 0 && e.tcpAddr != "" {
			if m := findInitiation(bufs); m != nil {
				b.fallbackLater(e, m)
			}
		}
		return b.inner.Send(bufs, e.udp)
	}
	s := b.sess.Load()
	if s == nil {
		return net.ErrClosed
	}
	skip := -1
	if !e.pinned() && now-e.lastProbe.Load() >= int64(b.t.probeEvery) {
		// Probe UDP with one small datagram, sent over UDP at once and
		// over the stream probeDelay later: the receiver's WireGuard keeps
		// whichever copy arrives first (the other fails its replay check),
		// and a UDP copy that wins makes it roam back to UDP; the delay
		// lets it win whenever UDP passes. The datagram is never left to
		// UDP alone: while UDP is blocked, sparse packets (TCP
		// retransmissions backing off) would all be probes, and all lost.
		for i, m := range bufs {
			if len(m) <= probeMaxSize && len(m) > 0 {
				e.lastProbe.Store(now)
				b.inner.Send(bufs[i:i+1], e.udp)
				if st := e.st.Load(); st != nil && st.s == s && !st.closed.Load() {
					late := append([]byte(nil), m...)
					if s.spawn(func() { s.sendLate(st, late) }) {
						skip = i
					}
				}
				break
			}
		}
	}
	st := s.streamFor(e, now)
	if st == nil {
		if m := findInitiation(bufs); m != nil {
			e.hold(m)
		}
		return nil // dialing: like a lost datagram, WireGuard retries
	}
	return st.write(bufs, skip)
}

// setTransport notes (and logs) which transport e's datagrams take.
func (b *Bind) setTransport(e *Endpoint, tcp bool) {
	if e.onTCP.Swap(tcp) == tcp {
		return
	}
	to := "udp"
	if tcp {
		to = "tcp"
	}
	b.log.Info("peer transport changed", slog.String("udp", e.udpAddr.String()), slog.String("tcp", e.tcpAddr), slog.String("now", to))
}

// fallbackLater sends handshake initiation m over TCP once fallbackAfter
// has passed without an answer over UDP, rather than at WireGuard's next
// retry (5 s later). It dials only then: a peer that answers over UDP in
// time costs no TCP connection.
func (b *Bind) fallbackLater(e *Endpoint, m []byte) {
	s := b.sess.Load()
	if s == nil || !e.fallbackArmed.CompareAndSwap(false, true) {
		return
	}
	e.hold(m)
	try := e.udpTry.Load()
	wait := time.Duration(try + int64(b.t.fallbackAfter) - b.now())
	ok := s.spawn(func() {
		defer e.fallbackArmed.Store(false)
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-t.C:
		case <-s.done:
			return
		}
		if !b.useTCP(e, b.now(), false) {
			e.takeHeld() // UDP answered
			return
		}
		b.setTransport(e, true)
		// With no stream yet, the dial sends the held initiation.
		if st := s.streamFor(e, b.now()); st != nil {
			if m := e.takeHeld(); m != nil {
				st.write([][]byte{m}, -1)
			}
		}
	})
	if !ok {
		e.fallbackArmed.Store(false)
	}
}

func findInitiation(bufs [][]byte) []byte {
	for i := len(bufs) - 1; i >= 0; i-- {
		if len(bufs[i]) == sizeInitiation && bufs[i][0] == msgInitiation {
			return bufs[i]
		}
	}
	return nil
}

// carriesData reports whether bufs hold a WireGuard data message other than
// a keepalive: one the peer's side answers (its TCP acknowledges it).
func carriesData(bufs [][]byte) bool {
	for _, m := range bufs {
		if len(m) > minMessage && m[0] == msgData {
			return true
		}
	}
	return false
}

// useTCP decides the transport of one send: UDP while the peer's UDP
// address answers; TCP after fallbackAfter of unanswered UDP, whether the
// peer was never heard from, fell silent for udpFresh, or stopped answering
// the data sent to it (unanswered). data says whether this send counts as
// data the peer answers.
func (b *Bind) useTCP(e *Endpoint, now int64, data bool) bool {
	if e.pinned() {
		return true
	}
	if last := e.lastUDPRx.Load(); last != 0 && now-last < int64(b.t.udpFresh) {
		from, cut := b.unanswered(e, now, last, data)
		if !cut {
			e.udpTry.Store(0)
			return false
		}
		// Stay on TCP when the peer's last datagram grows older than
		// udpFresh too: the try began with the first unanswered send.
		e.udpTry.CompareAndSwap(0, from)
		return true
	}
	try := e.udpTry.Load()
	if try == 0 {
		e.udpTry.CompareAndSwap(0, now)
		return false
	}
	return now-try >= int64(b.t.fallbackAfter)
}

// unanswered tracks the data sent to e over UDP since the peer's last
// datagram (last): the first such send and their count. cut is true once
// unansweredSends of them went out over at least fallbackAfter with no
// datagram back; from is when the first went out. A datagram from the
// peer's UDP address (a reply, or the answer to a probe) clears it.
func (b *Bind) unanswered(e *Endpoint, now, last int64, data bool) (from int64, cut bool) {
	from = e.quietFrom.Load()
	if from != 0 && last >= from {
		e.quietFrom.CompareAndSwap(from, 0)
		from = 0
	}
	if from == 0 {
		if data && e.quietFrom.CompareAndSwap(0, now) {
			e.quietSends.Store(1)
		}
		return 0, false
	}
	n := e.quietSends.Load()
	if data {
		n = e.quietSends.Add(1)
	}
	return from, n >= unansweredSends && now-from >= int64(b.t.fallbackAfter)
}

func (e *Endpoint) hold(m []byte) {
	e.heldMu.Lock()
	e.heldInit = append(e.heldInit[:0], m...)
	e.heldMu.Unlock()
}

func (e *Endpoint) takeHeld() []byte {
	e.heldMu.Lock()
	defer e.heldMu.Unlock()
	m := e.heldInit
	e.heldInit = nil
	return m
}

// selfSigned makes the listener's throwaway certificate.
func selfSigned() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "nodewire"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

var errSessionClosed = errors.New("tcp transport closed")
