package netstack

// Test harness: two Stacks ("hosts" pay-1 and mon-1) in one process, joined
// either by a packet pipe between their TUNs or by two real wireguard-go
// devices over loopback UDP; a fake epmd and fake services on each host's
// self face. Both hosts share this machine's loopback, so each has its own
// faces prefix (127.81/16 for pay-1, 127.82/16 for mon-1).

import (
	"bytes"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodewire/nodewire/netstack/erldist"
	"github.com/nodewire/nodewire/overlay/udpbind"
	"github.com/nodewire/nodewire/peers"
	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/tun"
)

// testKey is a WireGuard key pair.
type testKey struct{ priv, pub []byte }

func newTestKey(t testing.TB) testKey {
	t.Helper()
	k, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return testKey{k.Bytes(), k.PublicKey().Bytes()}
}

// world is what both hosts' peer files share, and the test ports.
type world struct {
	payKey, monKey testKey
	epmdPort       uint16 // every epmd, both hosts
	exposePort     uint16 // exposed by pay-1
}

// fileOpts varies a peer file between tests.
type fileOpts struct {
	rulePorts string // ports of the monitoring -> payments rule; "" for no rule
	backPorts string // ports of a payments -> monitoring rule; "" for no rule
	noPay     bool   // leave pay-1 out
}

// file builds the peer file as seen on the host whose faces are faces.
func (w *world) file(t testing.TB, faces string, o fileOpts) *peers.File {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "overlay:\n  prefix: 10.77.0.0/16\n  faces: %s\n  port: 51820\n", faces)
	b.WriteString("networks:\n  payments: {prefix: 10.77.1.0/24}\n  monitoring: {prefix: 10.77.2.0/24}\n")
	if o.rulePorts != "" || o.backPorts != "" {
		b.WriteString("interconnect:\n")
	}
	if o.rulePorts != "" {
		fmt.Fprintf(&b, "  - from: monitoring\n    to: payments\n    ports: %s\n", o.rulePorts)
	}
	if o.backPorts != "" {
		fmt.Fprintf(&b, "  - from: payments\n    to: monitoring\n    ports: %s\n", o.backPorts)
	}
	b.WriteString("peers:\n")
	if !o.noPay {
		fmt.Fprintf(&b, "  pay-1:\n    network: payments\n    public_key: %s\n    address: 10.77.1.1\n    expose: [%d]\n",
			base64.StdEncoding.EncodeToString(w.payKey.pub), w.exposePort)
	}
	fmt.Fprintf(&b, "  mon-1:\n    network: monitoring\n    public_key: %s\n    address: 10.77.2.1\n",
		base64.StdEncoding.EncodeToString(w.monKey.pub))
	f, err := peers.Parse("test.yaml", []byte(b.String()))
	if err != nil {
		t.Fatalf("peer file: %v\n%s", err, b.String())
	}
	return f
}

// snap builds a snapshot for self on the host whose faces are faces.
func (w *world) snap(t testing.TB, faces, self string, o fileOpts) *peers.Snapshot {
	f := w.file(t, faces, o)
	return &peers.Snapshot{File: f, Self: f.Peer(self)}
}

