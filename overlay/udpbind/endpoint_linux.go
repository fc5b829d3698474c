package udpbind

import (
	"encoding/binary"
	"net"
	"net/netip"
	"strconv"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/conn"
)

var _ conn.Endpoint = (*Endpoint)(nil)

// Endpoint is a peer address as this Bind sees it: the remote address and,
// for an endpoint learned from a received packet, the local address and
// interface the packet arrived on (the sticky source), used as the source of
// what is sent back. Everything but the "cleared" flag is fixed at creation,
// so one Endpoint can be shared by every packet from the same source.
type Endpoint struct {
	dst     netip.AddrPort
	sa      unix.RawSockaddrInet6 // dst as a raw sockaddr (an Inet4 one for IPv4)
	salen   uint32
	src     netip.Addr // local address, invalid when unknown
	ifindex int32      // interface the packet arrived on
	cleared atomic.Bool
}

func newEndpoint(dst netip.AddrPort, src netip.Addr, ifindex int32) *Endpoint {
	e := &Endpoint{dst: dst, src: src, ifindex: ifindex}
	addr := dst.Addr()
	if addr.Is4() || addr.Is4In6() {
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&e.sa))
		sa.Family = unix.AF_INET
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], dst.Port())
		sa.Addr = addr.Unmap().As4()
		e.salen = unix.SizeofSockaddrInet4
	} else {
		e.sa.Family = unix.AF_INET6
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&e.sa.Port))[:], dst.Port())
		e.sa.Addr = addr.As16()
		e.sa.Scope_id = zoneIndex(addr.Zone())
		e.salen = unix.SizeofSockaddrInet6
	}
	return e
}

// is6 reports whether e is sent through the IPv6 socket.
func (e *Endpoint) is6() bool { return e.sa.Family == unix.AF_INET6 }

// sticky reports whether sends to e should carry its source address.
func (e *Endpoint) sticky() bool { return e.src.IsValid() && !e.cleared.Load() }

// ClearSrc forgets the sticky source until the next packet from this peer
// arrives, as StdNetBind's fresh per-packet endpoints would.
func (e *Endpoint) ClearSrc() {
	if e.src.IsValid() && !e.cleared.Load() {
		e.cleared.Store(true)
	}
}

// SrcIP returns the sticky source address, or the zero Addr if none.
func (e *Endpoint) SrcIP() netip.Addr {
	if !e.sticky() {
		return netip.Addr{}
	}
	return e.src
}

// SrcIfidx returns the index of the interface the source was learned on.
func (e *Endpoint) SrcIfidx() int32 {
	if !e.sticky() {
		return 0
	}
	return e.ifindex
}

func (e *Endpoint) SrcToString() string { return e.SrcIP().String() }
func (e *Endpoint) DstToString() string { return e.dst.String() }
func (e *Endpoint) DstIP() netip.Addr   { return e.dst.Addr() }

// DstToBytes is used for mac2 cookies, only under handshake load.
func (e *Endpoint) DstToBytes() []byte {
	b, _ := e.dst.MarshalBinary()
	return b
}

// zoneIndex turns an IPv6 zone (interface name or number) into a scope id.
func zoneIndex(zone string) uint32 {
	if zone == "" {
		return 0
	}
	if n, err := strconv.ParseUint(zone, 10, 32); err == nil {
		return uint32(n)
	}
	if ifi, err := net.InterfaceByName(zone); err == nil {
		return uint32(ifi.Index)
	}
	return 0
}

// zoneName turns a scope id into the zone string netip uses.
func zoneName(index uint32) string {
	if ifi, err := net.InterfaceByIndex(int(index)); err == nil {
		return ifi.Name
	}
	return strconv.FormatUint(uint64(index), 10)
}

// sourceKey identifies a received packet's endpoint: remote address, port
// and scope, local address and interface. It has no padding, so the map
// hashes and compares it as plain memory.
type sourceKey struct {
	addr    [16]byte
	local   [16]byte
	port    uint32
	scope   uint32
	ifindex int32
}

// endpointCache maps sources to their Endpoint so that a known source costs
// no allocation. It is owned by one receiver (under its lock) and bounded:
// when full, an arbitrary entry is dropped (endpoints already handed out stay
// valid; the next packet from a dropped source makes a new one).
type endpointCache struct {
	m      map[sourceKey]*Endpoint
	max    int
	is6    bool
	last   sourceKey // one-entry front cache: batches are mostly one source
	lastEP *Endpoint
}

func newEndpointCache(max int, is6 bool) endpointCache {
	return endpointCache{m: make(map[sourceKey]*Endpoint), max: max, is6: is6}
}

func (c *endpointCache) get(k *sourceKey) *Endpoint {
	e := c.lastEP
	if e == nil || *k != c.last {
		e = c.m[*k]
		if e == nil {
			e = c.make(k)
			if len(c.m) >= c.max {
				for old := range c.m {
					delete(c.m, old)
					break
				}
			}
			c.m[*k] = e
		}
		c.last, c.lastEP = *k, e
	}
	if e.cleared.Load() {
		// A new packet re-learns the source, as it would with StdNetBind.
		e.cleared.Store(false)
	}
	return e
}

func (c *endpointCache) make(k *sourceKey) *Endpoint {
	var dst netip.AddrPort
	var src netip.Addr
	if c.is6 {
		a := netip.AddrFrom16(k.addr)
		if k.scope != 0 {
			a = a.WithZone(zoneName(k.scope))
		}
		dst = netip.AddrPortFrom(a, uint16(k.port))
		if k.ifindex != 0 || k.local != [16]byte{} {
			src = netip.AddrFrom16(k.local)
		}
	} else {
		dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(k.addr[:4])), uint16(k.port))
		if k.ifindex != 0 || k.local != [16]byte{} {
			src = netip.AddrFrom4([4]byte(k.local[:4]))
		}
	}
	return newEndpoint(dst, src, k.ifindex)
}
