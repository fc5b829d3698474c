package netstack

import (
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// tcpSegment builds what gVisor's TCP hands the link: headers pushed as
// the stack pushes them, payload as data.
func tcpSegment(srcPort uint16, flags header.TCPFlags, ack uint32, opts []byte, payload []byte) *stack.PacketBuffer {
	thl := header.TCPMinimumSize + len(opts)
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{
		ReserveHeaderBytes: header.IPv4MinimumSize + thl,
		Payload:            buffer.MakeWithData(payload),
	})
	tcp := header.TCP(pkt.TransportHeader().Push(thl))
	tcp.Encode(&header.TCPFields{SrcPort: srcPort, DstPort: 4369, SeqNum: 1000, AckNum: ack,
		DataOffset: uint8(thl), Flags: flags, WindowSize: 5000})
	copy(tcp[header.TCPMinimumSize:], opts)
	pkt.TransportProtocolNumber = header.TCPProtocolNumber
	ip := header.IPv4(pkt.NetworkHeader().Push(header.IPv4MinimumSize))
	ip.Encode(&header.IPv4Fields{TotalLength: uint16(pkt.Size()), TTL: 64,
		Protocol: uint8(header.TCPProtocolNumber), SrcAddr: segSrc, DstAddr: segDst})
	pkt.NetworkProtocolNumber = header.IPv4ProtocolNumber
	return pkt
}

// popAll drains the link's queue into "port/flags/ack" descriptions.
func popAll(l *link) []string {
	var got []string
	for pkt := l.pop(); pkt != nil; pkt = l.pop() {
		tcp := header.TCP(pkt.TransportHeader().Slice())
		got = append(got, segName(tcp.SourcePort(), tcp.Flags(), tcp.AckNumber(), pkt.Data().Size()))
		pkt.DecRef()
	}
	return got
}

func segName(port uint16, flags header.TCPFlags, ack uint32, size int) string {
	kind := "ack"
	if size > 0 {
		kind = "data"
	}
	if flags&header.TCPFlagSyn != 0 {
		kind = "syn"
	}
	return kind + "@" + string(rune('0'+port%10)) + "/" + string(rune('0'+ack%10))
}

func TestLinkHoldsPureACKs(t *testing.T) {
	sack := []byte{header.TCPOptionNOP, header.TCPOptionNOP, header.TCPOptionTS, 10, 0, 0, 0, 1, 0, 0, 0, 2,
		header.TCPOptionNOP, header.TCPOptionNOP, header.TCPOptionSACK, 10, 0, 0, 0, 5, 0, 0, 0, 9}
	ts := []byte{header.TCPOptionNOP, header.TCPOptionNOP, header.TCPOptionTS, 10, 0, 0, 0, 1, 0, 0, 0, 2}
	ack := func(port uint16, n uint32) *stack.PacketBuffer {
		return tcpSegment(port, header.TCPFlagAck, n, ts, nil)
	}
	data := func(port uint16, n uint32) *stack.PacketBuffer {
		return tcpSegment(port, header.TCPFlagAck|header.TCPFlagPsh, n, ts, []byte("reply"))
	}
	// Each case starts on a connection (port 1) whose last segment out was
	// data (an answer), as in a request/response exchange.
	for _, tc := range []struct {
		name  string
		send  []*stack.PacketBuffer
		now   []string // queued at once, after the opening answer
		later []string // queued when the hold expires
		saved uint64
	}{
		{"reply carries the ACK", []*stack.PacketBuffer{ack(1, 5), data(1, 5)}, []string{"data@1/5"}, nil, 1},
		{"reply acknowledges more", []*stack.PacketBuffer{ack(1, 5), data(1, 7)}, []string{"data@1/7"}, nil, 1},
		{"segment acknowledging less keeps it", []*stack.PacketBuffer{ack(1, 5), data(1, 3)}, []string{"ack@1/5", "data@1/3"}, nil, 0},
		{"no reply: sent late", []*stack.PacketBuffer{ack(1, 5)}, nil, []string{"ack@1/5"}, 0},
		{"ACKs never merged, a second goes at once", []*stack.PacketBuffer{ack(1, 5), ack(1, 6)}, []string{"ack@1/5", "ack@1/6"}, nil, 0},
		{"SACK blocks never held", []*stack.PacketBuffer{tcpSegment(1, header.TCPFlagAck, 5, sack, nil)}, []string{"ack@1/5"}, nil, 0},
		{"a receiving-only connection's ACKs go at once", []*stack.PacketBuffer{ack(2, 5), ack(2, 6)}, []string{"ack@2/5", "ack@2/6"}, nil, 0},
		{"other connection untouched", []*stack.PacketBuffer{ack(1, 5), data(2, 5)}, []string{"data@2/5"}, []string{"ack@1/5"}, 0},
		{"SYN not held", []*stack.PacketBuffer{tcpSegment(1, header.TCPFlagSyn|header.TCPFlagAck, 5, ts, nil)}, []string{"syn@1/5"}, nil, 0},
		{"FIN forgets the connection", []*stack.PacketBuffer{tcpSegment(1, header.TCPFlagFin|header.TCPFlagAck, 5, ts, nil), ack(1, 6)}, []string{"ack@1/5", "ack@1/6"}, nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLink(DefaultMTU)
			defer l.Close()
			var list stack.PacketBufferList
			for _, p := range append([]*stack.PacketBuffer{data(1, 4)}, tc.send...) {
				list.PushBack(p)
			}
			if n, err := l.WritePackets(list); err != nil || n != len(tc.send)+1 {
				t.Fatalf("WritePackets = %d, %v", n, err)
			}
			list.DecRef()
			if got := popAll(l); !equalStrings(got, append([]string{"data@1/4"}, tc.now...)) {
				t.Fatalf("queued at once: %v, want %v", got, tc.now)
			}
			var got []string
			deadline := time.Now().Add(5 * time.Second)
			for len(got) < len(tc.later) && time.Now().Before(deadline) {
				select {
				case <-l.ready:
				case <-time.After(time.Until(deadline)):
				}
				got = append(got, popAll(l)...)
			}
			if !equalStrings(got, tc.later) {
				t.Fatalf("queued after the hold: %v, want %v", got, tc.later)
			}
			l.mu.Lock()
			saved, held, armed := l.acksSaved, l.held, l.holdArmed
			l.mu.Unlock()
			if saved != tc.saved || held != 0 || armed {
				t.Fatalf("saved %d ACKs, %d still held, timer armed %v; want %d, 0, false", saved, held, armed, tc.saved)
			}
		})
	}
}

func TestLinkCloseDropsHeldACKs(t *testing.T) {
	l := newLink(DefaultMTU)
	answer := tcpSegment(1, header.TCPFlagAck, 4, nil, []byte("reply"))
	pkt := tcpSegment(1, header.TCPFlagAck, 5, nil, nil)
	var list stack.PacketBufferList
	list.PushBack(answer)
	list.PushBack(pkt)
	if _, err := l.WritePackets(list); err != nil {
		t.Fatal(err)
	}
	l.mu.Lock()
	held := l.held
	l.mu.Unlock()
	if held != 1 {
		t.Fatalf("%d ACKs held, want 1", held)
	}
	l.Close()
	if refs := pkt.ReadRefs(); refs != 1 {
		t.Fatalf("after Close the packet has %d references, want 1 (the caller's)", refs)
	}
	list.DecRef()
}

func equalStrings(a, b []string) bool {
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
