// Package hoptrace timestamps a packet at each hop of overlayd's data path,
// for the latency budget of `go run ./e2e/bench -budget`. It records only
// in a binary built with `-tags hoptrace`; otherwise [Mark] and friends
// are empty and inline away.
//
// A hoptrace build keeps the marks in a ring in memory and appends them
// every 50 ms to [Path] for this process: one line per mark, "hop
// unix-nanoseconds bytes", then a heartbeat "0 unix-nanoseconds 0". It is process-wide state on purpose: a
// diagnostic build with one recorder, read by the harness from outside.
package hoptrace

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
)

// Hop is one point of the data path, in the order a message passes them
// from the sending node to the receiving node.
type Hop uint8

const (
	// FaceRead: overlayd read bytes from the sending node's socket
	// (userspace mode).
	FaceRead Hop = iota + 1
	// TUNRead: WireGuard took a plaintext packet from the data plane (the
	// gVisor link endpoint, or the kernel TUN in TUN mode).
	TUNRead
	// UDPSend: WireGuard handed an encrypted datagram to the socket.
	UDPSend
	// UDPRecv: WireGuard's receive goroutine got a datagram from the socket.
	UDPRecv
	// TUNWrite: WireGuard handed a decrypted packet to the data plane.
	TUNWrite
	// StackRead: overlayd read the bytes from the gVisor connection
	// (userspace mode).
	StackRead
	// FaceWrite: overlayd's write to the receiving node's socket returned
	// (userspace mode).
	FaceWrite
)

var hopNames = [...]string{FaceRead: "face-read", TUNRead: "tun-read", UDPSend: "udp-send", UDPRecv: "udp-recv",
	TUNWrite: "tun-write", StackRead: "stack-read", FaceWrite: "face-write"}

func (h Hop) String() string {
	if int(h) < len(hopNames) && hopNames[h] != "" {
		return hopNames[h]
	}
	return fmt.Sprintf("hop%d", h)
}

// Path is where the hoptrace build of process pid writes its marks.
func Path(pid int) string {
	return filepath.Join(os.TempDir(), fmt.Sprintf("nodewire-hoptrace-%d.txt", pid))
}

// Read marks n bytes read by a splice from src: the node's socket (a
// kernel TCP connection) or the overlay connection.
func Read(src any, n int) {
	if !Enabled {
		return
	}
	if _, ok := src.(*net.TCPConn); ok {
		Mark(FaceRead, n)
	} else {
		Mark(StackRead, n)
	}
}

// Wrote marks n bytes written by a splice to dst, if dst is the node's
// socket.
func Wrote(dst any, n int) {
	if !Enabled {
		return
	}
	if _, ok := dst.(*net.TCPConn); ok {
		Mark(FaceWrite, n)
	}
}
