package tcpbind

import (
	"crypto/tls"
	"errors"
	"net"
	"testing"
	"time"
)

func dialTLS(t *testing.T, addr string) (*tls.Conn, error) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := tc.Handshake(); err != nil {
		c.Close()
		return nil, err
	}
	return tc, nil
}

// closedByPeer reports whether the server closed c (a read ends without data).
func closedByPeer(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// TestPendingBound: a source may hold maxPendingPerIP streams the device has
// not answered; more are closed at once, and a closed one frees its slot.
func TestPendingBound(t *testing.T) {
	a := open(t, "127.0.0.1:0")
	addr := a.b.ListenAddr().String()
	var held []*tls.Conn
	for i := range maxPendingPerIP {
		c, err := dialTLS(t, addr)
		if err != nil {
			t.Fatalf("stream %d: %v", i, err)
		}
		held = append(held, c)
	}
	// With TLS 1.3 the client's handshake may finish before the server
	// closes: the refusal shows as the stream ending.
	if c, err := dialTLS(t, addr); err == nil {
		if !closedByPeer(c) {
			t.Fatalf("stream %d from one source was kept", maxPendingPerIP+1)
		}
		c.Close()
	}
	held[0].Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := dialTLS(t, addr)
		if err == nil {
			c.Write(appendFrame(nil, message(msgInitiation, sizeInitiation)))
			c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			_, rerr := c.Read(make([]byte, 1))
			var ne net.Error
			if errors.As(rerr, &ne) && ne.Timeout() {
				c.Close()
				break // kept open: the slot was freed
			}
			c.Close()
		}
		if time.Now().After(deadline) {
			t.Fatal("closing a pending stream did not free its slot")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, c := range held[1:] {
		c.Close()
	}
}

func TestJunkStreamsClosed(t *testing.T) {
	a := open(t, "127.0.0.1:0")
	addr := a.b.ListenAddr().String()
	for name, data := range map[string][]byte{
		"http":      []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
		"bad frame": appendFrame(nil, message(9, 64)),
	} {
		c, err := dialTLS(t, addr)
		if err != nil {
			t.Fatal(err)
		}
		c.Write(data)
		if !closedByPeer(c) {
			t.Errorf("%s: stream not closed", name)
		}
		c.Close()
	}
	// Valid-looking messages the device never answers: at most
	// maxPendingFrames of them reach it, then the stream is closed.
	c, err := dialTLS(t, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var junk []byte
	for range maxPendingFrames + 1 {
		junk = appendFrame(junk, message(msgInitiation, sizeInitiation))
	}
	c.Write(junk)
	if !closedByPeer(c) {
		t.Fatal("a stream past maxPendingFrames unanswered messages was kept")
	}
	got := 0
	for {
		select {
		case <-a.got:
			got++
			continue
		case <-time.After(100 * time.Millisecond):
		}
		break
	}
	if got > maxPendingFrames {
		t.Fatalf("%d messages of an unanswered stream reached the device, want at most %d", got, maxPendingFrames)
	}
}