// freePort finds a TCP port nothing on addr's wildcard holds now.
func freePort(t testing.TB) uint16 {
	t.Helper()
	ln, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

// host is one simulated machine.
type host struct {
	name  string
	faces string // faces prefix of this host's file
	stack *Stack
	epmd  *fakeEPMD
	dev   *device.Device
}

// face returns the face of peer name on this host.
func (h *host) face(name string) netip.Addr {
	return h.stack.snap.Load().File.Peer(name).Face
}

// testLogger writes the stack's log to the test log (Debug and up), or
// nowhere in benchmarks (whose log is always printed).
func testLogger(t testing.TB, name string) *slog.Logger {
	if _, ok := t.(*testing.B); ok {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(testWriter{t, name}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct {
	t    testing.TB
	name string
}

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Logf("[%s] %s", w.name, strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// pair is two started hosts, linked.
type pair struct {
	w        *world
	pay, mon *host
}

const (
	payFaces = "127.81.0.0/16"
	monFaces = "127.82.0.0/16"
)

// newPair starts pay-1 and mon-1 with the files opts describes and links
// them with link ("pipe", or "wireguard" with wireguard-go's default Bind,
// or "wireguard-udpbind" with udpbind's). Everything is closed at test end.
func newPair(t testing.TB, link string, opts func(*world) fileOpts) *pair {
	t.Helper()
	w := &world{payKey: newTestKey(t), monKey: newTestKey(t), epmdPort: freePort(t), exposePort: freePort(t)}
	o := opts(w)
	p := &pair{w: w}
	p.pay = startHost(t, w, "pay-1", payFaces, o)
	p.mon = startHost(t, w, "mon-1", monFaces, o)
	switch link {
	case "pipe":
		pipeTUNs(t, p.pay.stack.TUN(), p.mon.stack.TUN())
	case "wireguard":
		joinWireGuard(t, conn.NewDefaultBind, p.pay, w.payKey, "10.77.1.1", p.mon, w.monKey, "10.77.2.1")
	case "wireguard-udpbind":
		joinWireGuard(t, udpbind.New, p.pay, w.payKey, "10.77.1.1", p.mon, w.monKey, "10.77.2.1")
	default:
		t.Fatalf("unknown link %q", link)
	}
	return p
}

func startHost(t testing.TB, w *world, name, faces string, o fileOpts) *host {
	t.Helper()
	snap := w.snap(t, faces, name, o)
	epmd := startFakeEPMD(t, netip.AddrPortFrom(snap.Self.Face, w.epmdPort))
	s, err := New(Config{Logger: testLogger(t, name), EPMDPort: w.epmdPort}, snap)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		s.Close()
		t.Fatal(err)
	}
	h := &host{name: name, faces: faces, stack: s, epmd: epmd}
	t.Cleanup(func() {
		if h.dev != nil {
			h.dev.Close()
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close %s: %v", name, err)
		}
	})
	return h
}

// pipeTUNs copies packets between two TUN devices, as a wire would.
func pipeTUNs(t testing.TB, a, b tun.Device) {
	var wg sync.WaitGroup
	pump := func(from, to tun.Device) {
		defer wg.Done()
		bufs := make([][]byte, from.BatchSize())
		for i := range bufs {
			bufs[i] = make([]byte, 65535)
		}
		sizes := make([]int, len(bufs))
		for {
			n, err := from.Read(bufs, sizes, 0)
			if err != nil {
				return
			}
			out := make([][]byte, n)
			for i := range n {
				out[i] = bufs[i][:sizes[i]]
			}
			if _, err := to.Write(out, 0); err != nil {
				return
			}
		}
	}
	wg.Add(2)
	go pump(a, b)
	go pump(b, a)
	t.Cleanup(func() {
		a.Close()
		b.Close()
		wg.Wait()
	})
}

// joinWireGuard puts a wireguard-go device in front of each host's TUN and
// makes them peers over 127.0.0.1 UDP, each with a Bind from newBind.
func joinWireGuard(t testing.TB, newBind func() conn.Bind, a *host, ak testKey, aAddr string, b *host, bk testKey, bAddr string) {
	t.Helper()
	mk := func(h *host, k testKey) int {
		h.dev = device.NewDevice(h.stack.TUN(), newBind(), device.NewLogger(device.LogLevelError, h.name+": "))
		if err := h.dev.IpcSet(fmt.Sprintf("private_key=%s\nlisten_port=0\n", hex.EncodeToString(k.priv))); err != nil {
			t.Fatal(err)
		}
		if err := h.dev.Up(); err != nil {
			t.Fatal(err)
		}
		get, err := h.dev.IpcGet()
		if err != nil {
			t.Fatal(err)
		}
		m := regexp.MustCompile(`listen_port=(\d+)`).FindStringSubmatch(get)
		if m == nil {
			t.Fatalf("no listen_port in %q", get)
		}
		var port int
		fmt.Sscan(m[1], &port)
		return port
	}
	ap, bp := mk(a, ak), mk(b, bk)
	peer := func(h *host, k testKey, port int, addr string) {
		uapi := fmt.Sprintf("public_key=%s\nendpoint=127.0.0.1:%d\nallowed_ip=%s/32\n", hex.EncodeToString(k.pub), port, addr)
		if err := h.dev.IpcSet(uapi); err != nil {
			t.Fatal(err)
		}
	}
	peer(a, bk, bp, bAddr)
	peer(b, ak, ap, aAddr)
}

// fakeEPMD speaks enough EPMD for the tests and records every request tag
// it receives, to prove what the relay let through.
type fakeEPMD struct {
	ln    net.Listener
	mu    sync.Mutex
	names map[string]uint16
	tags  []byte
	wg    sync.WaitGroup
}

func startFakeEPMD(t testing.TB, addr netip.AddrPort) *fakeEPMD {
	t.Helper()
	ln, err := net.Listen("tcp4", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	e := &fakeEPMD{ln: ln, names: make(map[string]uint16)}
	e.wg.Add(1)
	go e.serve()
	t.Cleanup(func() { ln.Close(); e.wg.Wait() })
	return e
}

func (e *fakeEPMD) register(name string, port uint16) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.names[name] = port
}

func (e *fakeEPMD) seen() []byte {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]byte(nil), e.tags...)
}

func (e *fakeEPMD) serve() {
	defer e.wg.Done()
	for {
		c, err := e.ln.Accept()
		if err != nil {
			return
		}
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			defer c.Close()
			e.handle(c)
		}()
	}
}

func (e *fakeEPMD) handle(c net.Conn) {
	c.SetDeadline(time.Now().Add(10 * time.Second))
	_, body, err := erldist.ReadRequest(c, make([]byte, 2+erldist.MaxRequestBody), erldist.MaxRequestBody)
	if err != nil {
		return
	}
	e.mu.Lock()
	e.tags = append(e.tags, body[0])
	e.mu.Unlock()
	switch body[0] {
	case erldist.TagAlive2Req:
		if len(body) < 13 {
			return
		}
		port := binary.BigEndian.Uint16(body[1:])
		nlen := int(binary.BigEndian.Uint16(body[9:]))
		if len(body) < 11+nlen {
			return
		}
		e.register(string(body[11:11+nlen]), port)
		c.Write([]byte{erldist.TagAlive2XResp, 0, 0, 0, 0, 1})
		io.Copy(io.Discard, c) // registered while the connection lives
	case erldist.TagPortPlease2Req:
		e.mu.Lock()
		port, ok := e.names[string(body[1:])]
		e.mu.Unlock()
		if !ok {
			c.Write([]byte{erldist.TagPort2Resp, 1})
			return
		}
		c.Write(port2OK(port, string(body[1:]), nil))
	case erldist.TagNamesReq:
		b := binary.BigEndian.AppendUint32(nil, 4369)
		e.mu.Lock()
		for n, p := range e.names {
			b = fmt.Appendf(b, "name %s at port %d\n", n, p)
		}
		e.mu.Unlock()
		c.Write(b)
	}
}

// startEcho listens on addr and echoes every connection, passing on
// half-closes: the reply to a client's FIN is a FIN.
func startEcho(t testing.TB, addr netip.AddrPort) uint16 {
	t.Helper()
	ln := serveTCP(t, addr, func(c *net.TCPConn) {
		io.Copy(c, c)
		c.CloseWrite()
	})
	return uint16(ln.Addr().(*net.TCPAddr).Port)
}

// serveTCP listens on addr and runs handle for each connection in its own
// goroutine, closing the connection after; the test's cleanup closes the
// listener and waits for every handler.
func serveTCP(t testing.TB, addr netip.AddrPort, handle func(*net.TCPConn)) *net.TCPListener {
	t.Helper()
	ln, err := net.ListenTCP("tcp4", net.TCPAddrFromAddrPort(addr))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.AcceptTCP()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				handle(c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln
}

// epmdExchange sends one framed request to addr and returns everything the
// other side sends before closing.
func epmdExchange(t testing.TB, addr netip.AddrPort, body []byte) ([]byte, error) {
	t.Helper()
	c, err := net.DialTimeout("tcp4", addr.String(), 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := c.Write(erldist.AppendRequest(nil, body)); err != nil {
		return nil, err
	}
	return io.ReadAll(c)
}

// portPlease asks the epmd at addr for name.
func portPlease(t testing.TB, addr netip.AddrPort, name string) (erldist.Port2Resp, error) {
	t.Helper()
	reply, err := epmdExchange(t, addr, append([]byte{erldist.TagPortPlease2Req}, name...))
	if err != nil {
		return erldist.Port2Resp{}, err
	}
	return erldist.ParsePort2Resp(reply)
}

// isRefused reports whether err says the connection was refused or reset
// (rather than timing out).
func isRefused(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return err != nil
}

// readErrSoon reads from c and reports the error (nil on data) within d.
func readErrSoon(c net.Conn, d time.Duration) error {
	c.SetReadDeadline(time.Now().Add(d))
	var b [1]byte
	_, err := c.Read(b[:])
	return err
}

// distHello sends a send_name naming node through c (to an echo behind a
// dist port) and reads it back, as the first exchange of a dist connection.
func distHello(t *testing.T, c net.Conn, node string) {
	t.Helper()
	msg := erldist.AppendSendName(nil, node)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(msg); err != nil {
		t.Fatalf("send_name: %v", err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("send_name echo: %x, %v", got, err)
	}
	c.SetDeadline(time.Time{})
}

// port2OK builds epmd's ok PORT2_RESP for name on port.
func port2OK(port uint16, name string, extra []byte) []byte {
	b := []byte{erldist.TagPort2Resp, 0}
	b = binary.BigEndian.AppendUint16(b, port)
	b = append(b, 77, 0, 0, 6, 0, 5)
	b = binary.BigEndian.AppendUint16(b, uint16(len(name)))
	b = append(b, name...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(extra)))
	return append(b, extra...)
}

// alive2 builds an ALIVE2_REQ body: a node registering name on port.
func alive2(port uint16, name string) []byte {
	b := []byte{erldist.TagAlive2Req}
	b = binary.BigEndian.AppendUint16(b, port)
	b = append(b, 77, 0, 0, 6, 0, 5)
	b = binary.BigEndian.AppendUint16(b, uint16(len(name)))
	b = append(b, name...)
	return append(b, 0, 0)
}

// sendNameOld is the pre-OTP-23 send_name ('n', version 5).
func sendNameOld(name string) []byte {
	body := []byte{'n', 0, 5}
	body = binary.BigEndian.AppendUint32(body, 0x3f7fbd)
	body = append(body, name...)
	return append(binary.BigEndian.AppendUint16(nil, uint16(len(body))), body...)
}
