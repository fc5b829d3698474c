// Package netstack is nodewire's userspace data plane: a gVisor TCP/IP stack
// behind a wireguard-go TUN device, the listeners on other peers' faces
// (loopback addresses that stand for them on this host), the inbound
// forwarder on this host's overlay address, the EPMD filter relay and the
// stream copy between host sockets and the stack.
//
// It knows nothing of files, reloads or control sockets: it is handed a
// Snapshot (the parsed peer file and which peer this host is) and asks
// peers.File.Judge about every new connection, at both ends.
package netstack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nodewire/nodewire/netstack/denylog"
	"github.com/nodewire/nodewire/peers"
	"golang.zx2c4.com/wireguard/tun"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
)

// Config is what a Stack needs beyond the peer file.
type Config struct {
	Logger   *slog.Logger // nil: slog.Default()
	MTU      int          // inner MTU; 0: DefaultMTU (1420)
	EPMDPort uint16       // 0: 4369. Both the local epmd (on the self face) and every peer's epmd listen here.
	// CongestionControl is gVisor TCP's congestion control, one of
	// CongestionControls(); "": DefaultCongestionControl.
	CongestionControl string
}

const (
	// maxInFlight bounds handshakes the inbound forwarder works on at once,
	// so a SYN flood costs bounded goroutines; more SYNs are dropped (and
	// retried by the sender). It is well above the per-peer bound
	// (limits.go), so a few flooding peers cannot fill it for the others.
	maxInFlight = 4096
	nicID       = tcpip.NICID(1)
)

// Timeouts. Local dials go to loopback and either work at once or not at
// all; overlay dials may wait for a WireGuard handshake (retried every 5 s).
const (
	localDialTimeout   = 3 * time.Second
	overlayDialTimeout = 12 * time.Second
	epmdRequestTimeout = 10 * time.Second // client must send its request within
	epmdReplyTimeout   = 15 * time.Second // epmd (local or remote) must answer within
	sendNameTimeout    = 10 * time.Second // an inbound distribution connection must name its node within (a real node does at once)
	epmdCloseWait      = 2 * time.Second  // the inbound relay waits for a userspace source to close first (relay.go)
	timeWait           = time.Second      // see newIPStack
	keepaliveIdle      = 30 * time.Second
	keepaliveInterval  = 10 * time.Second
	keepaliveCount     = 3
	// userTimeout aborts an overlay connection whose sent data stays
	// unacknowledged this long: the peer is gone, not slow (a slow reader
	// still acknowledges window probes).
	userTimeout = 90 * time.Second

	// tunFlushTimeout bounds how long Close waits for the TUN's reader to
	// take the resets it sends (nobody may be reading).
	tunFlushTimeout = time.Second
)

// Stack is one host's data plane. Make it with New, hand TUN() to
// wireguard-go, then Start it; Apply swaps peer files while traffic flows.
type Stack struct {
	log      *slog.Logger
	mtu      int
	epmdPort uint16
	snap     atomic.Pointer[peers.Snapshot]

	tun *TUN
	ip  *stack.Stack

	conns   *registry
	stats   *statsTable
	faces   *faceSet
	local   *localPorts
	epmd    *epmdCache // peers' PORT2_RESPs (epmdcache.go)
	limiter *denylog.Logger
	fwd     *forwarder
	group   group

	ctx    context.Context // cancelled by Close: ends dials and waits
	cancel context.CancelFunc

	mu      sync.Mutex // serialises Start, Apply and the start of Close
	started bool
	closed  bool
	addr    netip.Addr   // self address configured in the stack; guarded by mu
	prefix  netip.Prefix // overlay route; guarded by mu

	closeOnce sync.Once // a second Close waits for the first
	closeErr  error     // what the first Close returned
}

