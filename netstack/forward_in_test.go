package netstack

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/nodewire/nodewire/netstack/erldist"
)

// TestInboundReplyNotesPort: the local node's answer to send_name reaches
// the dialling side whole, and when the node names itself as the node its
// port is known for, the port counts as registered again (localPorts.note),
// so the next connection needs no NAMES query; any other answer notes
// nothing.
func TestInboundReplyNotesPort(t *testing.T) {
	ok := func(node string) []byte { return erldist.AppendReply(nil, node) }
	tests := []struct {
		name  string
		reply []byte // what the node answers send_name with, in two writes: status, then the rest
		noted bool
	}{
		{"the node asked for", ok("app@pay-1"), true},
		{"another node on the port", ok("other@pay-1"), false},
		{"status not ok", []byte{0, 4, 's', 'n', 'o', 'k'}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newPair(t, "pipe", erlangRule)
			paySelf := p.pay.face("pay-1")
			payOnMon := p.mon.face("pay-1")
			ln := serveTCP(t, netip.AddrPortFrom(paySelf, 0), func(c *net.TCPConn) {
				var hdr [2]byte
				if _, err := io.ReadFull(c, hdr[:]); err != nil {
					return
				}
				if _, err := io.CopyN(io.Discard, c, int64(binary.BigEndian.Uint16(hdr[:]))); err != nil {
					return
				}
				c.Write(tt.reply[:2+int(binary.BigEndian.Uint16(tt.reply))])
				c.Write(tt.reply[2+int(binary.BigEndian.Uint16(tt.reply)):])
				io.Copy(c, c)
			})
			port := uint16(ln.Addr().(*net.TCPAddr).Port)
			p.pay.epmd.register("app", port)
			if r, err := portPlease(t, netip.AddrPortFrom(payOnMon, p.w.epmdPort), "app"); err != nil || !r.OK() {
				t.Fatalf("PORT_PLEASE2: %+v, %v", r, err)
			}
			// Forget what the relayed PORT2_RESP noted: only the answer
			// below may note the port again.
			l := p.pay.stack.local
			l.mu.Lock()
			clear(l.learned)
			l.mu.Unlock()

			c := dialTCP(t, netip.AddrPortFrom(payOnMon, port))
			c.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := c.Write(erldist.AppendSendName(nil, "x@mon-1")); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len(tt.reply))
			if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, tt.reply) {
				t.Fatalf("reply %x, %v; want %x", got, err, tt.reply)
			}
			roundTrip(t, c, 4<<10) // then the connection carries on

			l.mu.Lock()
			lp, noted := l.learned[port]
			l.mu.Unlock()
			if noted != tt.noted || noted && lp.name != "app" {
				t.Errorf("port noted %v (%+v), want %v", noted, lp, tt.noted)
			}
		})
	}
}
