package netstack

// Every face listener (one per peer and port, 10,000 and more in a big
// overlay) is served by one epoll goroutine instead of an accept goroutine
// each: local dials come now and then, and a parked accept goroutine holds
// some 4-8 KiB of stack. At 9,800 dark faces (peers the policy lets this
// host exchange nothing with) that was some 35 MiB of resident memory; at
// 10,000 partners, 40-50 MiB more. Each accepted connection goes to
// faceSet.handle on a goroutine of its own, as before.

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nodewire/nodewire/netstack/denylog"
)

// pollSet owns the face sockets and the goroutine that accepts on them. Its lock is taken under faceSet.mu, never the other way round.
type pollSet struct {
	fs *faceSet

	mu      sync.Mutex
	epfd    int           // -1 until the first face
	ep      *os.File      // epfd in Go's netpoller (see run)
	wake    int           // eventfd that ends the wait on close
	byFD    map[int]*face // open faces by socket
	closed  bool
	running bool
}

func newPollSet(fs *faceSet) *pollSet {
	return &pollSet{fs: fs, epfd: -1, wake: -1, byFD: make(map[int]*face)}
}

// reserveFDs grows this process's file descriptor table, once, to hold n
// more descriptors than it has open. The kernel grows the table by
// doubling, and in a process of several threads (every Go program) each
// growth waits for an RCU grace period (expand_fdtable: synchronize_rcu, one
// scheduler tick or more): opening 10,000 faces one by one grew it six
// times and waited 60-90 ms of a 180-215 ms start with the CPU idle (perf
// sched, issue 13). One dup3 to the highest descriptor needed grows it
// once. It is only a speed-up: on any error the faces open as before.
func reserveFDs(n int) {
	if n < 128 {
		return // the table's first growths are cheap enough
	}
	probe, err := unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer unix.Close(probe)
	top := probe + n + 16 // probe is the lowest free descriptor
	var lim unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &lim) == nil && uint64(top) >= lim.Cur {
		top = int(lim.Cur) - 1
	}
	if top <= probe {
		return
	}
	if err := unix.Dup3(probe, top, unix.O_CLOEXEC); err == nil {
		unix.Close(top)
	}
}

// listenFD binds a non-blocking listening socket on addr, as net.ListenTCP
// would (SO_REUSEADDR, the system's backlog). The error is the bare system
// call's, for faceError's hints.
func listenFD(addr netip.AddrPort) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, os.NewSyscallError("socket", err)
	}
	err = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	if err == nil {
		err = unix.Bind(fd, &unix.SockaddrInet4{Port: int(addr.Port()), Addr: addr.Addr().As4()})
	}
	if err == nil {
		err = unix.Listen(fd, unix.SOMAXCONN)
	}
	if err != nil {
		unix.Close(fd)
		return -1, &net.OpError{Op: "listen", Net: "tcp4", Addr: net.TCPAddrFromAddrPort(addr), Err: os.NewSyscallError("listen", err)}
	}
	return fd, nil
}

// listen binds f's socket (listenFD) and adds it to the set; f is filled in
// with it.
func (d *pollSet) listen(f *face) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return errors.New("netstack: closed")
	}
	if d.epfd < 0 {
		epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
		if err != nil {
			return os.NewSyscallError("epoll_create1", err)
		}
		wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
		if err != nil {
			unix.Close(epfd)
			return os.NewSyscallError("eventfd", err)
		}
		if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wake)}); err != nil {
			unix.Close(epfd)
			unix.Close(wake)
			return os.NewSyscallError("epoll_ctl", err)
		}
		// Non-blocking, so os.NewFile puts it in Go's netpoller: run
		// waits there (an epoll set is readable while it has events).
		if err := unix.SetNonblock(epfd, true); err != nil {
			unix.Close(epfd)
			unix.Close(wake)
			return os.NewSyscallError("fcntl", err)
		}
		d.epfd, d.wake, d.ep = epfd, wake, os.NewFile(uintptr(epfd), "faces epoll")
	}
	fd, err := listenFD(f.addr)
	if err != nil {
		return err
	}
	if err := unix.EpollCtl(d.epfd, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(fd)}); err != nil {
		unix.Close(fd)
		return os.NewSyscallError("epoll_ctl", err)
	}
	f.fd = fd
	d.byFD[fd] = f
	if !d.running && d.fs.s.group.spawn(d.run) {
		d.running = true
	}
	return nil
}

