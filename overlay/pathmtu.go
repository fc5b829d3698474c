package overlay

import (
	"log/slog"
	"maps"
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

// pathSeen is what WireGuard says of a peer's path: its current endpoint
// (configured or roamed) and the bytes it has carried both ways.
type pathSeen struct {
	Endpoint netip.AddrPort
	Bytes    uint64
}

// pathState is one peer's path as the last refresh left it.
type pathState struct {
	Info pathInfo
	Seen pathSeen
	Err  error // the route look-up's, if it failed
}

// pathTable computes the path of each partner (the peers WireGuard knows)
// and the TCP MSS table for mssDevice. seen is WireGuard's current view.
// A peer whose endpoint and byte count are as in prev keeps its route MTU
// without a look-up: nothing moved it, and a path MTU the kernel learns
// from an ICMP error needs traffic to be learned. So a refresh of an idle
// 10,000-peer overlay costs no netlink round trip, and a reload looks up
// only the peers it adds or moves.
func pathTable(partners []*peers.Peer, seen map[peers.Key]pathSeen, prev map[string]pathState,
	route func(netip.Addr) (int, error), override int) (map[netip.Addr]uint16, map[string]pathState) {
	mss := make(map[netip.Addr]uint16, len(partners))
	paths := make(map[string]pathState, len(partners))
	for _, p := range partners {
		ps := pathState{Seen: seen[p.PublicKey]}
		ps.Info.Endpoint = ps.Seen.Endpoint
		if old, ok := prev[p.Name]; ok && old.Seen == ps.Seen {
			ps.Info.RouteMTU, ps.Err = old.Info.RouteMTU, old.Err
		} else if ps.Info.Endpoint.IsValid() {
			ps.Info.RouteMTU, ps.Err = route(ps.Info.Endpoint.Addr())
			if ps.Err != nil {
				ps.Info.RouteMTU = 0
			}
		}
		ps.Info.MTU = innerMTU(ps.Info.Endpoint.Addr(), ps.Info.RouteMTU, override)
		paths[p.Name] = ps
		mss[p.Address] = uint16(ps.Info.MTU - innerTCPHeaders)
	}
	return mss, paths
}

// seenPaths is every WireGuard peer's endpoint and byte count. It takes
// the device's lock only, not the daemon's.
func (d *Daemon) seenPaths() map[peers.Key]pathSeen {
	seen := make(map[peers.Key]pathSeen)
	if text, err := d.dev.IpcGet(); err == nil {
		for k, w := range parseUAPIGet(text) {
			ps := pathSeen{Bytes: w.Rx + w.Tx}
			if ap, err := netip.ParseAddrPort(w.Endpoint); err == nil {
				ps.Endpoint = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
			}
			seen[k] = ps
		}
	}
	return seen
}

// configuredPathsLocked sets the paths after New or a reload configured
// the device from have to c.want: a peer the device kept as it was keeps
// what the last refresh saw of it (a roamed endpoint, its traffic); a new
// or changed one starts from its configured endpoint. So a reload asks
// the device nothing (an IpcGet lists every peer) and looks up only the
// routes of the peers it added or moved. Unless c is full, only the paths
// of c's partners change: the others are the last ones, copied. It
// installs the MSS table and logs each peer whose path changed. d.mu is
// held: a reload's new peers are clamped before their first packet.
func (d *Daemon) configuredPathsLocked(have map[peers.Key]wgPeer, c partnerChange) {
	seen := make(map[peers.Key]pathSeen, len(c.fresh))
	for _, p := range c.fresh {
		w := c.want[p.PublicKey]
		if h, ok := have[p.PublicKey]; ok && h == w {
			if old, ok := d.paths[p.Name]; ok {
				seen[p.PublicKey] = old.Seen
				continue
			}
		}
		seen[p.PublicKey] = pathSeen{Endpoint: w.Endpoint}
	}
	_, fresh := pathTable(c.fresh, seen, d.paths, d.routeForPass(), d.cfg.MTU)
	if c.full {
		d.installPathsLocked(fresh)
		return
	}
	paths := maps.Clone(d.paths)
	var mss map[netip.Addr]uint16
	if m := d.mss.peers.Load(); m != nil {
		mss = maps.Clone(*m)
	}
	if mss == nil {
		mss = make(map[netip.Addr]uint16, len(fresh))
	}
	// Names and addresses are unique in a file: the drops of gone never
	// touch a partner kept, and fresh's paths go in after them.
	for _, o := range c.gone {
		delete(paths, o.Name)
		delete(mss, o.Address)
	}
	maps.Copy(paths, fresh)
	d.notePathsLocked(c.fresh, paths, mss)
	d.mss.setPeers(mss)
	d.paths = paths
}

// computePaths is refreshPathsLocked's work that needs no lock.
func (d *Daemon) computePaths(partners []*peers.Peer, prev map[string]pathState, route func(netip.Addr) (int, error)) map[string]pathState {
	_, paths := pathTable(partners, d.seenPaths(), prev, route, d.cfg.MTU)
	return paths
}

// routeForPass is the route MTU lookup for one pass over the partners:
// the one a test set, else a routeLookup of its own, so that the next pass
// sees changed routes and interfaces. d.mu is held.
func (d *Daemon) routeForPass() func(netip.Addr) (int, error) {
	if d.route != nil {
		return d.route
	}
	return routeLookup()
}

// installPathsLocked makes paths current; d.mu is held.
func (d *Daemon) installPathsLocked(paths map[string]pathState) {
	mss := make(map[netip.Addr]uint16, len(paths))
	d.notePathsLocked(d.partners, paths, mss)
	d.mss.setPeers(mss)
	d.paths = paths
}

// notePathsLocked puts the MSS of each of partners that paths holds in
// mss and logs those whose path is not d.paths' one; d.mu is held.
func (d *Daemon) notePathsLocked(partners []*peers.Peer, paths map[string]pathState, mss map[netip.Addr]uint16) {
	for _, p := range partners {
		ps, ok := paths[p.Name]
		if !ok {
			continue
		}
		mss[p.Address] = uint16(ps.Info.MTU - innerTCPHeaders)
		old, had := d.paths[p.Name]
		if ps.Err != nil && (!had || old.Err == nil) {
			d.log.Warn("no route MTU for peer; using the default", slog.String("peer", p.Name), slog.Any("err", ps.Err))
		}
		if had && old.Info == ps.Info {
			continue
		}
		ep := "none yet"
		if ps.Info.Endpoint.IsValid() {
			ep = ps.Info.Endpoint.String()
		}
		d.log.Info("path MTU", slog.String("peer", p.Name), slog.String("endpoint", ep),
			slog.Int("route_mtu", ps.Info.RouteMTU), slog.Int("inner_mtu", ps.Info.MTU), slog.Int("tcp_mss", ps.Info.MTU-innerTCPHeaders))
	}
}

// watchPaths refreshes the paths every pathRefresh until stop closes. The
// device query and the route look-ups run without d.mu, so reloads,
// status and control requests never wait for them; a refresh that a
// reload overtook is dropped (the reload refreshed the paths itself).
func (d *Daemon) watchPaths(stop <-chan struct{}) {
	t := time.NewTicker(pathRefresh)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			d.mu.Lock()
			file, partners, prev, route := d.file, d.partners, d.paths, d.routeForPass()
			d.mu.Unlock()
			paths := d.computePaths(partners, prev, route)
			d.mu.Lock()
			if d.file == file && !d.closed {
				d.installPathsLocked(paths)
			}
			d.mu.Unlock()
		}
	}
}
