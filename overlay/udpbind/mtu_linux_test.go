package udpbind

import (
	"bytes"
	"net/netip"
	"os"
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/conn"
)

// TestSendLargerThanRoute sends batches whose datagrams exceed the route's
// MTU (loopback at 1400 in a network namespace of the test's own): the
// kernel refuses such a UDP_SEGMENT message (EINVAL or, since Linux 6.x,
// EMSGSIZE), and Send must fall back to single datagrams, which the kernel
// fragments, instead of failing the batch. It needs root for the namespace.
func TestSendLargerThanRoute(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: a network namespace whose loopback has MTU 1400")
	}
	// The namespace belongs to this thread only; it is never unlocked, so
	// the thread exits with the test instead of carrying it elsewhere.
	runtime.LockOSThread()
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		t.Fatalf("unshare: %v", err)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		t.Fatal(err)
	}
	ifr.SetUint32(1400)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFMTU, ifr); err != nil {
		t.Fatalf("SIOCSIFMTU: %v", err)
	}
	ifr.SetUint16(unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		t.Fatalf("SIOCSIFFLAGS: %v", err)
	}

	a, b := New(), New()
	_, _ = openBind(t, a)
	bfns, bport := openBind(t, b)
	bc := newCollector(bfns[0], b.BatchSize())
	dst, err := a.ParseEndpoint(netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), bport).String())
	if err != nil {
		t.Fatal(err)
	}
	for _, sizes := range [][]int{
		repeat(conn.IdealBatchSize, 1452),                // WireGuard's 1420 inner MTU over IPv4: 1480 on the wire
		{1300, 1300, 1452, 1452, 1452, 1300, 1300, 1300}, // fitting and oversized runs mixed
		{9000, 9000},
	} {
		want := makePackets(sizes)
		if err := a.Send(want, dst); err != nil {
			t.Fatalf("send %v: %v", sizes[:min(len(sizes), 8)], err)
		}
		got := bc.recv(t, b, len(want))
		for i := range want {
			if !bytes.Equal(got[i].data, want[i]) {
				t.Fatalf("sizes %v: packet %d: got %d bytes, want %d", sizes[:min(len(sizes), 8)], i, len(got[i].data), len(want[i]))
			}
		}
	}
}