// New builds the gVisor stack with snap.Self.Address and a route for the
// overlay prefix. Nothing listens until Start.
func New(cfg Config, snap *peers.Snapshot) (*Stack, error) {
	if err := checkSnapshot(snap); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MTU == 0 {
		cfg.MTU = DefaultMTU
	}
	if cfg.CongestionControl == "" {
		cfg.CongestionControl = DefaultCongestionControl
	}
	if err := CheckCongestionControl(cfg.CongestionControl); err != nil {
		return nil, fmt.Errorf("netstack: congestion control %w", err)
	}
	if cfg.MTU < 576 || cfg.MTU > 65535 {
		return nil, fmt.Errorf("netstack: MTU %d outside 576..65535", cfg.MTU)
	}
	if cfg.EPMDPort == 0 {
		cfg.EPMDPort = peers.EPMDPort
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Stack{
		log:      cfg.Logger,
		mtu:      cfg.MTU,
		epmdPort: cfg.EPMDPort,
		tun:      newTUN(cfg.MTU),
		conns:    newRegistry(),
		stats:    newStatsTable(),
		limiter:  denylog.New(cfg.Logger, "netstack: refused", 10*time.Second, 4096),
		ctx:      ctx,
		cancel:   cancel,
	}
	s.snap.Store(snap)
	s.tun.admit = s.admit
	s.faces = newFaceSet(s)
	s.local = newLocalPorts(s.queryLocalNames)
	s.epmd = newEPMDCache()
	ip, err := newIPStack(s.tun, snap.Self.Address, snap.File.Overlay.Prefix, cfg.CongestionControl)
	if err != nil {
		cancel()
		return nil, err
	}
	s.ip = ip
	s.addr, s.prefix = snap.Self.Address, snap.File.Overlay.Prefix
	s.fwd = newForwarder(s)
	return s, nil
}

// checkSnapshot refuses snapshots the stack cannot work from.
func checkSnapshot(snap *peers.Snapshot) error {
	switch {
	case snap == nil || snap.File == nil || snap.Self == nil:
		return errors.New("netstack: snapshot without a file or a self peer")
	case !snap.Self.Address.Is4():
		return fmt.Errorf("netstack: self address %v is not IPv4", snap.Self.Address)
	case !snap.Self.Face.IsValid():
		return fmt.Errorf("netstack: self peer %s has no face", snap.Self.Name)
	}
	return nil
}

// newIPStack builds a gVisor stack with one NIC on the TUN's endpoint, the
// self address and the overlay route, tuned for bulk TCP.
func newIPStack(t *TUN, addr netip.Addr, prefix netip.Prefix, cc string) (*stack.Stack, error) {
	ip := stack.New(stack.Options{
		NetworkProtocols: []stack.NetworkProtocolFactory{ipv4.NewProtocol},
		// ICMP for Ping's endpoints; echo requests are answered by ipv4
		// itself, behind the inbound filter (admit.go).
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, icmp.NewProtocol4},
	})
	fail := func(what string, terr tcpip.Error) (*stack.Stack, error) {
		ip.Close()
		ip.Wait()
		return nil, fmt.Errorf("netstack: %s: %s", what, terr)
	}
	if err := setTCPOptions(ip, cc); err != nil {
		ip.Close()
		ip.Wait()
		return nil, err
	}
	if terr := ip.CreateNIC(nicID, t.link); terr != nil {
		return fail("create NIC", terr)
	}
	if terr := ip.AddProtocolAddress(nicID, protocolAddress(addr), stack.AddressProperties{}); terr != nil {
		return fail(fmt.Sprintf("add address %v", addr), terr)
	}
	ip.SetRouteTable([]tcpip.Route{overlayRoute(prefix)})
	return ip, nil
}

func protocolAddress(a netip.Addr) tcpip.ProtocolAddress {
	return tcpip.ProtocolAddress{
		Protocol:          ipv4.ProtocolNumber,
		AddressWithPrefix: tcpip.AddrFrom4(a.As4()).WithPrefix(),
	}
}

func overlayRoute(p netip.Prefix) tcpip.Route {
	p = p.Masked()
	sub := tcpip.AddressWithPrefix{Address: tcpip.AddrFrom4(p.Addr().As4()), PrefixLen: p.Bits()}.Subnet()
	return tcpip.Route{Destination: sub, NIC: nicID}
}

// TUN is the device to hand to wireguard-go's device.NewDevice. Closing it
// (device.Close does) stops packet flow but not the Stack; call Close too.
func (s *Stack) TUN() tun.Device { return s.tun }

// Start binds every face listener of the current snapshot and starts the
// inbound forwarder. If any face cannot be bound it returns a *FaceError
// (with the fix in its message) and leaves nothing open. Work started here
// ends on Close, which whoever started the Stack calls: the Stack never
// closes itself (overlay.Daemon.Close must order it before the WireGuard
// device, so that the resets it sends leave).
func (s *Stack) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		return errors.New("netstack: Start after Close")
	case s.started:
		return errors.New("netstack: started twice")
	}
	if err := s.faces.openAll(s.snap.Load()); err != nil {
		return err
	}
	s.started = true
	s.ip.SetTransportProtocolHandler(tcp.ProtocolNumber, s.fwd.tcp.HandlePacket)
	return nil
}

