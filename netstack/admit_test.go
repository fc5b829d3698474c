package netstack

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// Ping between two stacks follows the policy: monitoring may reach
// payments (on Erlang's ports), so mon-1's ping to pay-1 is answered;
// payments may not reach monitoring, so pay-1's echo request never enters
// mon-1's stack until a rule lets payments reach monitoring on some port.
func TestPingFollowsPolicy(t *testing.T) {
	for _, link := range []string{"pipe", "wireguard"} {
		t.Run(link, func(t *testing.T) {
			p := newPair(t, link, func(*world) fileOpts { return fileOpts{rulePorts: "[erlang]"} })
			payAddr, monAddr := netip.MustParseAddr("10.77.1.1"), netip.MustParseAddr("10.77.2.1")

			// Allowed: the reply comes (Ping waits for it, with a deadline).
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			if _, err := p.mon.stack.Ping(ctx, payAddr, 1, 56); err != nil {
				t.Fatalf("mon-1 pings pay-1 (allowed): %v", err)
			}
			// gVisor counts a reply once its write returns, which may be
			// after the pipe delivered it and Ping returned.
			waitFor(t, 5*time.Second, "pay-1's stack to count its reply", func() bool { return echoStats(p.pay.stack).replies >= 1 })
			if got := echoStats(p.pay.stack); got != (echoCounts{requests: 1, replies: 1}) {
				t.Fatalf("pay-1's stack after one allowed ping: %+v, want 1 request, 1 reply", got)
			}

			// Denied: mon-1 counts the refusal; its stack never sees the request.
			denied := make(chan error, 1)
			dctx, dcancel := context.WithCancel(context.Background())
			defer dcancel()
			go func() {
				_, err := p.pay.stack.Ping(dctx, monAddr, 1, 56)
				denied <- err
			}()
			waitFor(t, 15*time.Second, "mon-1 to refuse pay-1's ping", func() bool {
				return p.mon.stack.Stats()["pay-1"].DeniedIn == 1
			})
			r := p.mon.stack.LastRefusals()["pay-1"]
			wantWhy := "deny default (no rule allows payments -> monitoring on any port, which ping needs)"
			if r.Proto != "icmp" || r.Dir != "in" || r.Decision != wantWhy {
				t.Errorf("mon-1's last refusal of pay-1: %+v, want proto icmp, dir in, %q", r, wantWhy)
			}
			if got := echoStats(p.mon.stack); got != (echoCounts{}) {
				t.Fatalf("mon-1's stack after a refused ping: %+v, want no request seen, no reply sent", got)
			}
			dcancel()
			if err := <-denied; !errors.Is(err, ErrNoEchoReply) {
				t.Fatalf("pay-1's refused ping: %v, want ErrNoEchoReply", err)
			}

			// The same path, now allowed: one request reaches mon-1's stack
			// (this one) and is answered.
			allow := fileOpts{rulePorts: "[erlang]", backPorts: "[9100]"}
			p.pay.stack.Apply(p.w.snap(t, payFaces, "pay-1", allow))
			p.mon.stack.Apply(p.w.snap(t, monFaces, "mon-1", allow))
			if _, err := p.pay.stack.Ping(ctx, monAddr, 2, 56); err != nil {
				t.Fatalf("pay-1 pings mon-1 once a rule lets it reach mon-1: %v", err)
			}
			waitFor(t, 5*time.Second, "mon-1's stack to count its reply", func() bool { return echoStats(p.mon.stack).replies >= 1 })
			if got := echoStats(p.mon.stack); got != (echoCounts{requests: 1, replies: 1}) {
				t.Fatalf("mon-1's stack after the allowed ping: %+v, want 1 request, 1 reply", got)
			}
			if n := p.mon.stack.Stats()["pay-1"].DeniedIn; n != 1 {
				t.Errorf("mon-1 counts %d refusals of pay-1, want still 1", n)
			}
		})
	}
}