// close closes f's socket; a connection waiting in its backlog is reset
// by the kernel.
func (d *pollSet) close(f *face) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.byFD[f.fd] == f {
		delete(d.byFD, f.fd)
		unix.Close(f.fd) // leaves the epoll set with it
	}
}

// closeAll closes every face socket and ends run.
func (d *pollSet) closeAll() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	for fd := range d.byFD {
		unix.Close(fd)
	}
	clear(d.byFD)
	if d.wake >= 0 {
		var one [8]byte
		one[0] = 1
		unix.Write(d.wake, one[:]) // run sees closed and releases epfd and wake
	}
	if !d.running && d.epfd >= 0 {
		d.releaseLocked()
	}
}

// releaseLocked closes the epoll set and the eventfd.
func (d *pollSet) releaseLocked() {
	d.ep.Close()
	unix.Close(d.wake)
	d.epfd, d.wake, d.ep = -1, -1, nil
}

// run accepts on every face socket and hands each connection to the face's
// handler, which judges it (a dark face's are refused and logged), until
// closeAll.
//
// It waits in Go's netpoller, never in a blocking epoll_wait: a thread
// blocked in a system call keeps its P (GOMAXPROCS is 1 by default) until
// sysmon takes it back, at least two sysmon ticks later, so the handler
// goroutine just started for a connection would wait that long to run.
func (d *pollSet) run() {
	d.mu.Lock()
	epfd, ep := d.epfd, d.ep
	d.mu.Unlock()
	rc, err := ep.SyscallConn() // fails only for a nil *os.File
	if err != nil {
		d.fs.s.log.Error("netstack: faces: epoll set", "err", err)
		return
	}
	events := make([]unix.EpollEvent, 64)
	for {
		var n int
		var werr error
		err := rc.Read(func(uintptr) bool {
			n, werr = unix.EpollWait(epfd, events, 0)
			return n != 0 || (werr != nil && !errors.Is(werr, unix.EINTR))
		})
		if err == nil {
			err = werr
		}
		if err != nil {
			d.fs.s.log.Warn("netstack: faces: epoll_wait", "err", err)
			n = 0
			sleepCtx(d.fs.s.ctx, 50*time.Millisecond) // not a spin; closeAll is seen below
		}
		d.mu.Lock()
		if d.closed {
			d.releaseLocked()
			d.running = false
			d.mu.Unlock()
			return
		}
		var conns []polledConn
		failed := false
		for _, ev := range events[:max(n, 0)] {
			// A socket closed since the wait may have been replaced by
			// another with the same number: only what the set holds now
			// is accepted on.
			if f := d.byFD[int(ev.Fd)]; f != nil {
				var ok bool
				conns, ok = d.acceptAllLocked(f, conns)
				failed = failed || !ok
			}
		}
		d.mu.Unlock()
		if failed && !sleepCtx(d.fs.s.ctx, 50*time.Millisecond) {
			failed = false // closing: the next wait sees it
		}
		for _, dc := range conns {
			if !d.fs.s.group.spawn(func() { d.fs.handle(dc.f, dc.c) }) {
				dc.c.Close()
			}
		}
	}
}

type polledConn struct {
	f *face
	c *net.TCPConn
}

// acceptAllLocked takes every connection waiting on f's socket. It
// reports false on an error that leaves the socket ready (out of file
// descriptors): run then waits a little rather than spin.
func (d *pollSet) acceptAllLocked(f *face, out []polledConn) ([]polledConn, bool) {
	for {
		nfd, _, err := unix.Accept4(f.fd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		switch {
		case err == nil:
		case errors.Is(err, unix.EAGAIN), errors.Is(err, unix.ECONNABORTED), errors.Is(err, unix.EINTR):
			return out, true
		default:
			d.fs.s.logLimited(slog.LevelWarn, denylog.Key{Who: f.key.peer, Port: f.key.port, Why: "accept"},
				"netstack: accept on face", "addr", f.addr, "err", err)
			return out, false
		}
		file := os.NewFile(uintptr(nfd), fmt.Sprintf("face %v", f.addr))
		c, err := net.FileConn(file) // dups nfd
		file.Close()
		if err != nil {
			continue
		}
		if tc, ok := c.(*net.TCPConn); ok {
			out = append(out, polledConn{f, tc})
		} else {
			c.Close()
		}
	}
}
