// Package overlay owns the lifetime of one host's membership in the overlay:
// it builds the WireGuard device over the userspace stack, turns peer files
// into UAPI operations and snapshots (at start and on every reload), serves
// the control socket and the `wg` UAPI socket, and shuts everything down in
// order.
package overlay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/device"
	"golang.zx2c4.com/wireguard/ipc"

	"github.com/nodewire/nodewire/overlay/control"
	"github.com/nodewire/nodewire/overlay/tcpbind"
	"github.com/nodewire/nodewire/peers"
)

// Config is what overlayd needs to join the overlay.
type Config struct {
	PeerFile       string
	Self           string // this host's name in the peer file
	PrivateKeyFile string
	ListenPort     uint16 // 0: the port of this host's endpoint, else overlay.port
	ControlPath    string // "": control.DefaultPath()
	Interface      string // UAPI name for `wg show`; "": "nw-" + Self
	MTU            int    // inner MTU; 0: 1420, with each peer's TCP MSS held to its path (pathmtu.go)
	EPMDPort       uint16 // 0: 4369
	// TCPCongestion is the userspace stack's TCP congestion control (see
	// netstack.CongestionControls); "": netstack.DefaultCongestionControl.
	// TUN mode's TCP is the kernel's and ignores it.
	TCPCongestion string
	Logger        *slog.Logger
	Mode          string // "", "userspace" or "tun"; "": the peer's mode in the file
	Inetrc        string // if set, an Erlang inetrc kept current here (see peers.File.Inetrc)
	InetrcDomain  string // "": peers.DefaultDomain
	ErlangHosts   string // if set, a .hosts.erlang kept current here (see peers.File.HostsErlang)
	MetricsAddr   string // "": no metrics; else HOST:PORT for Prometheus (metrics.go)
	MetricsPublic bool   // allow a MetricsAddr that is not loopback
	TCPListen     string // "": no TCP; else HOST:PORT taking WireGuard over TLS/TCP (overlay/tcpbind)
	// TCPDial opens TCP connections to peers' tcp_endpoints (e.g. through an
	// HTTP proxy); nil: directly.
	TCPDial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Trust, if set, is a file of admin SSH public keys: only a peer file
	// signed by one of them (PEERFILE.sig), not older than the one running
	// and not expired is applied (trust.go, peers.CheckUpdate).
	Trust string
	// TrustState is a file where the version of the last applied signed
	// file is kept, so that a restart still refuses a rollback; "": kept in
	// memory only (a restart accepts any serial the signature covers).
	TrustState string
}

// Daemon is one running overlayd.
type Daemon struct {
	cfg     Config
	log     *slog.Logger
	private peers.Key
	started time.Time

	plane dataPlane                     // the userspace stack or, in TUN mode, the kernel interface and filter
	mss   *mssDevice                    // the plane's device as WireGuard sees it: SYNs clamped per peer
	route func(netip.Addr) (int, error) // route MTU lookup; nil: the system's, a fresh routeLookup per pass
	stop  chan struct{}                 // closed by Close: ends watchPaths
	mode  peers.Mode
	dev   *device.Device
	tun   *deviceTUN    // the plane's TUN as dev reads it (drain.go)
	bind  *quietBind    // dev's bind
	tcp   *tcpbind.Bind // inside bind: UDP, and TLS/TCP for peers that need it
	udp   conn.Bind     // inside tcp: the UDP sockets (metrics read their drops)
	uapi  net.Listener
	ctl   net.Listener
	mtx   net.Listener // metrics, or nil
	srv   *http.Server // serves mtx, or nil
	wg    sync.WaitGroup

	// ctx is the daemon's lifetime for the waits of control requests
	// (explain, ping); Close cancels it. It is not New's context: the
	// daemon closes only on Close, which orders the shutdown.
	ctx    context.Context
	cancel context.CancelFunc
	reqs   connSet // control and UAPI connections being served

	strangers strangers // logs handshakes from hosts that are no WireGuard peer here

	closeOnce sync.Once // a second Close waits for the first
	closeErr  error     // what the first Close returned

	mu        sync.Mutex // serialises reloads and the start of Close; guards the fields below
	closed    bool       // Close has begun: no Reload from here on
	file      *peers.File
	self      *peers.Peer
	partners  []*peers.Peer        // file.Partners(self): the WireGuard peers
	have      map[peers.Key]wgPeer // what the device was last configured with; replaced whole, never modified
	haveExact bool                 // have is desiredPeers(partners) entry by entry; false after a failed UAPI set (keys only)
	loadedAt  time.Time
	reloads   uint64
	reloadErr string
	listen    uint16

	reloadFails uint64 // rejected reloads, for metrics; guarded by mu
	trust       *trust // nil without Config.Trust; guarded by mu
	// parser parses every peer file applied, reusing the previous parse
	// for unchanged peers: adding one to 10,000 parses one (issue 13).
	parser peers.Parser
	paths  map[string]pathState // per partner; replaced whole, never modified; guarded by mu

	source func() control.SourceStatus // see SetSource; guarded by mu
}

