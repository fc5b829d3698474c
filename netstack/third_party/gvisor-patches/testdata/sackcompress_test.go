// The harness (testing/context) imports package tcp, so these tests are an
// external test package; upstream-test.sh copies this file next to the tcp
// package's sources, where it builds into the same test binary (and under
// the same TestMain and leak check) as the package's own tests.
package tcp_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/faketime"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/seqnum"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp/test/e2e"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp/testing/context"
)

// Patch 0012's limits (rcv.go: sackDupThresh, sackCompressMax,
// sackCompressDelay), as the tests expect them.
const (
	sackDupThresh     = 3
	sackCompressMax   = 44
	sackCompressDelay = time.Millisecond
)

// sackSegLen is the payload of every segment the peer sends.
const sackSegLen = 10

// sackConn is a connection whose stack runs on a manual clock, so a held
// ACK goes out only when the test advances the clock, and whose peer (rep)
// sends numbered segments: segment k covers [base+k*sackSegLen,
// base+(k+1)*sackSegLen), and segment 0 is the hole the tests leave.
type sackConn struct {
	t      *testing.T
	c      *context.Context
	clock  *faketime.ManualClock
	rep    *context.RawEndpoint
	base   seqnum.Value // where segment 0, the hole, starts: the endpoint's RcvNxt
	sndNxt seqnum.Value // the endpoint's next sequence number
	ts     uint32       // the peer's last TSval
}

// newSACKConn connects an endpoint with SACK and timestamps (an ACK then
// carries at most three SACK blocks, as on nodewire's links). With rtt > 0
// it gives the endpoint a round-trip estimate first: the endpoint sends a
// byte, the clock advances rtt, and the peer acknowledges it echoing its
// TSval, so SRTT = rtt. With rtt == 0 the endpoint has no estimate: the
// handshake takes no time on the manual clock, so it gives no sample.
func newSACKConn(t *testing.T, rtt time.Duration) *sackConn {
	t.Helper()
	clock := faketime.NewManualClock()
	c := context.NewWithOpts(t, context.Options{
		EnableV4: true,
		EnableV6: true,
		MTU:      e2e.DefaultMTU,
		Clock:    clock,
	})
	t.Cleanup(c.Cleanup)
	e2e.SetStackSACKPermitted(t, c, true)
	// No RACK: its reorder and tail loss probe timers would send segments
	// of their own when the clock advances.
	e2e.SetStackTCPRecovery(t, c, 0)
	rep := e2e.CreateConnectedWithSACKAndTS(c)
	s := &sackConn{t: t, c: c, clock: clock, rep: rep, base: rep.NextSeqNum, sndNxt: c.IRS.Add(1), ts: rep.TSVal}
	s.expectNone("after the handshake")

	if rtt > 0 {
		s.write([]byte{1})
		data := s.expect("the endpoint's first byte")
		if data.seq != s.sndNxt-1 || data.ack != s.base || data.payload != 1 {
			t.Fatalf("the endpoint's first byte: got %v", data)
		}
		clock.Advance(rtt)
		rep.AckNum = s.sndNxt
		rep.RecentTS = data.tsVal
		s.ts++
		rep.SendPacketWithTS(nil, s.ts)
		s.expectNone("after the peer acknowledged the first byte")
	}
	var info tcpip.TCPInfoOption
	if err := c.EP.GetSockOpt(&info); err != nil {
		t.Fatalf("GetSockOpt(TCPInfoOption): %s", err)
	}
	if info.RTT != rtt {
		t.Fatalf("the endpoint's SRTT is %v, want %v", info.RTT, rtt)
	}
	return s
}

// hold is how long patch 0012 holds an ACK on a connection whose SRTT is
// rtt: 5% of it, at most sackCompressDelay.
func hold(rtt time.Duration) time.Duration {
	return min(rtt/20, sackCompressDelay)
}

// block is the SACK block segments [from, to) make.
func (s *sackConn) block(from, to int) header.SACKBlock {
	return header.SACKBlock{
		Start: s.base.Add(seqnum.Size(from * sackSegLen)),
		End:   s.base.Add(seqnum.Size(to * sackSegLen)),
	}
}

// send sends segment k.
func (s *sackConn) send(k int) {
	s.rep.NextSeqNum = s.base.Add(seqnum.Size(k * sackSegLen))
	s.ts++
	s.rep.SendPacketWithTS(make([]byte, sackSegLen), s.ts)
}

// write has the endpoint send data.
func (s *sackConn) write(data []byte) {
	s.t.Helper()
	n, err := s.c.EP.Write(bytes.NewReader(data), tcpip.WriteOptions{})
	if err != nil || n != int64(len(data)) {
		s.t.Fatalf("Write(%d bytes) = %d, %v", len(data), n, err)
	}
	s.sndNxt = s.sndNxt.Add(seqnum.Size(len(data)))
}

// settle returns once the endpoint has processed every segment sent to it,
// and everything it sent in response is on the link: the peer's segments
// reach the endpoint's queue synchronously (SendPacket), a processor
// goroutine handles them, and Pause returns only once every processor's
// queue is empty and it is idle. No wall-clock wait is involved.
func (s *sackConn) settle() {
	s.c.Stack().Pause()
	s.c.Stack().Resume()
}

