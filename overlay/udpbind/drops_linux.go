package udpbind

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// skMeminfoDrops is SK_MEMINFO_DROPS, the index of the drop counter in
// SO_MEMINFO's array of u32 (include/uapi/linux/sock_diag.h).
const (
	skMeminfoDrops = 8
	skMeminfoVars  = 9
)

// ReceiveDrops is how many datagrams the kernel dropped on the way into
// the Bind's open sockets since they were opened, almost always because
// the receive buffer was full: WireGuard did not read fast enough. Such a
// drop is loss the path did not cause, and a TCP inside the tunnel
// recovers from it as from any other loss. It reads SO_MEMINFO's
// SK_MEMINFO_DROPS (the "drops" column of /proc/net/udp), per socket, so
// it is cheap enough to read on every metrics scrape. 0 when closed.
func (b *Bind) ReceiveDrops() uint64 {
	s := b.socks.Load()
	if s == nil {
		return 0
	}
	var n uint64
	for _, so := range []*socket{s.v4, s.v6} {
		if so != nil {
			n += so.drops()
		}
	}
	return n
}

// drops reads the socket's SK_MEMINFO_DROPS; 0 if the kernel cannot say.
func (s *socket) drops() uint64 {
	var (
		mem  [skMeminfoVars]uint32
		size = uint32(unsafe.Sizeof(mem))
		n    uint64
	)
	_ = s.rc.Control(func(fd uintptr) {
		_, _, errno := unix.Syscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, unix.SO_MEMINFO,
			uintptr(unsafe.Pointer(&mem[0])), uintptr(unsafe.Pointer(&size)), 0)
		if errno == 0 && size > skMeminfoDrops*4 {
			n = uint64(mem[skMeminfoDrops])
		}
	})
	return n
}