// InterfaceName is the default UAPI name: unique per host so that several
// daemons can share one machine, and short enough for `wg` (15 bytes).
func InterfaceName(self string) string {
	name := "nw-" + self
	if len(name) > 15 {
		name = name[:15]
	}
	return name
}

// New checks everything that would make the daemon useless or unsafe, then
// brings the overlay up. It refuses, with a one-line reason, a key file
// others can read, an invalid peer file, a self name not in it, a taken UDP
// port, and faces it cannot bind. On error nothing is left open.
func New(ctx context.Context, cfg Config) (_ *Daemon, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Interface == "" {
		cfg.Interface = InterfaceName(cfg.Self)
	}
	if cfg.ControlPath == "" {
		cfg.ControlPath = control.DefaultPath()
	}
	d := &Daemon{cfg: cfg, log: cfg.Logger, started: time.Now(), stop: make(chan struct{})}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			d.Close()
		}
	}()

	if d.private, err = peers.LoadPrivateKey(cfg.PrivateKeyFile); err != nil {
		return nil, err
	}
	if d.trust, err = newTrust(cfg); err != nil {
		return nil, err
	}
	f, self, version, err := d.load()
	if err != nil {
		return nil, err
	}
	d.listen = cfg.ListenPort
	if d.listen == 0 {
		d.listen = listenPortOf(f, self)
	}
	if err := checkUDPPort(d.listen); err != nil {
		return nil, err
	}

	if d.mode, err = modeOf(cfg, f, self); err != nil {
		return nil, err
	}
	if d.mode == peers.ModeTUN {
		d.plane, err = newTUNPlane(cfg, d.log, f, self)
	} else {
		d.plane, err = newUserspacePlane(cfg, d.log, f, self)
	}
	if err != nil {
		return nil, err
	}
	if err := d.writeInetrc(f, self); err != nil {
		return nil, err
	}
	if err := d.writeErlangHosts(f, self); err != nil {
		return nil, err
	}

	d.udp = newBind(d.log)
	if d.tcp, err = tcpbind.New(d.udp, tcpbind.Config{Listen: cfg.TCPListen, Dial: cfg.TCPDial, Logger: d.log}); err != nil {
		return nil, err
	}
	d.tun, d.bind = newDeviceTUN(traceTUN(d.plane.TUN())), &quietBind{Bind: traceBind(d.plane.Bind(d.tcp))}
	d.mss = newMSSDevice(d.tun)
	d.strangers.log = d.log
	d.strangers.setSnapshot(&peers.Snapshot{File: f, Self: self})
	d.dev = device.NewDevice(d.mss, d.bind, wgLogger(d.log, d.strangers.refused))
	if d.mode != peers.ModeTUN {
		// gVisor acknowledges each message at once: a round trip sends
		// a pure ACK and the reply close together each way, and both
		// should skip the worker hand-offs (wireguard patch 0007; the
		// kernel's TCP in TUN mode piggybacks its ACKs).
		d.dev.SetInlineBurst(2)
	}
	partners := f.Partners(self)
	c := fullChange(partners, func(ps []*peers.Peer) map[string]netip.AddrPort { return d.resolve(ctx, ps) })
	want := c.want
	if err := d.dev.IpcSet(deviceUAPI(d.private, d.listen) + uapiDiff(nil, want)); err != nil {
		return nil, fmt.Errorf("configure WireGuard: %w", err)
	}
	// The MSS table is in place before the first packet can flow.
	d.mu.Lock()
	d.file, d.self, d.partners, d.have, d.haveExact, d.loadedAt = f, self, partners, want, true, time.Now()
	d.configuredPathsLocked(nil, c)
	d.appliedLocked(version)
	d.mu.Unlock()
	if err := d.dev.Up(); err != nil {
		return nil, fmt.Errorf("WireGuard up (UDP port %d, TCP %q): %w", d.listen, cfg.TCPListen, err)
	}
	d.wg.Add(1)
	go func() { defer d.wg.Done(); d.watchPaths(d.stop) }()

	// The garbage of a big start goes back to the system before the
	// control socket says the daemon is up. A start parses and opens faces
	// for the whole file, partners or not: its size is the file's.
	returnMemory(len(f.Peers))
	if d.ctl, err = listenControl(cfg.ControlPath); err != nil {
		return nil, err
	}
	d.wg.Add(1)
	go func() { defer d.wg.Done(); d.serveControl(d.ctl) }()
	if d.mtx, err = listenMetrics(ctx, cfg); err != nil {
		return nil, err
	} else if d.mtx != nil {
		d.serveMetrics(d.mtx)
	}

	// `wg show` support is a convenience: a daemon that may not create
	// /var/run/wireguard (no root) still runs.
	if uf, err := ipc.UAPIOpen(cfg.Interface); err != nil {
		d.log.Warn("no UAPI socket: `wg show` will not see this daemon", slog.String("interface", cfg.Interface), slog.Any("err", err))
	} else if d.uapi, err = ipc.UAPIListen(cfg.Interface, uf); err != nil {
		uf.Close()
		d.log.Warn("no UAPI socket: `wg show` will not see this daemon", slog.String("interface", cfg.Interface), slog.Any("err", err))
	} else {
		d.wg.Add(1)
		go func() { defer d.wg.Done(); d.serveUAPI() }()
	}

	d.log.Info("overlay up",
		slog.String("self", self.Name), slog.String("mode", d.mode.String()), slog.String("network", self.Network.Name),
		slog.String("address", self.Address.String()), slog.String("face", self.Face.String()),
		slog.Int("udp_port", int(d.listen)), slog.String("tcp_listen", cfg.TCPListen), slog.Int("peers", len(f.Peers)-1),
		slog.String("control", cfg.ControlPath), slog.String("interface", cfg.Interface))
	return d, nil
}