// seg is what the tests look at in a segment the endpoint sent.
type seg struct {
	flags    header.TCPFlags
	seq, ack seqnum.Value
	payload  int
	tsVal    uint32
	sack     []header.SACKBlock
}

func (g seg) String() string {
	return fmt.Sprintf("%s seq %d ack %d len %d SACK %v", g.flags, g.seq, g.ack, g.payload, g.sack)
}

func parseSeg(v *buffer.View) seg {
	tcpHdr := header.TCP(header.IPv4(v.AsSlice()).Payload())
	opts := tcpHdr.ParsedOptions()
	return seg{
		flags:   tcpHdr.Flags(),
		seq:     seqnum.Value(tcpHdr.SequenceNumber()),
		ack:     seqnum.Value(tcpHdr.AckNumber()),
		payload: len(tcpHdr.Payload()),
		tsVal:   opts.TSVal,
		sack:    opts.SACKBlocks,
	}
}

// next returns the next segment the endpoint sent, if any, once it settled.
func (s *sackConn) next() (seg, bool) {
	s.t.Helper()
	s.settle()
	v := s.c.GetPacketNonBlocking()
	if v == nil {
		return seg{}, false
	}
	defer v.Release()
	return parseSeg(v), true
}

// expect returns the segment the endpoint must have sent.
func (s *sackConn) expect(when string) seg {
	s.t.Helper()
	g, ok := s.next()
	if !ok {
		s.t.Fatalf("%s: the endpoint sent nothing, want a segment", when)
	}
	return g
}

// expectNone checks that the endpoint sent nothing.
func (s *sackConn) expectNone(when string) {
	s.t.Helper()
	if g, ok := s.next(); ok {
		s.t.Fatalf("%s: the endpoint sent %v, want nothing", when, g)
	}
}

// expectACK checks that the endpoint sent exactly one segment: a pure
// duplicate ACK of the hole carrying the SACK blocks want, newest first.
func (s *sackConn) expectACK(when string, want ...header.SACKBlock) {
	s.t.Helper()
	g := s.expect(when)
	if g.flags != header.TCPFlagAck || g.seq != s.sndNxt || g.ack != s.base || g.payload != 0 || !sameBlocks(g.sack, want) {
		s.t.Fatalf("%s: the endpoint sent %v, want ACK seq %d ack %d len 0 SACK %v", when, g, s.sndNxt, s.base, want)
	}
	s.expectNone(when + ", after its ACK")
}

func sameBlocks(a, b []header.SACKBlock) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// sendExtending sends segments from..to-1 after the hole (segment 0), each
// extending the newest SACK block [from, k), and checks which are ACKed at
// once: the first sackDupThresh duplicate ACKs of the hole, and the rest
// only when ackedAt says so. It returns how many it held.
func (s *sackConn) sendExtending(from, to int, ackedAt func(k, held int) bool) int {
	s.t.Helper()
	held := 0
	for k := from; k < to; k++ {
		s.send(k)
		when := fmt.Sprintf("segment %d of [%d, %d)", k, from, to)
		if k-from < sackDupThresh || ackedAt(k, held) {
			s.expectACK(when, s.block(from, k+1))
			held = 0
			continue
		}
		s.expectNone(when)
		held++
	}
	return held
}

func never(int, int) bool { return false }

