package udpbind

import (
	"encoding/binary"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/conn"
)

// receiver is the state of one ReceiveFunc: recvmmsg headers, addresses and
// control buffers allocated once, and the endpoint cache of its socket. The
// lock only matters if a caller runs one ReceiveFunc from several goroutines
// (wireguard-go does not).
type receiver struct {
	mu    sync.Mutex
	sock  *socket
	hdrs  []mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6
	oob   []byte
	cache endpointCache
	read  func(fd uintptr) bool // r.recvmmsg, bound once

	// recvmmsg arguments and results, for read.
	first, count, got int
	errno             syscall.Errno
}

func newReceiver(s *socket, batch, cacheSize int) *receiver {
	r := &receiver{
		sock:  s,
		hdrs:  make([]mmsghdr, batch),
		iovs:  make([]unix.Iovec, batch),
		names: make([]unix.RawSockaddrInet6, batch),
		oob:   make([]byte, batch*oobSize),
		cache: newEndpointCache(cacheSize, s.is6),
	}
	for i := range r.hdrs {
		h := &r.hdrs[i].hdr
		h.Name = (*byte)(unsafe.Pointer(&r.names[i]))
		h.Iov = &r.iovs[i]
		h.SetIovlen(1)
		h.Control = &r.oob[i*oobSize]
	}
	r.read = r.recvmmsg
	return r
}

func (r *receiver) recvmmsg(fd uintptr) bool {
	for {
		n, _, errno := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hdrs[0])), uintptr(r.count), 0, 0, 0)
		switch errno {
		case 0:
			r.got = int(n)
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false // wait in the netpoller
		default:
			r.errno = errno
			return true
		}
	}
}

// receiveIPv4 and receiveIPv6 are the ReceiveFuncs; their names end in
// IPv4/IPv6 so that conn.ReceiveFunc.PrettyName logs them as v4/v6.
func (r *receiver) receiveIPv4(bufs [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
	return r.receive(bufs, sizes, eps)
}

func (r *receiver) receiveIPv6(bufs [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
	return r.receive(bufs, sizes, eps)
}

// receive reads up to len(bufs) datagrams with one recvmmsg. With UDP_GRO a
// message may hold up to 64 datagrams of one size, so, like StdNetBind, it
// then reads len(bufs)/64 messages into the last buffers and splits them
// forward into the whole batch.
func (r *receiver) receive(bufs [][]byte, sizes []int, eps []conn.Endpoint) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := min(len(bufs), len(r.hdrs))
	if n == 0 {
		return 0, nil
	}
	r.first, r.count = 0, n
	if r.sock.gro {
		r.count = max(n/udpSegmentMaxDatagrams, 1)
		r.first = n - r.count
	}
	for i := range r.count {
		b := bufs[r.first+i]
		if len(b) > 0 {
			r.iovs[i].Base = &b[0]
		} else {
			r.iovs[i].Base = nil
		}
		r.iovs[i].SetLen(len(b))
		h := &r.hdrs[i].hdr
		h.Namelen = unix.SizeofSockaddrInet6
		h.SetControllen(oobSize)
		h.Flags = 0
	}
	r.got, r.errno = 0, 0
	if err := r.sock.rc.Read(r.read); err != nil {
		return 0, err // net.ErrClosed after Close
	}
	if r.errno != 0 {
		return 0, r.sock.opError("recvmmsg", r.errno)
	}

	out := 0
	end := r.first + r.got // sources not yet split are in (src, end)
	for i := range r.got {
		src := r.first + i
		m := &r.hdrs[i]
		size := int(m.len)
		if m.hdr.Flags&unix.MSG_TRUNC != 0 || size > len(bufs[src]) {
			continue // cannot happen with 64 KiB buffers; drop rather than pass a cut packet
		}
		var k sourceKey
		if !r.sourceOf(i, &k) {
			continue
		}
		gso := r.parseControl(i, &k)
		ep := r.cache.get(&k)
		if gso <= 0 || gso >= size {
			if out != src {
				copy(bufs[out], bufs[src][:size])
			}
			sizes[out], eps[out] = size, ep
			out++
			continue
		}
		for off := 0; off < size; off += gso {
			if out >= n || (out > src && out < end) {
				break // would overwrite an unsplit message; unreachable with len(bufs) >= 64
			}
			seg := min(gso, size-off)
			copy(bufs[out], bufs[src][off:off+seg])
			sizes[out], eps[out] = seg, ep
			out++
		}
	}
	return out, nil
}

// sourceOf fills k's remote address from message i's raw sockaddr.
func (r *receiver) sourceOf(i int, k *sourceKey) bool {
	sa := &r.names[i]
	switch sa.Family {
	case unix.AF_INET:
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		copy(k.addr[:4], sa4.Addr[:])
		k.port = uint32(binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa4.Port))[:]))
	case unix.AF_INET6:
		k.addr = sa.Addr
		k.port = uint32(binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:]))
		k.scope = sa.Scope_id
	default:
		return false
	}
	return true
}

// parseControl reads message i's PKTINFO into k and returns its UDP_GRO
// segment size (0 if the message is a single datagram).
func (r *receiver) parseControl(i int, k *sourceKey) (gso int) {
	rem := r.oob[i*oobSize : i*oobSize+int(r.hdrs[i].hdr.Controllen)]
	for len(rem) >= unix.SizeofCmsghdr {
		h, data, next, err := unix.ParseOneSocketControlMessage(rem)
		if err != nil {
			break
		}
		switch {
		case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_PKTINFO && len(data) >= unix.SizeofInet4Pktinfo:
			info := (*unix.Inet4Pktinfo)(unsafe.Pointer(&data[0]))
			copy(k.local[:4], info.Spec_dst[:])
			k.ifindex = info.Ifindex
		case h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
			info := (*unix.Inet6Pktinfo)(unsafe.Pointer(&data[0]))
			k.local = info.Addr
			k.ifindex = int32(info.Ifindex)
		case h.Level == unix.SOL_UDP && h.Type == unix.UDP_GRO && len(data) >= 4:
			gso = int(*(*int32)(unsafe.Pointer(&data[0]))) // the kernel writes an int
		}
		rem = next
	}
	return gso
}
