package netstack

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"

	"github.com/nodewire/nodewire/netstack/erldist"
	"github.com/nodewire/nodewire/peers"
)

func TestPreflightExplainsWildcardEPMD(t *testing.T) {
	w := &world{payKey: newTestKey(t), monKey: newTestKey(t), epmdPort: freePort(t), exposePort: freePort(t)}
	// Something (epmd, say) holds the EPMD port on the wildcard address.
	hog, err := net.Listen("tcp4", "0.0.0.0:"+itoa(w.epmdPort))
	if err != nil {
		t.Fatal(err)
	}
	defer hog.Close()
	snap := w.snap(t, payFaces, "pay-1", erlangRule(w))
	err = preflight(snap, w.epmdPort)
	var fe *FaceError
	if !errors.As(err, &fe) || !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("Preflight: %v, want a FaceError for EADDRINUSE", err)
	}
	want := "127.81.2.1:" + itoa(w.epmdPort) + " is taken (epmd or a node holds the wildcard address?): " +
		"start epmd with ERL_EPMD_ADDRESS=127.81.1.1 and nodes with -kernel inet_dist_use_interface '{127,81,1,1}'"
	if err.Error() != want {
		t.Errorf("Preflight error\n got %s\nwant %s", err, want)
	}
	if strings.Contains(err.Error(), "\n") {
		t.Error("error spans lines")
	}

	// Start fails the same way and leaves nothing bound.
	s, err := New(Config{Logger: testLogger(t, "pay-1"), EPMDPort: w.epmdPort}, snap)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Start(); !errors.As(err, &fe) {
		t.Fatalf("Start: %v, want a FaceError", err)
	}
	if got := s.faces.listening("mon-1"); len(got) != 0 {
		t.Errorf("faces left open after a failed Start: %v", got)
	}
	hog.Close()
	if err := preflight(snap, w.epmdPort); err != nil {
		t.Errorf("Preflight after the port was freed: %v", err)
	}
}

func TestPreflightExplainsWildcardService(t *testing.T) {
	w := &world{payKey: newTestKey(t), monKey: newTestKey(t), epmdPort: freePort(t), exposePort: freePort(t)}
	hog, err := net.Listen("tcp4", "0.0.0.0:"+itoa(w.exposePort))
	if err != nil {
		t.Fatal(err)
	}
	defer hog.Close()
	// mon-1 sees pay-1's exposed port on pay-1's face.
	err = preflight(w.snap(t, monFaces, "mon-1", erlangRule(w)), w.epmdPort)
	want := "127.82.1.1:" + itoa(w.exposePort) + " is taken (a local service holds the wildcard address?): bind local services to this host's face 127.82.2.1, not to 0.0.0.0"
	if err == nil || err.Error() != want {
		t.Fatalf("Preflight: %v\nwant %s", err, want)
	}
}

func TestStackCloseEndsEverything(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Run("run", func(t *testing.T) {
		for _, link := range []string{"pipe", "wireguard"} {
			p := newPair(t, link, erlangRule)
			paySelf := p.pay.face("pay-1")
			startEcho(t, netip.AddrPortFrom(paySelf, p.w.exposePort))
			live := dialAndPing(t, netip.AddrPortFrom(p.mon.face("pay-1"), p.w.exposePort))
			defer live.Close()
			done := make(chan error, 1)
			go func() { done <- p.mon.stack.Close() }()
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Close hangs with a live connection")
			}
			if err := readErrSoon(live, 5*time.Second); err == nil || !isRefused(err) {
				t.Fatalf("connection survived Close: %v", err)
			}
			if _, err := net.DialTimeout("tcp4", netip.AddrPortFrom(p.mon.face("pay-1"), p.w.epmdPort).String(), time.Second); err == nil {
				t.Fatal("face still accepting after Close")
			}
			// The other end learns at once (a reset), not after keepalive.
			waitFor(t, 10*time.Second, "pay-1 to drop mon-1's connection", func() bool {
				return p.pay.stack.Stats()["mon-1"].Open == 0
			})
			closed := make(chan error, 1)
			go func() { closed <- p.pay.stack.Close() }()
			select {
			case err := <-closed:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the other stack's Close hangs after its peer closed")
			}
		}
	})
	// Everything of both pairs (stacks, WireGuard devices, fakes) is closed.
	waitFor(t, 10*time.Second, "goroutines to end", func() bool { return runtime.NumGoroutine() <= before+2 })
}

