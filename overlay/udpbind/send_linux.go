package udpbind

import (
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sendBatch is the sendmmsg state of one Send call, reused through a
// sendPool. A run of equal-size packets becomes one message whose iovecs are
// the packets themselves (no copy) and whose UDP_SEGMENT size makes the
// kernel cut it back into datagrams.
type sendBatch struct {
	hdrs  []mmsghdr
	iovs  []unix.Iovec
	oob   []byte
	from  []int // index in bufs of each message's first packet
	write func(fd uintptr) bool

	n, start int
	errno    syscall.Errno
}

func newSendBatch(batch int) *sendBatch {
	b := &sendBatch{
		hdrs: make([]mmsghdr, batch),
		iovs: make([]unix.Iovec, batch),
		oob:  make([]byte, batch*oobSize),
		from: make([]int, batch),
	}
	b.write = b.sendmmsg
	return b
}

func (b *sendBatch) sendmmsg(fd uintptr) bool {
	for b.start < b.n {
		n, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&b.hdrs[b.start])), uintptr(b.n-b.start), 0, 0, 0)
		switch errno {
		case 0:
			b.start += int(n)
		case unix.EINTR:
		case unix.EAGAIN:
			return false // wait in the netpoller
		default:
			b.errno = errno
			return true
		}
	}
	return true
}

// build lays out bufs[from:] to e as messages and returns how many. With
// gso, consecutive packets of the first one's size (the last may be
// shorter) share a message, up to the kernel's 64 segments and 64 KiB.
func (b *sendBatch) build(bufs [][]byte, from int, e *Endpoint, gso, sticky bool) int {
	maxPayload := maxIPv4PayloadLen
	if e.is6() {
		maxPayload = maxIPv6PayloadLen
	}
	var (
		n        int // messages
		iov      int // iovecs used
		gsoSize  int // segment size of message n-1
		segs     int // segments in message n-1
		total    int // payload of message n-1
		endBatch bool
	)
	for i := from; i < len(bufs); i++ {
		buf := bufs[i]
		if n > 0 && gso && !endBatch && gsoSize > 0 && len(buf) > 0 && len(buf) <= gsoSize &&
			segs < udpSegmentMaxDatagrams && total+len(buf) <= maxPayload {
			b.iovs[iov].Base = &buf[0]
			b.iovs[iov].SetLen(len(buf))
			iov++
			segs++
			total += len(buf)
			b.hdrs[n-1].hdr.SetIovlen(segs)
			endBatch = len(buf) < gsoSize // a short tail ends the message
			continue
		}
		if segs > 1 {
			b.setGSO(n-1, gsoSize)
		}
		h := &b.hdrs[n].hdr
		h.Name = (*byte)(unsafe.Pointer(&e.sa))
		h.Namelen = e.salen
		h.Iov = &b.iovs[iov]
		h.SetIovlen(1)
		h.Control = nil
		h.SetControllen(0)
		if len(buf) > 0 {
			b.iovs[iov].Base = &buf[0]
		} else {
			b.iovs[iov].Base = nil
		}
		b.iovs[iov].SetLen(len(buf))
		iov++
		if sticky {
			b.setSrc(n, e)
		}
		b.from[n] = i
		gsoSize, segs, total, endBatch = len(buf), 1, len(buf), false
		n++
	}
	if segs > 1 {
		b.setGSO(n-1, gsoSize)
	}
	return n
}

// cmsg appends a control message header with room for size bytes to
// message m's control buffer and returns its data.
func (b *sendBatch) cmsg(m int, level, typ int32, size int) []byte {
	h := &b.hdrs[m].hdr
	off := int(h.Controllen)
	base := b.oob[m*oobSize : (m+1)*oobSize]
	c := (*unix.Cmsghdr)(unsafe.Pointer(&base[off]))
	c.Level, c.Type = level, typ
	c.SetLen(unix.CmsgLen(size))
	h.Control = &base[0]
	h.SetControllen(off + unix.CmsgSpace(size))
	data := base[off+unix.CmsgLen(0) : off+unix.CmsgSpace(size)]
	clear(data)
	return data
}

func (b *sendBatch) setGSO(m, size int) {
	d := b.cmsg(m, unix.SOL_UDP, unix.UDP_SEGMENT, 2)
	*(*uint16)(unsafe.Pointer(&d[0])) = uint16(size)
}

// setSrc sends from the address (and interface) the peer's packet arrived
// on, as StdNetBind does with the PKTINFO it received.
func (b *sendBatch) setSrc(m int, e *Endpoint) {
	if e.is6() {
		d := b.cmsg(m, unix.IPPROTO_IPV6, unix.IPV6_PKTINFO, unix.SizeofInet6Pktinfo)
		info := (*unix.Inet6Pktinfo)(unsafe.Pointer(&d[0]))
		info.Addr = e.src.As16()
		info.Ifindex = uint32(e.ifindex)
		return
	}
	d := b.cmsg(m, unix.IPPROTO_IP, unix.IP_PKTINFO, unix.SizeofInet4Pktinfo)
	info := (*unix.Inet4Pktinfo)(unsafe.Pointer(&d[0]))
	info.Spec_dst = e.src.Unmap().As4()
	info.Ifindex = e.ifindex
}

// sendPool keeps sendBatches for concurrent Sends (one per peer sender at
// most) without the allocations sync.Pool makes after a GC.
type sendPool struct {
	mu    sync.Mutex
	free  []*sendBatch
	batch int
}

func (p *sendPool) get() *sendBatch {
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		b := p.free[n-1]
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return b
	}
	p.mu.Unlock()
	return newSendBatch(p.batch)
}

func (p *sendPool) put(b *sendBatch) {
	p.mu.Lock()
	if len(p.free) < 64 {
		p.free = append(p.free, b)
	}
	p.mu.Unlock()
}