// Run blocks until ctx ends, then shuts the daemon down. It returns early,
// with an error, if the WireGuard device or the plane's TUN fails.
func (d *Daemon) Run(ctx context.Context) error {
	select {
	case <-ctx.Done():
	case <-d.dev.Wait():
	case <-d.tun.parked:
	}
	if ctx.Err() == nil && !d.closing() {
		d.Close()
		return errors.New("WireGuard device closed")
	}
	return d.Close()
}

// closing reports whether Close has begun.
func (d *Daemon) closing() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.closed
}

// ErrClosed is what Reload returns once Close has begun.
var ErrClosed = errors.New("overlayd is shutting down: reload refused")

// Close stops everything in order: a Reload in progress finishes and none
// starts after; no new control, UAPI or metrics requests, and those in
// progress are ended; then the stack, whose connections end with resets
// that the still-running WireGuard device carries to the peers (so their
// nodes see the close at once, not after a keepalive timeout); then the
// device. The daemon is the only owner of these: nothing closes them from a
// context. Safe to call more than once and concurrently: every call returns
// when the daemon is closed, with the first call's result.
func (d *Daemon) Close() error {
	d.closeOnce.Do(func() { d.closeErr = d.close() })
	return d.closeErr
}

func (d *Daemon) close() error {
	d.mu.Lock() // waits for a Reload in progress
	d.closed = true
	d.mu.Unlock()
	d.cancel()
	close(d.stop)
	if d.ctl != nil {
		d.ctl.Close()
	}
	if d.uapi != nil {
		d.uapi.Close()
	}
	if d.srv != nil {
		d.stopMetrics()
	} else if d.mtx != nil {
		d.mtx.Close()
	}
	d.reqs.closeAll()
	var err error
	if d.plane != nil {
		err = d.plane.Close()
	}
	if d.dev != nil {
		drain(d.tun, d.bind) // the resets the plane queued leave first
		d.dev.Close()
	}
	d.wg.Wait()
	return err
}