type echoCounts struct{ requests, replies uint64 }

// echoStats is what s's IP layer saw of echo: requests received, replies
// sent.
func echoStats(s *Stack) echoCounts {
	v4 := s.ip.Stats().ICMP.V4
	return echoCounts{requests: v4.PacketsReceived.EchoRequest.Value(), replies: v4.PacketsSent.EchoReply.Value()}
}

// TestAdmit judges single packets: what may enter the stack from whom.
// mon-1 reaches pay-1 (a rule with ports); pay-1 does not reach mon-1.
func TestAdmit(t *testing.T) {
	w := &world{payKey: newTestKey(t), monKey: newTestKey(t), epmdPort: 4369, exposePort: 9100}
	o := fileOpts{rulePorts: "[erlang]"}
	var out lockedBuffer
	stacks := map[string]*Stack{}
	for _, name := range []string{"pay-1", "mon-1"} {
		s, err := New(Config{Logger: slog.New(slog.NewTextHandler(&out, nil))}, w.snap(t, payFaces, name, o))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		stacks[name] = s
	}
	pay, mon, unknown := "10.77.1.1", "10.77.2.1", "10.77.9.9"
	icmpMsg := func(typ header.ICMPv4Type) []byte {
		b := make([]byte, header.ICMPv4MinimumSize+8)
		header.ICMPv4(b).SetType(typ)
		return b
	}
	tcpSYN := make([]byte, header.TCPMinimumSize)
	header.TCP(tcpSYN).Encode(&header.TCPFields{SrcPort: 40000, DstPort: 4369, DataOffset: header.TCPMinimumSize, Flags: header.TCPFlagSyn, WindowSize: 65535})
	udp := make([]byte, header.UDPMinimumSize)
	header.UDP(udp).Encode(&header.UDPFields{SrcPort: 40000, DstPort: 53, Length: header.UDPMinimumSize})
	ipv6 := make([]byte, header.IPv6MinimumSize)
	ipv6[0] = 6 << 4

	for _, tc := range []struct {
		name     string
		self     string
		pkt      []byte
		want     bool
		loggedAs string // a refusal line containing this, "" for none
	}{
		{"echo from a peer that reaches this host", "pay-1", ip4(mon, pay, header.ICMPv4ProtocolNumber, icmpMsg(header.ICMPv4Echo)), true, ""},
		{"UDP from a peer that reaches this host", "pay-1", ip4(mon, pay, header.UDPProtocolNumber, udp), true, ""},
		{"echo from an unknown address", "pay-1", ip4(unknown, pay, header.ICMPv4ProtocolNumber, icmpMsg(header.ICMPv4Echo)), false,
			`from=10.77.9.9 to=pay-1 proto=icmp decision="unknown source address"`},
		{"echo from this host's own address", "pay-1", ip4(pay, pay, header.ICMPv4ProtocolNumber, icmpMsg(header.ICMPv4Echo)), false,
			`from=10.77.1.1 to=pay-1 proto=icmp`},
		{"UDP from an unknown address", "pay-1", ip4(unknown, pay, header.UDPProtocolNumber, udp), false, ""},
		{"echo from a peer that does not reach this host", "mon-1", ip4(pay, mon, header.ICMPv4ProtocolNumber, icmpMsg(header.ICMPv4Echo)), false,
			`level=WARN msg="netstack: refused" dir=in from=pay-1 to=mon-1 proto=icmp decision="deny default (no rule allows payments -> monitoring on any port, which ping needs)"`},
		{"echo reply from it (to this host's ping)", "mon-1", ip4(pay, mon, header.ICMPv4ProtocolNumber, icmpMsg(header.ICMPv4EchoReply)), true, ""},
		{"ICMP error from it", "mon-1", ip4(pay, mon, header.ICMPv4ProtocolNumber, icmpMsg(header.ICMPv4DstUnreachable)), true, ""},
		{"timestamp request from it", "mon-1", ip4(pay, mon, header.ICMPv4ProtocolNumber, icmpMsg(header.ICMPv4Timestamp)), false, ""},
		{"UDP from it (no protocol unreachable)", "mon-1", ip4(pay, mon, header.UDPProtocolNumber, udp), false, ""},
		{"TCP from it: the forwarder judges, as before", "mon-1", ip4(pay, mon, header.TCPProtocolNumber, tcpSYN), true, ""},
		{"TCP fragment from it (no time exceeded)", "mon-1", withMoreFragments(ip4(pay, mon, header.TCPProtocolNumber, tcpSYN)), false, ""},
		{"echo fragment from it", "mon-1", withMoreFragments(ip4(pay, mon, header.ICMPv4ProtocolNumber, icmpMsg(header.ICMPv4Echo))), false, ""},
		{"TCP with IP options from it (no parameter problem)", "mon-1", withOptions(ip4(pay, mon, header.TCPProtocolNumber, tcpSYN)), false, ""},
		{"IPv6 (the stack drops it)", "mon-1", ipv6, true, ""},
	} {
		before := out.String()
		if got := stacks[tc.self].admit(tc.pkt); got != tc.want {
			t.Errorf("%s: admit = %v, want %v", tc.name, got, tc.want)
		}
		logged := strings.TrimPrefix(out.String(), before)
		if tc.loggedAs == "" && logged != "" || tc.loggedAs != "" && !strings.Contains(logged, tc.loggedAs) {
			t.Errorf("%s: logged %q, want a line with %q", tc.name, logged, tc.loggedAs)
		}
	}

	// A repeated refused echo is counted each time, logged once.
	echo := ip4(pay, mon, header.ICMPv4ProtocolNumber, icmpMsg(header.ICMPv4Echo))
	before := out.String()
	for range 3 {
		stacks["mon-1"].admit(echo)
	}
	if logged := strings.TrimPrefix(out.String(), before); logged != "" {
		t.Errorf("repeated refusals logged again within the interval: %q", logged)
	}
	if n := stacks["mon-1"].Stats()["pay-1"].DeniedIn; n != 4 {
		t.Errorf("mon-1 counts %d refused echoes from pay-1, want 4", n)
	}
}

