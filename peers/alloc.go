package peers

import (
	"fmt"
	"net/netip"
	"sort"
)

// NextAddress is the lowest free address in network, for `overlayctl` to
// give a new peer. It skips the network's first address, its last (which
// some stacks treat as broadcast) and any address whose face could not be
// used (127.0.0.1 and the like).
func (f *File) NextAddress(network string) (netip.Addr, error) {
	nw := f.Network(network)
	if nw == nil {
		return netip.Addr{}, fmt.Errorf("unknown network %q", network)
	}
	first := u32(nw.Prefix.Addr())
	last := first | hostMask(nw.Prefix.Bits())
	for v := uint64(first) + 1; v < uint64(last); v++ {
		a := addrOf(uint32(v))
		if f.peerByAddr[a] != nil {
			continue
		}
		if reservedFace(FaceOf(f.Overlay.Prefix, f.Overlay.Faces, a)) != "" {
			continue
		}
		return a, nil
	}
	return netip.Addr{}, fmt.Errorf("network %s (%s) has no free address", nw.Name, nw.Prefix)
}

// NextNetworkPrefix is the lowest prefix of length bits inside the overlay
// that overlaps no network, for `overlayctl` to give a new network.
func (f *File) NextNetworkPrefix(bits int) (netip.Prefix, error) {
	ov := f.Overlay.Prefix
	if !ov.IsValid() || !ov.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("the overlay has no IPv4 prefix")
	}
	if bits < ov.Bits() || bits > 32 {
		return netip.Prefix{}, fmt.Errorf("/%d does not fit in overlay %s (use /%d to /32)", bits, ov, ov.Bits())
	}
	taken := make([]netip.Prefix, 0, len(f.Networks))
	for _, nw := range f.Networks {
		taken = append(taken, nw.Prefix)
	}
	sort.Slice(taken, func(i, j int) bool { return taken[i].Addr().Less(taken[j].Addr()) })
	size := uint64(hostMask(bits)) + 1
	end := uint64(u32(lastAddr(ov)))
	cand := uint64(u32(ov.Addr()))
	// Each step either returns or jumps past a taken network, so this ends
	// after at most len(taken)+1 candidates.
	for cand+size-1 <= end {
		p := netip.PrefixFrom(addrOf(uint32(cand)), bits)
		var clash *netip.Prefix
		for i := range taken {
			if overlaps(taken[i], p) {
				clash = &taken[i]
				break
			}
		}
		if clash == nil {
			return p, nil
		}
		next := uint64(u32(lastAddr(*clash))) + 1
		cand = (next + size - 1) / size * size
	}
	return netip.Prefix{}, fmt.Errorf("no free /%d left in overlay %s", bits, ov)
}