// load reads the peer file (and, with trust, checks its signature) and
// finds this host in it, checking that the private key we hold is the one
// the file names for us.
func (d *Daemon) load() (*peers.File, *peers.Peer, *peers.Version, error) {
	file, sig, err := d.readPeerFile()
	if err != nil {
		return nil, nil, nil, err
	}
	f, version, err := d.checkPeerFile(d.cfg.PeerFile, file, sig)
	if err != nil {
		d.logRefusal(err)
		return nil, nil, nil, err
	}
	self := f.Peer(d.cfg.Self)
	if self == nil {
		return nil, nil, nil, fmt.Errorf("%s: no peer named %q (the --self name must be one of the file's peers)", d.cfg.PeerFile, d.cfg.Self)
	}
	pub, err := peers.PublicKey(d.private)
	if err != nil {
		return nil, nil, nil, err
	}
	if pub != self.PublicKey {
		return nil, nil, nil, fmt.Errorf("%s:%d: peers.%s.public_key: does not match the private key in %s (its public key is %s)",
			d.cfg.PeerFile, self.Line, self.Name, d.cfg.PrivateKeyFile, pub)
	}
	return f, self, version, nil
}

// Reload applies the peer file anew, as a difference: unchanged peers keep
// their WireGuard sessions and connections. A bad file changes nothing.
func (d *Daemon) Reload(ctx context.Context) error {
	return d.apply(ctx, d.cfg.PeerFile, d.readPeerFile)
}

// ApplyPeerFile applies a peer file that came from anywhere (the file on
// disk, an etcd key), named source in logs and errors, as Reload applies
// the file on disk: checked against the trust policy when Config.Trust is
// set (sig is the armored SSH signature; ignored otherwise), and a bad or
// refused file changes nothing.
func (d *Daemon) ApplyPeerFile(ctx context.Context, source string, file, sig []byte) error {
	return d.apply(ctx, source, func() ([]byte, []byte, error) { return file, sig, nil })
}

func (d *Daemon) apply(ctx context.Context, source string, read func() (file, sig []byte, err error)) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	err := d.applyLocked(ctx, source, read)
	if err != nil {
		d.reloadErr = err.Error()
		d.reloadFails++
		if !d.logRefusal(err) {
			d.log.Error("reload rejected; still running on the last good peer file", slog.String("file", source), slog.Any("err", err))
		}
		return err
	}
	d.reloads++
	d.reloadErr = ""
	return nil
}

func (d *Daemon) applyLocked(ctx context.Context, source string, read func() (file, sig []byte, err error)) error {
	file, sig, err := read()
	if err != nil {
		return err
	}
	d.refreshKeys()
	f, version, err := d.checkPeerFile(source, file, sig)
	if err != nil {
		return err
	}
	if err := d.reloadLocked(ctx, f); err != nil {
		return err
	}
	d.appliedLocked(version)
	return nil
}