// Apply swaps in a new snapshot. Faces of new peers (and changed faces or
// exposed ports) are opened, those of removed peers closed; every live
// connection is judged again and closed if its peer is gone or its address
// changed, or the new policy denies it. A new key alone keeps connections:
// WireGuard then takes that address only from the new key (rotate-key). Peers are matched by name.
// Connections the new file still allows are untouched. Face listeners that
// fail to bind are logged (and shown in Stats) rather than returned: the
// rest of the new file still takes effect. Safe to call concurrently with
// traffic; a nil or unusable snapshot is logged and ignored.
func (s *Stack) Apply(snap *peers.Snapshot) {
	if err := checkSnapshot(snap); err != nil {
		s.log.Error("netstack: snapshot refused", "err", err)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	if err := s.setAddress(snap.Self.Address, snap.File.Overlay.Prefix); err != nil {
		s.log.Error("netstack: snapshot refused", "err", err)
		return
	}
	s.snap.Store(snap)
	if s.started {
		if err := s.faces.sync(snap); err != nil {
			s.log.Warn("netstack: some faces could not be opened", "err", err)
		}
	}
	for _, c := range s.conns.judge(snap) {
		s.log.Info("netstack: closed connection: "+c.why,
			"peer", c.tc.peer, "dir", c.tc.dir.String(), "port", c.tc.port)
		c.tc.abort()
	}
	s.stats.prune(snap.File)
}

// setAddress moves the stack to a new self address or overlay prefix.
// Connections on the old address are judged (and closed) by Apply.
func (s *Stack) setAddress(addr netip.Addr, prefix netip.Prefix) error {
	if addr != s.addr {
		if terr := s.ip.AddProtocolAddress(nicID, protocolAddress(addr), stack.AddressProperties{}); terr != nil {
			return fmt.Errorf("netstack: add address %v: %s", addr, terr)
		}
		if terr := s.ip.RemoveAddress(nicID, tcpip.AddrFrom4(s.addr.As4())); terr != nil {
			s.log.Warn("netstack: remove old address", "addr", s.addr, "err", terr.String())
		}
		s.addr = addr
	}
	if prefix != s.prefix {
		s.ip.SetRouteTable([]tcpip.Route{overlayRoute(prefix)})
		s.prefix = prefix
	}
	return nil
}

// Close stops the face listeners and the forwarder, closes every
// connection and the stack, and waits for every goroutine the Stack
// started. Safe to call more than once and from several goroutines: a
// second Close waits until the first is done and returns what it returned,
// so no caller goes on (to close the WireGuard device, say) while the
// first is still flushing resets.
func (s *Stack) Close() error {
	s.closeOnce.Do(func() { s.closeErr = s.close() })
	return s.closeErr
}

func (s *Stack) close() error {
	s.mu.Lock()
	s.closed = true // Start and Apply do nothing from here on
	s.mu.Unlock()

	s.group.shut() // no new goroutines from here on
	s.cancel()
	s.faces.closeAll()
	s.conns.closeAll()
	s.abortEndpoints()
	// The aborts above queued a reset for every overlay connection. Let the
	// device's reader (WireGuard) take them before the TUN closes, or the
	// peers keep their ends until keepalive gives up on them.
	s.tun.flush(tunFlushTimeout)
	s.tun.Close()
	s.ip.Close() // aborts endpoints: dials in flight, handshakes
	s.waitGroupAborting()
	s.abortEndpoints()
	s.ip.Wait()
	s.tun.link.Close()
	return nil
}

// waitGroupAborting waits for the Stack's goroutines. A forwarder handler
// that raced with Close may have started a handshake after the stack
// aborted its endpoints; with the TUN closed that handshake would wait for
// its retries to run out, so endpoints are aborted again while waiting.
func (s *Stack) waitGroupAborting() {
	done := make(chan struct{})
	go func() {
		s.group.wait()
		close(done)
	}()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return
		case <-tick.C:
			s.abortEndpoints()
		}
	}
}

// abortEndpoints resets every TCP endpoint of the stack: the live ones and
// those closed but still lingering in FIN-WAIT or LAST-ACK, which
// gvisor's Stack.Close leaves alone and Stack.Wait would wait out (60 s)
// when the peer never answers.
func (s *Stack) abortEndpoints() {
	for _, ep := range s.ip.RegisteredEndpoints() {
		ep.Abort()
	}
	for _, ep := range s.ip.CleanupEndpoints() {
		ep.Abort()
	}
}

// policyPort maps the configured EPMD port to the one the policy knows
// (peers.EPMDPort), so tests and unusual deployments on another port are
// judged as EPMD.
func (s *Stack) policyPort(port uint16) uint16 {
	if port == s.epmdPort {
		return peers.EPMDPort
	}
	return port
}

// grantsErlang reports whether a decision gives the source Erlang's ports
// as such (not merely port 4369 by number): same network, self, or a rule
// with all ports or `erlang`. NAMES is relayed only then, since it lists
// every node of the host.
func grantsErlang(d peers.Decision) bool {
	if !d.Allow {
		return false
	}
	switch d.Reason {
	case peers.ReasonSameNetwork, peers.ReasonSelf:
		return true
	case peers.ReasonRule:
		return d.Rule != nil && (d.Rule.Ports.All || d.Rule.Ports.Erlang)
	}
	return false
}

// group tracks every goroutine the Stack starts (including the forwarder's
// handlers, which gVisor starts), so Close can refuse new ones and wait.
type group struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// enter counts the calling goroutine in; false after shut.
func (g *group) enter() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.wg.Add(1)
	return true
}

func (g *group) leave() { g.wg.Done() }

// spawn runs f on a new counted goroutine; false (f not run) after shut.
func (g *group) spawn(f func()) bool {
	if !g.enter() {
		return false
	}
	go func() {
		defer g.leave()
		f()
	}()
	return true
}

func (g *group) shut() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}

func (g *group) wait() { g.wg.Wait() }
