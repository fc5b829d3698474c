package overlay

import (
	"log/slog"
	"net/netip"
	"time"

	"github.com/nodewire/nodewire/netstack"
	"github.com/nodewire/nodewire/peers"
)

// What WireGuard adds to an inner packet: its data header (type, receiver,
// counter: 16 bytes) and the Poly1305 tag (16), then UDP (8) and the outer
// IP header (20 for IPv4, 40 for IPv6). Padding to 16 bytes stays inside
// the inner MTU.
const (
	overheadIPv4 = 32 + 8 + 20
	overheadIPv6 = 32 + 8 + 40
)

const (
	// safeOuter is the largest datagram sent to a peer unless --mtu says
	// the paths carry more. A route shows only the first hop; a tunnel
	// further on (IPsec, GRE, VXLAN, PPPoE, a cloud VPC) may drop anything
	// larger than ~1400 bytes without an ICMP error, and no route lookup
	// sees that. 1400 keeps the inner TCP segment at 1288 bytes over IPv4
	// (1272 over IPv6) instead of 1380, at no measurable cost in daemon CPU
	// per byte on a clean link (e2e's BenchmarkUnderlayMTUCost).
	safeOuter = 1400

	// innerTCPHeaders is an inner IPv4 header and a TCP header: MSS =
	// inner MTU - 40.
	innerTCPHeaders = 20 + 20

	// defaultDeviceMTU is the inner MTU of the device (the userspace
	// stack's link, TUN mode's interface) without --mtu: packets other than
	// TCP (ICMP, UDP) keep it, and the kernel fragments those of them that
	// outgrow a path.
	defaultDeviceMTU = netstack.DefaultMTU

	// paddingMultiple is WireGuard's padding unit (device.PaddingMultiple).
	paddingMultiple = 16

	// minInnerMTU is IPv4's minimum; a route smaller than this plus the
	// overhead cannot carry the overlay at all.
	minInnerMTU = 576

	// pathRefresh is how often the routes to the peers' current endpoints
	// are looked up again: a roaming peer, a changed route, or a path MTU
	// the kernel learned from an ICMP error.
	pathRefresh = 15 * time.Second
)

// overhead is WireGuard's outer overhead for an endpoint's family.
func overhead(ep netip.Addr) int {
	if ep.Is4() || ep.Is4In6() {
		return overheadIPv4
	}
	return overheadIPv6
}

// innerMTU is the inner MTU of the path to a peer at ep (invalid when it is
// not known yet), whose route carries routeMTU bytes (0: unknown):
//
//   - the route is a hard limit: no datagram larger than it is ever sent
//     (wg-quick's "route MTU - 80", with the real overhead of ep's family);
//   - below that, safeOuter unless the operator's override (--mtu, mtu:)
//     replaces it: the override tells what the paths carry beyond the
//     first hop, which the route cannot.
//
// WireGuard pads every packet to a multiple of 16 bytes, up to the device
// MTU (the override, else 1420): a limit below the device MTU is rounded
// down to a multiple of 16, or a padded packet would outgrow it by up to 15
// bytes. With no endpoint known the overhead is IPv6's, the larger.
func innerMTU(ep netip.Addr, routeMTU, override int) int {
	oh := overheadIPv6
	if ep.IsValid() {
		oh = overhead(ep)
	}
	device, mtu := defaultDeviceMTU, safeOuter-oh
	if override > 0 {
		device, mtu = override, override
	}
	if routeMTU > 0 {
		mtu = min(mtu, routeMTU-oh)
	}
	if mtu < device {
		mtu &^= paddingMultiple - 1
	}
	return max(mtu, minInnerMTU)
}

// pathInfo is what the daemon knows of the path to one peer.
type pathInfo struct {
	Endpoint netip.AddrPort // invalid: none known
	RouteMTU int            // 0: unknown
	MTU      int            // inner MTU
}

// pathTable computes every other peer's path and the TCP MSS table for
// mssDevice. endpoints are WireGuard's current ones (configured or roamed).
func pathTable(f *peers.File, self *peers.Peer, endpoints map[peers.Key]netip.AddrPort,
	route func(netip.Addr) (int, error), override int) (map[netip.Addr]uint16, map[string]pathInfo, map[string]error) {
	mss := make(map[netip.Addr]uint16, len(f.Peers))
	paths := make(map[string]pathInfo, len(f.Peers))
	var errs map[string]error
	for _, p := range f.Peers {
		if p.Name == self.Name {
			continue
		}
		pi := pathInfo{Endpoint: endpoints[p.PublicKey]}
		if pi.Endpoint.IsValid() {
			m, err := route(pi.Endpoint.Addr())
			if err != nil {
				if errs == nil {
					errs = make(map[string]error)
				}
				errs[p.Name] = err
			} else {
				pi.RouteMTU = m
			}
		}
		pi.MTU = innerMTU(pi.Endpoint.Addr(), pi.RouteMTU, override)
		paths[p.Name] = pi
		mss[p.Address] = uint16(pi.MTU - innerTCPHeaders)
	}
	return mss, paths, errs
}

// refreshPathsLocked looks up the route to every peer's current endpoint
// and installs the MSS table; it logs each peer whose path changed. d.mu
// is held.
func (d *Daemon) refreshPathsLocked() {
	endpoints := make(map[peers.Key]netip.AddrPort)
	if text, err := d.dev.IpcGet(); err == nil {
		for k, w := range parseUAPIGet(text) {
			if ap, err := netip.ParseAddrPort(w.Endpoint); err == nil {
				endpoints[k] = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
			}
		}
	}
	table, paths, errs := pathTable(d.file, d.self, endpoints, d.route, d.cfg.MTU)
	for name, err := range errs {
		if _, seen := d.routeErrs[name]; !seen {
			d.log.Warn("no route MTU for peer; using the default", slog.String("peer", name), slog.Any("err", err))
		}
	}
	d.routeErrs = errs
	for name, pi := range paths {
		if old, ok := d.paths[name]; ok && old == pi {
			continue
		}
		ep := "none yet"
		if pi.Endpoint.IsValid() {
			ep = pi.Endpoint.String()
		}
		d.log.Info("path MTU", slog.String("peer", name), slog.String("endpoint", ep),
			slog.Int("route_mtu", pi.RouteMTU), slog.Int("inner_mtu", pi.MTU), slog.Int("tcp_mss", pi.MTU-innerTCPHeaders))
	}
	d.mss.setPeers(table)
	d.paths = paths
}

// watchPaths refreshes the paths every pathRefresh until stop closes.
func (d *Daemon) watchPaths(stop <-chan struct{}) {
	t := time.NewTicker(pathRefresh)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			d.mu.Lock()
			d.refreshPathsLocked()
			d.mu.Unlock()
		}
	}
}
