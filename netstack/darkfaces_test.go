package netstack

import (
	"errors"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"
)

// A peer the policy lets this host exchange nothing with has a dark face:
// no accept goroutine of its own, a local dial there is refused and
// counted as before; a reload that connects the networks lights it, and
// one that parts them darkens it again.
func TestDarkFaces(t *testing.T) {
	p := newPair(t, "pipe", func(*world) fileOpts { return fileOpts{} }) // no rule: strangers
	key := faceKey{"pay-1", p.w.epmdPort}
	dark := func() bool {
		p.mon.stack.faces.mu.Lock()
		defer p.mon.stack.faces.mu.Unlock()
		f := p.mon.stack.faces.faces[key]
		if f == nil {
			t.Fatalf("no face for pay-1's epmd")
		}
		return f.dark
	}
	epmd := netip.AddrPortFrom(p.mon.face("pay-1"), p.w.epmdPort)
	refused := func() {
		t.Helper()
		before := p.mon.stack.Stats()["pay-1"].DeniedOut
		// Accepted, then reset at once: the reset may even beat the
		// dialler's check of its connect, which then fails with it.
		if c, err := net.DialTimeout("tcp4", epmd.String(), 5*time.Second); err == nil {
			c.SetDeadline(time.Now().Add(10 * time.Second))
			if n, err := c.Read(make([]byte, 1)); err == nil {
				t.Fatalf("read %d bytes on a refused connection", n)
			} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("refused connection left open: %v", err)
			}
			c.Close()
		} else if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("dial pay-1's dark face: %v, want accepted then reset", err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for p.mon.stack.Stats()["pay-1"].DeniedOut != before+1 {
			if time.Now().After(deadline) {
				t.Fatalf("pay-1's outbound denials %d -> %d, want one more", before, p.mon.stack.Stats()["pay-1"].DeniedOut)
			}
			time.Sleep(time.Millisecond) // polling a counter, with a deadline
		}
	}
	if !dark() {
		t.Fatal("pay-1's face is not dark with no rule")
	}
	refused()
	refused() // the one goroutine goes on accepting

	p.mon.stack.Apply(p.w.snap(t, monFaces, "mon-1", erlangRule(p.w)))
	if dark() {
		t.Fatal("pay-1's face still dark once monitoring may reach payments")
	}
	p.mon.stack.Apply(p.w.snap(t, monFaces, "mon-1", fileOpts{}))
	if !dark() {
		t.Fatal("pay-1's face not dark again once the rule is gone")
	}
	refused()
}
