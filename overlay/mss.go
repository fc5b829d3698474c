package overlay

import (
	"encoding/binary"
	"net/netip"
	"sync/atomic"

	"golang.zx2c4.com/wireguard/tun"
)

// mssDevice clamps the MSS option of every TCP SYN and SYN-ACK between
// WireGuard and the data plane to what the peer's path carries, in both
// directions, so both ends of every overlay connection send segments that fit
// (iptables' TCPMSS target, per peer). The device MTU stays; only TCP, which
// is all Erlang distribution uses, is held to the path.
//
// It wraps the userspace stack's device and TUN mode's packet filter alike:
// Read carries packets from this host to peers (the peer is the
// destination), Write carries packets from peers (the peer is the source).
type mssDevice struct {
	tun.Device
	peers atomic.Pointer[map[netip.Addr]uint16] // overlay address -> MSS; nil: no clamping
}

func newMSSDevice(dev tun.Device) *mssDevice { return &mssDevice{Device: dev} }

// setPeers replaces the table: overlay address -> largest TCP MSS.
func (d *mssDevice) setPeers(m map[netip.Addr]uint16) { d.peers.Store(&m) }

func (d *mssDevice) mss(a netip.Addr) uint16 {
	if m := d.peers.Load(); m != nil {
		return (*m)[a]
	}
	return 0
}

// Read implements tun.Device.
func (d *mssDevice) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	n, err := d.Device.Read(bufs, sizes, offset)
	for i := 0; i < n; i++ {
		if sizes[i] > 0 {
			d.clamp(bufs[i][offset:offset+sizes[i]], true)
		}
	}
	return n, err
}

// Write implements tun.Device.
func (d *mssDevice) Write(bufs [][]byte, offset int) (int, error) {
	for _, b := range bufs {
		d.clamp(b[offset:], false)
	}
	return d.Device.Write(bufs, offset)
}

// clamp lowers the MSS of pkt if it is an IPv4 TCP SYN to or from a peer
// with a table entry. Everything else passes after a few byte compares.
func (d *mssDevice) clamp(pkt []byte, out bool) {
	ihl, ok := tcpSYN(pkt)
	if !ok {
		return
	}
	at := 16 // destination address
	if !out {
		at = 12
	}
	if mss := d.mss(netip.AddrFrom4([4]byte(pkt[at : at+4]))); mss != 0 {
		clampMSS(pkt, ihl, mss)
	}
}

// tcpSYN reports whether pkt is a whole (unfragmented) IPv4 TCP segment with
// SYN set, and its IP header length.
func tcpSYN(pkt []byte) (ihl int, ok bool) {
	if len(pkt) < 40 || pkt[0]>>4 != 4 || pkt[9] != 6 {
		return 0, false
	}
	ihl = int(pkt[0]&0xf) * 4
	if ihl < 20 || len(pkt) < ihl+20 || binary.BigEndian.Uint16(pkt[6:])&0x3fff != 0 {
		return 0, false // bad header, or a fragment (offset or more-fragments set)
	}
	return ihl, pkt[ihl+13]&0x02 != 0
}

// clampMSS lowers the MSS option of the TCP SYN at pkt[ihl:] to mss when it
// is larger, recomputing the TCP checksum. It reports whether it changed
// the packet. A SYN without an MSS option is left alone: its sender then
// assumes 536 (RFC 9293), which fits any path.
func clampMSS(pkt []byte, ihl int, mss uint16) bool {
	total := int(binary.BigEndian.Uint16(pkt[2:]))
	if total > len(pkt) || total < ihl+20 {
		return false
	}
	tcp := pkt[ihl:total]
	doff := int(tcp[12]>>4) * 4
	if doff < 20 || doff > len(tcp) {
		return false
	}
	opts := tcp[20:doff]
	for i := 0; i < len(opts); {
		switch kind := opts[i]; kind {
		case 0: // end of options
			return false
		case 1: // no-op
			i++
			continue
		}
		if i+1 >= len(opts) || opts[i+1] < 2 || i+int(opts[i+1]) > len(opts) {
			return false
		}
		if opts[i] == 2 && opts[i+1] == 4 {
			if binary.BigEndian.Uint16(opts[i+2:]) <= mss {
				return false
			}
			binary.BigEndian.PutUint16(opts[i+2:], mss)
			tcpChecksum(pkt[12:20], tcp)
			return true
		}
		i += int(opts[i+1])
	}
	return false
}

// tcpChecksum recomputes the checksum of the IPv4 TCP segment tcp, whose
// source and destination addresses are addrs (8 bytes). SYNs are short, so
// a full sum costs less than getting an incremental one right for an
// option at an odd offset.
func tcpChecksum(addrs, tcp []byte) {
	tcp[16], tcp[17] = 0, 0
	sum := uint32(6) + uint32(len(tcp))
	for i := 0; i+1 < len(addrs); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(addrs[i:]))
	}
	n := len(tcp) &^ 1
	for i := 0; i < n; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(tcp[i:]))
	}
	if len(tcp)&1 == 1 {
		sum += uint32(tcp[len(tcp)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(tcp[16:], ^uint16(sum))
}
