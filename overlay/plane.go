package overlay

import (
	"fmt"
	"log/slog"

	"golang.zx2c4.com/wireguard/conn"
	"golang.zx2c4.com/wireguard/tun"

	"github.com/nodewire/nodewire/netstack"
	"github.com/nodewire/nodewire/overlay/packetfilter"
	"github.com/nodewire/nodewire/overlay/rxlimit"
	"github.com/nodewire/nodewire/peers"
)

// dataPlane carries packets between WireGuard and this host's sockets and
// enforces the policy on them: the userspace stack (the default) or, in TUN
// mode, the kernel interface behind the packet filter.
type dataPlane interface {
	TUN() tun.Device
	// Bind adapts the UDP socket (base) that WireGuard gets with TUN().
	Bind(base conn.Bind) conn.Bind
	Apply(f *peers.File, self *peers.Peer)
	Stats() map[string]netstack.PeerStats
	Close() error
}

// userspacePlane is the gVisor stack with faces on loopback.
type userspacePlane struct{ *netstack.Stack }

func newUserspacePlane(cfg Config, log *slog.Logger, f *peers.File, self *peers.Peer) (dataPlane, error) {
	s, err := netstack.New(netstack.Config{Logger: log, MTU: cfg.MTU, EPMDPort: cfg.EPMDPort, CongestionControl: cfg.TCPCongestion}, &peers.Snapshot{File: f, Self: self})
	if err != nil {
		return nil, fmt.Errorf("userspace stack: %w", err)
	}
	if err := s.Start(); err != nil {
		s.Close()
		return nil, err
	}
	return userspacePlane{s}, nil
}

// Bind is the plain socket: the stack copies each packet out as WireGuard
// writes it, so WireGuard's buffers come back at once.
func (u userspacePlane) Bind(base conn.Bind) conn.Bind { return base }

func (u userspacePlane) Apply(f *peers.File, self *peers.Peer) {
	u.Stack.Apply(&peers.Snapshot{File: f, Self: self})
}

// tunPlane is the kernel TUN interface of TUN mode, wrapped in the packet
// filter: WireGuard reads and writes the filter, never the raw device.
type tunPlane struct {
	filter *packetfilter.Filter
	rx     *rxlimit.Limiter
	dev    tun.Device // filter, counted by rx
}

// rxHeldMax bounds the received packets WireGuard holds in TUN mode, each
// in a 64 KiB buffer: 256 is 16 MiB, two receive batches (rxlimit). Without
// it a receiving overlayd held up to the sender's TCP window: in `make
// bench`, 172-190 MiB peak VmRSS, with it 43 MiB at the same bulk speed.
const rxHeldMax = 256

func newTUNPlane(cfg Config, log *slog.Logger, f *peers.File, self *peers.Peer) (dataPlane, error) {
	mtu := cfg.MTU
	if mtu == 0 {
		mtu = defaultDeviceMTU
	}
	dev, err := createKernelTUN(cfg.Interface, mtu, self.Address, f.Overlay.Prefix)
	if err != nil {
		return nil, err
	}
	filter := packetfilter.New(dev, packetfilter.Config{Logger: log, EPMDPort: cfg.EPMDPort}, &peers.Snapshot{File: f, Self: self})
	rx := rxlimit.New(rxHeldMax)
	return &tunPlane{filter: filter, rx: rx, dev: rx.TUN(filter)}, nil
}

func (p *tunPlane) TUN() tun.Device { return p.dev }

// Bind is the socket behind the receive limit: the kernel TUN takes a
// packet only when WireGuard writes it, so what WireGuard reads faster
// than it writes stays in WireGuard's buffers unless the read waits.
func (p *tunPlane) Bind(base conn.Bind) conn.Bind { return p.rx.Bind(base) }

func (p *tunPlane) Apply(f *peers.File, self *peers.Peer) {
	p.filter.Apply(&peers.Snapshot{File: f, Self: self})
}

// Stats maps the filter's counts onto the userspace stack's: open
// connections are live flows.
func (p *tunPlane) Stats() map[string]netstack.PeerStats {
	out := make(map[string]netstack.PeerStats)
	for name, s := range p.filter.Stats() {
		out[name] = netstack.PeerStats{Open: int64(s.Flows), DeniedIn: s.DeniedIn, DeniedOut: s.DeniedOut, Denials: s.DeniedIn + s.DeniedOut}
	}
	return out
}

// Close closes the TUN device, which removes the interface with its address
// and route. The WireGuard device closes it too; a second close is a no-op.
func (p *tunPlane) Close() error { return p.filter.Close() }