// ip4 builds an IPv4 packet with a valid header checksum.
func ip4(src, dst string, proto tcpip.TransportProtocolNumber, payload []byte) []byte {
	b := make([]byte, header.IPv4MinimumSize+len(payload))
	h := header.IPv4(b)
	h.Encode(&header.IPv4Fields{
		TotalLength: uint16(len(b)), TTL: 64, Protocol: uint8(proto),
		SrcAddr: tcpip.AddrFrom4(netip.MustParseAddr(src).As4()),
		DstAddr: tcpip.AddrFrom4(netip.MustParseAddr(dst).As4()),
	})
	h.SetChecksum(^h.CalculateChecksum())
	copy(b[header.IPv4MinimumSize:], payload)
	if proto == header.ICMPv4ProtocolNumber {
		ic := header.ICMPv4(b[header.IPv4MinimumSize:])
		ic.SetChecksum(^checksum.Checksum(ic, 0))
	}
	return b
}

// withMoreFragments sets the MF flag: the first fragment of a datagram.
func withMoreFragments(b []byte) []byte {
	binary.BigEndian.PutUint16(b[6:], 1<<13)
	return b
}

// withOptions inserts four bytes of IP options (NOP, NOP, NOP, EOL).
func withOptions(b []byte) []byte {
	out := make([]byte, 0, len(b)+4)
	out = append(out, b[:header.IPv4MinimumSize]...)
	out = append(out, 1, 1, 1, 0)
	out = append(out, b[header.IPv4MinimumSize:]...)
	out[0] = 4<<4 | 6
	binary.BigEndian.PutUint16(out[2:], uint16(len(out)))
	return out
}