// TestStartThenCloseClosesFaces: the Stack's work ends on Close, which its
// owner calls (it used to end also when Start's context did, a second owner
// racing overlay.Daemon.Close).
func TestStartThenCloseClosesFaces(t *testing.T) {
	w := &world{payKey: newTestKey(t), monKey: newTestKey(t), epmdPort: freePort(t), exposePort: freePort(t)}
	s, err := New(Config{Logger: testLogger(t, "mon-1"), EPMDPort: w.epmdPort}, w.snap(t, monFaces, "mon-1", erlangRule(w)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if len(s.faces.listening("pay-1")) != 2 {
		t.Fatalf("faces of pay-1: %v, want epmd and the exposed port", s.faces.listening("pay-1"))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := s.faces.listening("pay-1"); len(got) != 0 {
		t.Fatalf("faces open after Close: %v", got)
	}
	if err := s.Start(); err == nil {
		t.Error("Start after close succeeded")
	}
}

// TestConcurrentCloseWaitsForTheFirst: every Close returns only when the
// Stack is closed, whichever call did the work.
func TestConcurrentCloseWaitsForTheFirst(t *testing.T) {
	p := newPair(t, "wireguard", erlangRule)
	startEcho(t, netip.AddrPortFrom(p.pay.face("pay-1"), p.w.exposePort))
	// A live connection gives the first Close resets to flush.
	live := dialAndPing(t, netip.AddrPortFrom(p.mon.face("pay-1"), p.w.exposePort))
	defer live.Close()
	const callers = 4
	errs := make(chan error, callers)
	for range callers {
		go func() {
			err := p.mon.stack.Close()
			// Closed means the TUN is closed too: nothing may go on while
			// the first Close is still at work.
			if err == nil && !p.mon.stack.tun.closed.Load() {
				err = errors.New("Close returned before the stack was closed")
			}
			errs <- err
		}()
	}
	for range callers {
		select {
		case err := <-errs:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Close hangs")
		}
	}
}

func TestUnknownSourceGetsNoAnswer(t *testing.T) {
	w := &world{payKey: newTestKey(t), monKey: newTestKey(t), epmdPort: freePort(t), exposePort: freePort(t)}
	pay := startHost(t, w, "pay-1", payFaces, erlangRule(w))
	// A host pay-1's file does not know, on the same wire.
	ghostSnap := w.snap(t, "127.83.0.0/16", "mon-1", erlangRule(w))
	ghost, err := New(Config{Logger: testLogger(t, "ghost")}, ghostSnap)
	if err != nil {
		t.Fatal(err)
	}
	defer ghost.Close()
	// Move the ghost off mon-1's address: it claims 10.77.2.9.
	ghost.mu.Lock()
	err = ghost.setAddress(netip.MustParseAddr("10.77.2.9"), ghostSnap.File.Overlay.Prefix)
	ghost.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	pipeTUNs(t, pay.stack.TUN(), ghost.TUN())
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	c, err := ghost.dialOverlay(ctx, netip.MustParseAddrPort("10.77.1.1:"+itoa(w.epmdPort)))
	if err == nil {
		c.Close()
		t.Fatal("pay-1 accepted a connection from an address no peer has")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("dial: %v, want no answer (the dial's deadline)", err)
	}
	if got := pay.epmd.seen(); len(got) != 0 {
		t.Errorf("epmd saw %v", got)
	}
}

func TestNamesNeedsErlangPorts(t *testing.T) {
	// The rule allows 4369 by number only: PORT_PLEASE2 passes, NAMES (a
	// listing of every node) does not.
	p := newPair(t, "pipe", func(w *world) fileOpts { return fileOpts{rulePorts: "[4369]"} })
	paySelf := p.pay.face("pay-1")
	nodePort := startEcho(t, netip.AddrPortFrom(paySelf, 0))
	p.pay.epmd.register("app", nodePort)
	epmd := netip.AddrPortFrom(p.mon.face("pay-1"), p.w.epmdPort)
	if r, err := portPlease(t, epmd, "app"); err != nil || !r.OK() {
		t.Fatalf("PORT_PLEASE2: %+v, %v", r, err)
	}
	reply, _ := epmdExchange(t, epmd, []byte{erldist.TagNamesReq})
	if len(reply) != 0 {
		t.Fatalf("NAMES answered: %q", reply)
	}
	if slices.Contains(p.pay.epmd.seen(), erldist.TagNamesReq) {
		t.Fatal("NAMES reached epmd")
	}
}

func TestFaceForNodePortUnavailable(t *testing.T) {
	p := newPair(t, "pipe", erlangRule)
	// The node's port is held on the wildcard address on this machine, so
	// mon-1 cannot open pay-1's face on it.
	hog, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hog.Close()
	port := uint16(hog.Addr().(*net.TCPAddr).Port)
	p.pay.epmd.register("app", port)
	r, err := portPlease(t, netip.AddrPortFrom(p.mon.face("pay-1"), p.w.epmdPort), "app")
	if err != nil {
		t.Fatal(err)
	}
	if r.OK() {
		t.Fatalf("client told port %d although no face could be opened for it", r.Port)
	}
	if st := p.mon.stack.Stats()["pay-1"]; !strings.Contains(st.FaceError, "is taken") {
		t.Errorf("FaceError = %q", st.FaceError)
	}
}

func TestApplyMovesFaces(t *testing.T) {
	p := newPair(t, "pipe", erlangRule)
	startEcho(t, netip.AddrPortFrom(p.pay.face("pay-1"), p.w.exposePort))
	old := netip.AddrPortFrom(p.mon.face("pay-1"), p.w.exposePort)
	p.mon.stack.Apply(p.w.snap(t, "127.84.0.0/16", "mon-1", erlangRule(p.w)))
	moved := netip.AddrPortFrom(p.mon.face("pay-1"), p.w.exposePort)
	if moved.Addr() != netip.MustParseAddr("127.84.1.1") {
		t.Fatalf("face is %v", moved)
	}
	if _, err := net.DialTimeout("tcp4", old.String(), time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("old face: %v, want refused", err)
	}
	c := dialAndPing(t, moved)
	c.Close()
}

// preflight checks that every face listener snap asks for can be bound
// now, and releases them again. Its error is a *FaceError whose message
// says how to fix the first failure, e.g. that epmd holds the wildcard
// address. epmdPort 0 means 4369. Start binds the same listeners with the
// same explanations; this lets a test see them without a running stack.
func preflight(snap *peers.Snapshot, epmdPort uint16) error {
	if err := checkSnapshot(snap); err != nil {
		return err
	}
	if epmdPort == 0 {
		epmdPort = peers.EPMDPort
	}
	var open []int
	defer func() {
		for _, fd := range open {
			unix.Close(fd)
		}
	}()
	for _, w := range wantedFaces(snap, epmdPort, nil) {
		fd, err := listenFD(w.addr)
		if err != nil {
			return faceError(w.addr, w.peer.Name, snap.Self, w.epmd || !w.expose, err)
		}
		open = append(open, fd)
	}
	return nil
}

// Config.CongestionControl picks gVisor TCP's congestion control for every
// endpoint; an unknown name is refused before anything starts.
func TestStackCongestionControl(t *testing.T) {
	w := &world{payKey: newTestKey(t), monKey: newTestKey(t), epmdPort: freePort(t), exposePort: freePort(t)}
	snap := w.snap(t, payFaces, "pay-1", erlangRule(w))
	for _, tc := range []struct{ cc, want string }{
		{"", DefaultCongestionControl},
		{"reno", "reno"},
		{"bbrfloor", "bbrfloor"},
	} {
		s, err := New(Config{CongestionControl: tc.cc}, snap)
		if err != nil {
			t.Fatalf("New with %q: %v", tc.cc, err)
		}
		var got tcpip.CongestionControlOption
		if terr := s.ip.TransportProtocolOption(tcp.ProtocolNumber, &got); terr != nil {
			t.Fatalf("read the option: %v", terr)
		}
		if string(got) != tc.want {
			t.Errorf("Config.CongestionControl %q: the stack runs %q, want %q", tc.cc, got, tc.want)
		}
		s.Close()
	}
	if _, err := New(Config{CongestionControl: "cubic"}, snap); err == nil || !strings.Contains(err.Error(), `congestion control "cubic"`) {
		t.Errorf("New with cubic: %v, want it refused", err)
	}
}