// TestSACKCompress checks patch 0012 (SACK compression) segment by
// segment, on a manual clock: which duplicate ACKs go at once, which are
// held, for how long, and what cancels a held one.
func TestSACKCompress(t *testing.T) {
	// 1. A hole, then n segments each extending the newest block: three
	// duplicate ACKs at once, then nothing until the hold ends, then one
	// ACK covering all n.
	t.Run("ExtendingHeldUntilTimer", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			rtt  time.Duration
			n    int
		}{
			{"srtt40ms_holdIsCap", 40 * time.Millisecond, 10},
			{"srtt10ms_holdIs5pct", 10 * time.Millisecond, 10},
			{"srtt40ms_oneHeld", 40 * time.Millisecond, sackDupThresh + 1},
		} {
			t.Run(tc.name, func(t *testing.T) {
				s := newSACKConn(t, tc.rtt)
				d := hold(tc.rtt)
				held := s.sendExtending(1, tc.n+1, never)
				if want := tc.n - sackDupThresh; held != want {
					t.Fatalf("held %d ACKs, want %d", held, want)
				}
				s.clock.Advance(d - time.Nanosecond)
				s.expectNone(fmt.Sprintf("%v after the first held segment (hold %v)", d-time.Nanosecond, d))
				s.clock.Advance(time.Nanosecond)
				s.expectACK(fmt.Sprintf("%v after the first held segment", d), s.block(1, tc.n+1))
				s.clock.Advance(time.Second)
				s.expectNone("a second after the held ACK went")
				t.Logf("SRTT %v: %d segments after a hole: %d ACKs at once, %d held for %v, then one ACK SACK %v", tc.rtt, tc.n, sackDupThresh, held, d, s.block(1, tc.n+1))
			})
		}
	})

	// 2. A held ACK, then a segment that starts a new block (a second
	// hole): an ACK at once carrying both blocks, the newest first; a
	// segment extending that new block is held again.
	t.Run("NewBlockACKedAtOnce", func(t *testing.T) {
		const rtt = 40 * time.Millisecond
		s := newSACKConn(t, rtt)
		if held := s.sendExtending(1, 6, never); held != 2 {
			t.Fatalf("held %d ACKs, want 2", held)
		}
		s.send(7) // segment 6 is a second hole
		s.expectACK("segment 7, after a second hole", s.block(7, 8), s.block(1, 6))
		s.clock.Advance(hold(rtt))
		s.expectNone("the hold after the new block's ACK")
		s.send(8)
		s.expectNone("segment 8, extending the new block")
		s.clock.Advance(hold(rtt))
		s.expectACK("the hold after segment 8", s.block(7, 9), s.block(1, 6))
		t.Logf("held 2, then a new block [7,8) ACKed at once with %v %v; its extension held and ACKed %v later", s.block(7, 8), s.block(1, 6), hold(rtt))
	})

	// 3. A held ACK, then the endpoint sends data: the data segment
	// carries the acknowledgement and SACK blocks, and the hold timer is
	// cancelled.
	t.Run("DataSegmentCarriesHeldACK", func(t *testing.T) {
		const rtt = 40 * time.Millisecond
		s := newSACKConn(t, rtt)
		if held := s.sendExtending(1, 8, never); held != 4 {
			t.Fatalf("held %d ACKs, want 4", held)
		}
		data := []byte("reply")
		seqBefore := s.sndNxt
		s.write(data)
		g := s.expect("the endpoint's write")
		if g.flags != header.TCPFlagAck|header.TCPFlagPsh || g.seq != seqBefore || g.ack != s.base || g.payload != len(data) || !sameBlocks(g.sack, []header.SACKBlock{s.block(1, 8)}) {
			t.Fatalf("the endpoint's write: sent %v, want ACK|PSH seq %d ack %d len %d SACK %v", g, seqBefore, s.base, len(data), s.block(1, 8))
		}
		s.expectNone("after the data segment")
		s.clock.Advance(hold(rtt))
		s.expectNone("the hold after the data segment (timer cancelled)")
		s.clock.Advance(time.Second)
		s.expectNone("a second after the data segment")
		t.Logf("held 4, then the data segment %v carried them; no ACK when the hold passed", g)
	})

	// 4. At most sackCompressMax held: the next extending segment is
	// ACKed at once, and that ACK cancels the timer.
	t.Run("CapOf44Held", func(t *testing.T) {
		const rtt = 40 * time.Millisecond
		s := newSACKConn(t, rtt)
		n := sackDupThresh + sackCompressMax + 1
		held := s.sendExtending(1, n+1, func(k, held int) bool { return held == sackCompressMax })
		if held != 0 {
			t.Fatalf("%d ACKs still held after the segment over the cap, want 0", held)
		}
		s.clock.Advance(hold(rtt))
		s.expectNone("the hold after the cap's ACK (timer cancelled)")
		t.Logf("%d extending segments: %d at once, %d held, segment %d ACKed at once with SACK %v", n, sackDupThresh, sackCompressMax, n, s.block(1, n+1))
	})

	// 5. No round-trip estimate yet: nothing is held (upstream's behaviour).
	t.Run("NoRTTEstimateNoHolding", func(t *testing.T) {
		s := newSACKConn(t, 0)
		const n = 10
		s.sendExtending(1, n+1, func(int, int) bool { return true })
		s.clock.Advance(time.Second)
		s.expectNone("a second after the last segment")
		t.Logf("no SRTT: all %d out-of-order segments ACKed at once", n)
	})

	// 6. The count of duplicate ACKs that go at once is per RcvNxt: once
	// the hole is filled and a new one opens, three go at once again.
	t.Run("NewHoleResetsCount", func(t *testing.T) {
		const rtt = 40 * time.Millisecond
		s := newSACKConn(t, rtt)
		if held := s.sendExtending(1, 6, never); held != 2 {
			t.Fatalf("held %d ACKs, want 2", held)
		}
		s.send(0) // fill the hole: RcvNxt moves to segment 6
		g := s.expect("segment 0, filling the hole")
		if want := s.block(6, 6).Start; g.ack != want || len(g.sack) != 0 {
			t.Fatalf("segment 0, filling the hole: sent %v, want ACK %d without SACK", g, want)
		}
		s.expectNone("after the cumulative ACK")
		s.base = s.base.Add(6 * sackSegLen) // segment 6 is the new hole
		if held := s.sendExtending(1, 6, never); held != 2 {
			t.Fatalf("held %d ACKs after the new hole, want 2", held)
		}
		s.clock.Advance(hold(rtt))
		s.expectACK("the hold after the new hole", s.block(1, 6))
		t.Logf("hole filled (%v), a new hole: again %d ACKs at once, then held", g, sackDupThresh)
	})
}
