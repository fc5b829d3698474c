package peers

import (
	"encoding/binary"
	"net/netip"
)

// FaceOf maps an overlay address to its face: faces + (addr - overlay). In
// userspace mode a peer is reached at its face, a loopback address, so
// unmodified Erlang can connect to it without a tunnel device. The mapping is
// its own inverse: FaceOf(faces, overlay, face) is the overlay address.
// It returns the zero Addr unless both prefixes are IPv4 of the same length
// and addr lies inside overlay.
func FaceOf(overlay, faces netip.Prefix, addr netip.Addr) netip.Addr {
	if !overlay.IsValid() || !faces.IsValid() || !overlay.Addr().Is4() || !faces.Addr().Is4() ||
		!addr.Is4() || overlay.Bits() != faces.Bits() || !overlay.Contains(addr) {
		return netip.Addr{}
	}
	off := u32(addr) - u32(overlay.Masked().Addr())
	return addrOf(u32(faces.Masked().Addr()) + off)
}

// loopback is where every face must lie.
var loopback = netip.MustParsePrefix("127.0.0.0/8")

// reservedFace explains why a can not be a peer's face, or returns "".
// 127.0.0.1 is the host's own loopback, where the host's epmd and services
// already listen; 127.0.0.0 and 127.255.255.255 can not be bound.
func reservedFace(a netip.Addr) string {
	switch a {
	case netip.AddrFrom4([4]byte{127, 0, 0, 1}):
		return "the host's own loopback address"
	case netip.AddrFrom4([4]byte{127, 0, 0, 0}):
		return "the network address of 127.0.0.0/8"
	case netip.AddrFrom4([4]byte{127, 255, 255, 255}):
		return "the broadcast address of 127.0.0.0/8"
	}
	return ""
}

func u32(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

func addrOf(v uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

// lastAddr is the highest address of an IPv4 prefix.
func lastAddr(p netip.Prefix) netip.Addr {
	return addrOf(u32(p.Masked().Addr()) | hostMask(p.Bits()))
}

// hostMask has the host bits of a /bits IPv4 prefix set.
func hostMask(bits int) uint32 {
	if bits <= 0 {
		return ^uint32(0)
	}
	if bits >= 32 {
		return 0
	}
	return ^uint32(0) >> bits
}

// overlaps reports whether two IPv4 prefixes share an address.
func overlaps(a, b netip.Prefix) bool {
	return a.Contains(b.Addr()) || b.Contains(a.Addr())
}