func (d *Daemon) reloadLocked(ctx context.Context, f *peers.File) error {
	self, newKey, err := d.findSelf(f)
	if err != nil {
		return err
	}
	if self.Address != d.self.Address {
		return fmt.Errorf("%s:%d: peers.%s.address changed from %s to %s: restart overlayd to move this host", d.cfg.PeerFile, self.Line, self.Name, d.self.Address, self.Address)
	}
	if m, err := modeOf(d.cfg, f, self); err != nil {
		return err
	} else if m != d.mode {
		return fmt.Errorf("%s:%d: peers.%s.mode changed from %s to %s: restart overlayd to change mode", d.cfg.PeerFile, self.Line, self.Name, d.mode, m)
	}
	// Only the partners are WireGuard peers: a policy change adds and
	// removes peers here as it adds and removes partners. Only the entries
	// of partners added, removed or changed are built and compared.
	partners := f.Partners(self)
	c := d.changePartnersLocked(ctx, f, partners)
	want := c.want
	var diff string
	if c.full {
		diff = uapiDiff(d.have, want)
	} else {
		diff = uapiDiffOf(d.have, want, c.keys())
	}
	if diff != "" {
		if err := d.dev.IpcSet(diff); err != nil {
			// UAPI is not transactional: start the next reload's
			// difference from what the device holds now.
			d.have, d.haveExact = d.deviceHave(), false
			return fmt.Errorf("apply WireGuard changes: %w", err)
		}
	}
	if err := d.switchKey(newKey, self); err != nil {
		// The device already holds this file's peers: the next reload's
		// difference starts from what it holds, or a peer added here
		// and dropped by the next file would stay configured.
		d.have, d.haveExact = d.deviceHave(), false
		return err
	}
	d.plane.Apply(f, self)
	if err := d.writeInetrc(f, self); err != nil {
		d.log.Error("inetrc not updated", slog.Any("err", err))
	}
	if err := d.writeErlangHosts(f, self); err != nil {
		d.log.Error(".hosts.erlang not updated", slog.Any("err", err))
	}
	added, removed, changed := summarize(d.file, f)
	d.log.Info("peer file reloaded", slog.String("file", f.Name), slog.Uint64("serial", f.Serial),
		slog.Int("peers", len(f.Peers)-1), slog.Int("added", added), slog.Int("removed", removed), slog.Int("changed", changed),
		slog.Int("rules", len(f.Rules)))
	have := d.have
	d.strangers.setSnapshot(&peers.Snapshot{File: f, Self: self})
	d.file, d.self, d.partners, d.have, d.haveExact, d.loadedAt = f, self, partners, want, true, time.Now()
	d.configuredPathsLocked(have, c) // a changed endpoint may take another path
	returnMemory(added + removed)
	return nil
}

// bigApply is how many peers added (or removed) at once make an apply big
// enough to be worth a collection afterwards.
const bigApply = 1000

// returnMemory hands the garbage of an apply of peers peers (at least
// bigApply) back to the system. Loading
// 10,000 peers leaves tens of MiB of parse and set-up garbage that the Go
// runtime would keep resident for minutes (issue 13: VmRSS within 128 MiB
// with 10,000 peers); a collection costs some milliseconds per 100 MiB of
// live heap, once per such apply.
func returnMemory(peers int) {
	if peers >= bigApply {
		debug.FreeOSMemory()
	}
}

// deviceHave is the peers the device holds, by key only: after a failed
// IpcSet, a difference from it removes every peer not wanted and sets
// every wanted one in full.
func (d *Daemon) deviceHave() map[peers.Key]wgPeer {
	text, err := d.dev.IpcGet()
	if err != nil {
		return nil
	}
	have := make(map[peers.Key]wgPeer)
	for k := range parseUAPIGet(text) {
		have[k] = wgPeer{Key: k}
	}
	return have
}

// summarize counts peers added, removed and changed between two files, for the log.
func summarize(old, cur *peers.File) (added, removed, changed int) {
	var m peers.Matcher
	for _, p := range cur.Peers {
		o := m.Find(old, p)
		switch {
		case o == nil:
			added++
		case o.PublicKey != p.PublicKey || o.Address != p.Address || o.Endpoint != p.Endpoint || o.TCPEndpoint != p.TCPEndpoint || o.Transport != p.Transport || o.Keepalive != p.Keepalive || o.Network.Name != p.Network.Name:
			changed++
		}
	}
	m = peers.Matcher{}
	for _, p := range old.Peers {
		if m.Find(cur, p) == nil {
			removed++
		}
	}
	return added, removed, changed
}

func (d *Daemon) resolve(ctx context.Context, partners []*peers.Peer) map[string]netip.AddrPort {
	eps, errs := resolveEndpoints(ctx, net.DefaultResolver, partners)
	for name, err := range errs {
		d.log.Warn("peer endpoint not resolved; it can still reach us", slog.String("peer", name), slog.Any("err", err))
	}
	return eps
}

func (d *Daemon) serveUAPI() {
	for {
		c, err := d.uapi.Accept()
		if err != nil {
			return
		}
		if !d.reqs.add(c) {
			continue // closing: the next Accept fails
		}
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			defer d.reqs.remove(c)
			d.dev.IpcHandle(c) // closes c
		}()
	}
}

