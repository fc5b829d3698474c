package udpbind

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

const (
	// socketBufferSize is wireguard-go's: 7 MiB, forced past
	// net.core.{r,w}mem_max when we have CAP_NET_ADMIN.
	socketBufferSize = 7 << 20

	// udpSegmentMaxDatagrams is the kernel's limit of segments per
	// UDP_SEGMENT send and per UDP_GRO receive.
	udpSegmentMaxDatagrams = 64

	// Payload limits past which sendmsg fails with EMSGSIZE.
	maxIPv4PayloadLen = 1<<16 - 1 - 20 - 8
	maxIPv6PayloadLen = 1<<16 - 1 - 8
)

// oobSize holds one PKTINFO (the IPv6 one is the larger) and one
// UDP_SEGMENT or UDP_GRO control message (an int when received).
var oobSize = unix.CmsgSpace(unix.SizeofInet6Pktinfo) + unix.CmsgSpace(4)

// mmsghdr is struct mmsghdr; Go's natural padding matches C's on 32- and
// 64-bit platforms.
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
}

// socket is one open UDP socket of a Bind (IPv4 or IPv6). It is a
// *net.UDPConn so that reads and writes wait in the netpoller and Close
// wakes them with net.ErrClosed.
type socket struct {
	conn *net.UDPConn
	rc   syscall.RawConn
	net  string // "udp4" or "udp6"
	is6  bool
	gso  atomic.Bool // UDP_SEGMENT works; cleared if the device lacks checksum offload
	gro  bool        // UDP_GRO is on: received messages may hold several datagrams
}

func listen(network string, port int) (*socket, int, error) {
	lc := net.ListenConfig{Control: func(network, _ string, c syscall.RawConn) error {
		var err error
		if cerr := c.Control(func(fd uintptr) { err = setOptions(int(fd), network) }); cerr != nil {
			return cerr
		}
		return err
	}}
	pc, err := lc.ListenPacket(context.Background(), network, ":"+strconv.Itoa(port))
	if err != nil {
		return nil, 0, err
	}
	uc := pc.(*net.UDPConn)
	rc, err := uc.SyscallConn()
	if err != nil {
		uc.Close()
		return nil, 0, err
	}
	s := &socket{conn: uc, rc: rc, net: network, is6: network == "udp6"}
	err = rc.Control(func(fd uintptr) {
		_, errSeg := unix.GetsockoptInt(int(fd), unix.IPPROTO_UDP, unix.UDP_SEGMENT)
		s.gso.Store(errSeg == nil)
		s.gro = enableGRO(int(fd))
	})
	if err != nil {
		uc.Close()
		return nil, 0, err
	}
	return s, uc.LocalAddr().(*net.UDPAddr).Port, nil
}

// setOptions runs before bind: socket buffers, PKTINFO for sticky sources,
// and IPv6-only for the IPv6 socket (IPv4 has its own).
func setOptions(fd int, network string) error {
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, socketBufferSize) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, socketBufferSize)
	}
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, socketBufferSize) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, socketBufferSize)
	}
	switch network {
	case "udp4":
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IP, unix.IP_PKTINFO, 1); err != nil {
			return os.NewSyscallError("setsockopt IP_PKTINFO", err)
		}
	case "udp6":
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1); err != nil {
			return os.NewSyscallError("setsockopt IPV6_RECVPKTINFO", err)
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err != nil {
			return os.NewSyscallError("setsockopt IPV6_V6ONLY", err)
		}
	default:
		return fmt.Errorf("unhandled network %q: %w", network, unix.EINVAL)
	}
	return nil
}

// enableGRO turns UDP_GRO on and reports whether it is on. Kernels before
// 5.12 accept the option but cannot report it; there we turn it back off
// rather than guess, since an unnoticed coalesced message would be one
// oversized packet.
func enableGRO(fd int) bool {
	if unix.SetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_GRO, 1) != nil {
		return false
	}
	if v, err := unix.GetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_GRO); err == nil {
		return v == 1
	}
	_ = unix.SetsockoptInt(fd, unix.IPPROTO_UDP, unix.UDP_GRO, 0)
	return false
}

func (s *socket) setMark(mark uint32) error {
	var operr error
	if err := s.rc.Control(func(fd uintptr) {
		operr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_MARK, int(mark))
	}); err != nil {
		return err
	}
	if operr != nil {
		return fmt.Errorf("%s: %w", s.net, os.NewSyscallError("setsockopt SO_MARK", operr))
	}
	return nil
}

// opError wraps a failed recvmmsg/sendmmsg the way x/net does for
// StdNetBind, so wireguard-go classifies it (Temporary or not) the same.
func (s *socket) opError(op string, errno syscall.Errno) error {
	return &net.OpError{Op: op, Net: s.net, Source: s.conn.LocalAddr(), Err: os.NewSyscallError(op, errno)}
}
