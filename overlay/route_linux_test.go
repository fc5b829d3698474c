package overlay

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// netlinkMsg builds one netlink message of type typ with seq and body.
func netlinkMsg(typ uint16, seq uint32, body []byte) []byte {
	b := make([]byte, unix.SizeofNlMsghdr+len(body))
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], uint32(len(b)))
	ne.PutUint16(b[4:], typ)
	ne.PutUint32(b[8:], seq)
	copy(b[unix.SizeofNlMsghdr:], body)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func rtattr(typ uint16, value []byte) []byte {
	b := make([]byte, rtaAlign(unix.SizeofRtAttr+len(value)))
	binary.NativeEndian.PutUint16(b[0:], uint16(unix.SizeofRtAttr+len(value)))
	binary.NativeEndian.PutUint16(b[2:], typ)
	copy(b[unix.SizeofRtAttr:], value)
	return b
}

func u32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }

func route(attrs ...[]byte) []byte {
	b := make([]byte, unix.SizeofRtMsg)
	b[0] = unix.AF_INET
	for _, a := range attrs {
		b = append(b, a...)
	}
	return b
}

func TestParseRouteReply(t *testing.T) {
	const seq = 7
	metrics := func(attrs ...[]byte) []byte {
		var b []byte
		for _, a := range attrs {
			b = append(b, a...)
		}
		return rtattr(unix.RTA_METRICS, b)
	}
	errMsg := func(errno syscall.Errno) []byte {
		return netlinkMsg(unix.NLMSG_ERROR, seq, append(u32(uint32(-int32(errno))), make([]byte, unix.SizeofNlMsghdr)...))
	}
	for _, tc := range []struct {
		name    string
		msg     []byte
		oif     int
		mtu     int
		done    bool
		wantErr error
	}{
		{"interface only: its MTU applies", netlinkMsg(unix.RTM_NEWROUTE, seq, route(rtattr(unix.RTA_OIF, u32(3)))), 3, 0, true, nil},
		{"route mtu metric", netlinkMsg(unix.RTM_NEWROUTE, seq, route(rtattr(unix.RTA_OIF, u32(2)),
			metrics(rtattr(unix.RTAX_ADVMSS, u32(1360)), rtattr(unix.RTAX_MTU, u32(1400))))), 2, 1400, true, nil},
		{"metrics without an MTU", netlinkMsg(unix.RTM_NEWROUTE, seq, route(rtattr(unix.RTA_OIF, u32(4)),
			metrics(rtattr(unix.RTAX_HOPLIMIT, u32(64))))), 4, 0, true, nil},
		{"unreachable", errMsg(unix.ENETUNREACH), 0, 0, false, unix.ENETUNREACH},
		{"another request's answer", netlinkMsg(unix.RTM_NEWROUTE, seq+1, route(rtattr(unix.RTA_OIF, u32(3)))), 0, 0, false, nil},
	} {
		oif, mtu, done, err := parseRouteReply(tc.msg, seq)
		if tc.wantErr != nil {
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("%s: err %v, want %v", tc.name, err, tc.wantErr)
			}
			continue
		}
		if err != nil || oif != tc.oif || mtu != tc.mtu || done != tc.done {
			t.Errorf("%s: oif %d mtu %d done %v err %v; want oif %d mtu %d done %v", tc.name, oif, mtu, done, err, tc.oif, tc.mtu, tc.done)
		}
	}
}

// The route to a loopback address leaves through lo: its MTU is lo's.
func TestRouteMTULoopback(t *testing.T) {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	got, err := routeMTU(netip.MustParseAddr("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	if got != lo.MTU {
		t.Errorf("route MTU to 127.0.0.1 = %d, want lo's %d", got, lo.MTU)
	}
	if _, err := routeMTU(netip.MustParseAddr("::1")); err != nil && !errors.Is(err, unix.ENETUNREACH) && !errors.Is(err, unix.EAFNOSUPPORT) {
		t.Errorf("route MTU to ::1: %v", err)
	}
}