// listenPortOf is the UDP port this host listens on when none is given: the
// port of its own endpoint (others dial that), else the overlay's default.
func listenPortOf(f *peers.File, self *peers.Peer) uint16 {
	if self.Endpoint != "" {
		if ap, err := netip.ParseAddrPort(self.Endpoint); err == nil {
			return ap.Port()
		}
		if i := strings.LastIndexByte(self.Endpoint, ':'); i >= 0 {
			var port uint16
			if _, err := fmt.Sscan(self.Endpoint[i+1:], &port); err == nil && port != 0 {
				return port
			}
		}
	}
	return f.Overlay.Port
}

// checkUDPPort fails early, with the port in the message, when another
// process holds the WireGuard port.
func checkUDPPort(port uint16) error {
	for _, network := range []string{"udp4", "udp6"} {
		c, err := net.ListenUDP(network, &net.UDPAddr{Port: int(port)})
		if err != nil {
			if network == "udp6" && !strings.Contains(err.Error(), "address already in use") {
				continue // no IPv6 on this host
			}
			return fmt.Errorf("UDP port %d is taken (%v): stop the other process or pass --listen-port", port, err)
		}
		c.Close()
	}
	return nil
}

// invalidInitiation is wireguard-go's verbose line for a handshake it
// drops, among other reasons because its sender is no peer of the device.
const invalidInitiation = "Received invalid initiation message from %s"

// wgLogger routes wireguard-go's logs into slog: its verbose chatter at
// debug, its errors at warn (they are about single packets or peers). A
// dropped handshake initiation also goes to refused, with its endpoint.
func wgLogger(log *slog.Logger, refused func(endpoint string)) *device.Logger {
	l := log.With(slog.String("component", "wireguard"))
	return &device.Logger{
		Verbosef: func(format string, args ...any) {
			if format == invalidInitiation && len(args) == 1 && refused != nil {
				if ep, ok := args[0].(string); ok {
					refused(ep)
				}
			}
			if l.Enabled(context.Background(), slog.LevelDebug) {
				l.Debug(fmt.Sprintf(format, args...))
			}
		},
		Errorf: func(format string, args ...any) { l.Warn(fmt.Sprintf(format, args...)) },
	}
}

// Status reports this host and every peer.
func (d *Daemon) Status() control.Status {
	d.mu.Lock()
	f, self, have := d.file, d.self, d.have
	st := control.Status{
		Self: self.Name, Network: self.Network.Name, Mode: d.mode.String(), Address: self.Address.String(), Face: self.Face.String(),
		ListenPort: d.listen, PeerFile: d.cfg.PeerFile, Interface: d.cfg.Interface,
		LoadedAt: d.loadedAt, Reloads: d.reloads, ReloadErr: d.reloadErr, Uptime: time.Since(d.started),
		PeerFileSerial: f.Serial,
	}
	d.mu.Unlock()
	processStats(&st)

	wgState := d.wgState()
	conns := d.plane.Stats()
	if len(f.Peers) > 1 {
		st.Peers = make([]control.PeerStatus, 0, len(f.Peers)-1)
	}
	for _, p := range f.Peers {
		if p.Name == self.Name {
			continue
		}
		ps := control.PeerStatus{Name: p.Name, Network: p.Network.Name, Address: p.Address.String(), Face: p.Face.String()}
		if _, ok := have[p.PublicKey]; !ok {
			ps.Unreachable = true // not a partner: listed, but not a WireGuard peer
		}
		if w, ok := wgState[p.PublicKey]; ok {
			ps.Endpoint, ps.Transport, ps.LastHandshake, ps.RxBytes, ps.TxBytes = w.Endpoint, w.Transport, w.LastHandshake, w.Rx, w.Tx
		}
		if c, ok := conns[p.Name]; ok {
			ps.OpenConns, ps.Denials = c.Open, c.Denials
		}
		st.Peers = append(st.Peers, ps)
	}
	d.addOpsStatus(&st)
	st.Source = d.sourceStatus()
	// A host the policy keeps out is refused by WireGuard, before the
	// plane could count it: its dropped handshakes are its denials.
	hs := d.strangers.refusals()
	for i := range st.Peers {
		if n := hs[st.Peers[i].Name]; n > 0 {
			st.Peers[i].Denials += n
			st.Peers[i].DeniedIn += n
		}
	}
	return st
}
