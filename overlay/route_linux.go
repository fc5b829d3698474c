package overlay

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// routeMTU asks the kernel (RTM_GETROUTE, as `ip route get` does) for the
// route to dst and returns the MTU a datagram to dst may have: the route's
// own MTU (a route `mtu` metric, or a path MTU the kernel learned from an
// ICMP "fragmentation needed") when it has one, else the output interface's.
func routeMTU(dst netip.Addr) (int, error) {
	return routeMTUVia(dst, interfaceMTU)
}

// routeMTUVia is routeMTU asking ifMTU for an output interface's MTU.
func routeMTUVia(dst netip.Addr, ifMTU func(int) (int, error)) (int, error) {
	dst = dst.Unmap()
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return 0, os.NewSyscallError("socket netlink", err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return 0, os.NewSyscallError("bind netlink", err)
	}
	tv := unix.Timeval{Sec: 2}
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	const seq = 1
	if err := unix.Sendto(fd, routeRequest(dst, seq), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return 0, os.NewSyscallError("sendto netlink", err)
	}
	buf := make([]byte, 1<<16)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return 0, os.NewSyscallError("recvfrom netlink", err)
		}
		oif, mtu, done, err := parseRouteReply(buf[:n], seq)
		if err != nil {
			return 0, fmt.Errorf("route to %s: %w", dst, err)
		}
		if !done {
			continue
		}
		if mtu > 0 {
			return mtu, nil
		}
		m, err := ifMTU(oif)
		if err != nil {
			return 0, fmt.Errorf("route to %s: output interface %d: %w", dst, oif, err)
		}
		return m, nil
	}
}

// interfaceMTU is the MTU of the interface with index i.
func interfaceMTU(i int) (int, error) {
	ifi, err := net.InterfaceByIndex(i)
	if err != nil {
		return 0, err
	}
	return ifi.MTU, nil
}

// routeLookup is routeMTU for one pass over the partners, which asks about
// the same few output interfaces, often the same endpoint address, again
// and again: it asks the kernel once per destination and once per output
// interface (net.InterfaceByIndex dumps every link: at a 10,000-peer start
// it cost 0.3 s of CPU). Not safe for concurrent use; one pass, one lookup.
func routeLookup() func(netip.Addr) (int, error) {
	type answer struct {
		mtu int
		err error
	}
	byDst := make(map[netip.Addr]answer)
	byIf := make(map[int]int)
	ifMTU := func(i int) (int, error) {
		if m, ok := byIf[i]; ok {
			return m, nil
		}
		m, err := interfaceMTU(i)
		if err == nil {
			byIf[i] = m
		}
		return m, err
	}
	return func(dst netip.Addr) (int, error) {
		dst = dst.Unmap()
		if a, ok := byDst[dst]; ok {
			return a.mtu, a.err
		}
		m, err := routeMTUVia(dst, ifMTU)
		byDst[dst] = answer{m, err}
		return m, err
	}
}

// routeRequest is an RTM_GETROUTE message for dst: a netlink header, an
// rtmsg and one RTA_DST attribute.
func routeRequest(dst netip.Addr, seq uint32) []byte {
	family, addr := unix.AF_INET, dst.AsSlice()
	if dst.Is6() {
		family = unix.AF_INET6
	}
	attrLen := unix.SizeofRtAttr + len(addr)
	total := unix.SizeofNlMsghdr + unix.SizeofRtMsg + rtaAlign(attrLen)
	b := make([]byte, total)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], uint32(total))
	ne.PutUint16(b[4:], unix.RTM_GETROUTE)
	ne.PutUint16(b[6:], unix.NLM_F_REQUEST)
	ne.PutUint32(b[8:], seq)
	rt := b[unix.SizeofNlMsghdr:]
	rt[0] = byte(family)        // rtm_family
	rt[1] = byte(len(addr) * 8) // rtm_dst_len
	a := rt[unix.SizeofRtMsg:]
	ne.PutUint16(a[0:], uint16(attrLen))
	ne.PutUint16(a[2:], unix.RTA_DST)
	copy(a[unix.SizeofRtAttr:], addr)
	return b
}

func rtaAlign(n int) int { return (n + unix.RTA_ALIGNTO - 1) &^ (unix.RTA_ALIGNTO - 1) }

// parseRouteReply reads the kernel's answer to routeRequest: the output
// interface and the route's MTU metric (0 when the route has none). done
// is false when b holds no answer to seq yet.
func parseRouteReply(b []byte, seq uint32) (oif, mtu int, done bool, err error) {
	msgs, err := syscall.ParseNetlinkMessage(b)
	if err != nil {
		return 0, 0, false, fmt.Errorf("netlink: %w", err)
	}
	for _, m := range msgs {
		if m.Header.Seq != seq {
			continue
		}
		switch m.Header.Type {
		case unix.NLMSG_ERROR:
			if len(m.Data) < 4 {
				return 0, 0, false, errors.New("netlink: short error message")
			}
			if errno := -int32(binary.NativeEndian.Uint32(m.Data)); errno != 0 {
				return 0, 0, false, syscall.Errno(errno)
			}
		case unix.RTM_NEWROUTE:
			attrs, err := syscall.ParseNetlinkRouteAttr(&m)
			if err != nil {
				return 0, 0, false, fmt.Errorf("netlink route attributes: %w", err)
			}
			for _, a := range attrs {
				switch a.Attr.Type {
				case unix.RTA_OIF:
					if len(a.Value) >= 4 {
						oif = int(binary.NativeEndian.Uint32(a.Value))
					}
				case unix.RTA_METRICS:
					mtu = metricMTU(a.Value)
				}
			}
			if oif == 0 && mtu == 0 {
				return 0, 0, false, errors.New("no output interface")
			}
			return oif, mtu, true, nil
		}
	}
	return 0, 0, false, nil
}

// metricMTU finds RTAX_MTU among the nested attributes of RTA_METRICS.
func metricMTU(b []byte) int {
	for len(b) >= unix.SizeofRtAttr {
		l := int(binary.NativeEndian.Uint16(b[0:]))
		typ := binary.NativeEndian.Uint16(b[2:])
		if l < unix.SizeofRtAttr || l > len(b) {
			return 0
		}
		if typ == unix.RTAX_MTU && l >= unix.SizeofRtAttr+4 {
			return int(binary.NativeEndian.Uint32(b[unix.SizeofRtAttr:]))
		}
		b = b[min(rtaAlign(l), len(b)):]
	}
	return 0
}
