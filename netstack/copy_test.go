package netstack

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// tcpPair returns both ends of one loopback TCP connection.
func tcpPair(t testing.TB) (client, server *net.TCPConn) {
	t.Helper()
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ch := make(chan *net.TCPConn, 1)
	go func() {
		c, err := ln.AcceptTCP()
		if err != nil {
			ch <- nil
			return
		}
		ch <- c
	}()
	c, err := net.DialTCP("tcp4", nil, ln.Addr().(*net.TCPAddr))
	if err != nil {
		t.Fatal(err)
	}
	s := <-ch
	if s == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { c.Close(); s.Close() })
	return c, s
}

// splicedPair joins two TCP connections with Splice and returns their outer
// ends, Splice's result and the byte counters (a→b, b→a).
func splicedPair(t testing.TB) (a, b *net.TCPConn, done <-chan error, ab, ba *atomic.Uint64) {
	t.Helper()
	a, aIn := tcpPair(t)
	b, bIn := tcpPair(t)
	ab, ba = new(atomic.Uint64), new(atomic.Uint64)
	ch := make(chan error, 1)
	go func() { ch <- Splice(aIn, bIn, ab, ba) }()
	return a, b, ch, ab, ba
}

func readAllTimeout(t *testing.T, c net.Conn) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return b
}

func waitDone(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Splice did not return")
		return nil
	}
}

func TestSpliceHalfClose(t *testing.T) {
	for _, first := range []string{"a", "b"} {
		t.Run("first EOF from "+first, func(t *testing.T) {
			a, b, done, ab, ba := splicedPair(t)
			x, y := a, b
			if first == "b" {
				x, y = b, a
			}
			// x says its piece and closes its sending side...
			x.Write([]byte("request"))
			x.CloseWrite()
			if got := readAllTimeout(t, y); string(got) != "request" {
				t.Fatalf("got %q", got)
			}
			// ...and still hears the answer over the other half.
			y.Write([]byte("answer"))
			y.CloseWrite()
			if got := readAllTimeout(t, x); string(got) != "answer" {
				t.Fatalf("got %q", got)
			}
			if err := waitDone(t, done); err != nil {
				t.Fatalf("Splice: %v", err)
			}
			wantAB, wantBA := uint64(len("request")), uint64(len("answer"))
			if first == "b" {
				wantAB, wantBA = wantBA, wantAB
			}
			if ab.Load() != wantAB || ba.Load() != wantBA {
				t.Errorf("counted %d a→b, %d b→a; want %d, %d", ab.Load(), ba.Load(), wantAB, wantBA)
			}
		})
	}
}

func TestSpliceLargeTransferIntact(t *testing.T) {
	const size = 16 << 20
	a, b, done, ab, ba := splicedPair(t)
	send := func(c *net.TCPConn, seed uint64, sum chan<- [32]byte) {
		h := sha256.New()
		r := rand.New(rand.NewPCG(seed, seed))
		buf := make([]byte, 100_000) // not a multiple of the copy buffer
		for left := size; left > 0; {
			n := min(left, len(buf))
			for i := range buf[:n] {
				buf[i] = byte(r.Uint32())
			}
			h.Write(buf[:n])
			if _, err := c.Write(buf[:n]); err != nil {
				t.Errorf("write: %v", err)
				break
			}
			left -= n
		}
		c.CloseWrite()
		sum <- [32]byte(h.Sum(nil))
	}
	recv := func(c *net.TCPConn, sum chan<- [32]byte) {
		h := sha256.New()
		c.SetReadDeadline(time.Now().Add(2 * time.Minute)) // generous: -race on a loaded machine
		n, err := io.Copy(h, c)
		if err != nil || n != size {
			t.Errorf("received %d bytes, err %v; want %d", n, err, size)
		}
		sum <- [32]byte(h.Sum(nil))
	}
	sentA, sentB, gotA, gotB := make(chan [32]byte, 1), make(chan [32]byte, 1), make(chan [32]byte, 1), make(chan [32]byte, 1)
	go send(a, 1, sentA)
	go send(b, 2, sentB)
	go recv(a, gotA)
	go recv(b, gotB)
	if <-sentA != <-gotB {
		t.Error("a→b data corrupted")
	}
	if <-sentB != <-gotA {
		t.Error("b→a data corrupted")
	}
	if err := waitDone(t, done); err != nil {
		t.Fatalf("Splice: %v", err)
	}
	if ab.Load() != size || ba.Load() != size {
		t.Errorf("counted %d, %d; want %d each way", ab.Load(), ba.Load(), size)
	}
}

func TestSpliceResetEndsBoth(t *testing.T) {
	a, b, done, _, _ := splicedPair(t)
	a.Write([]byte("x"))
	buf := make([]byte, 1)
	b.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.ReadFull(b, buf); err != nil {
		t.Fatal(err)
	}
	b.SetLinger(0)
	b.Close() // a reset, not an orderly close
	if err := waitDone(t, done); err == nil {
		t.Error("Splice returned nil after a reset")
	}
	// a's connection must end too, not hang half-open.
	a.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := a.Read(buf); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("a still open after b's reset: %v", err)
	}
}

func TestSpliceNoGoroutineLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	for range 20 {
		func() {
			a, b, done, _, _ := splicedPair(t)
			a.Write([]byte("ping"))
			a.CloseWrite()
			readAllTimeout(t, b)
			b.CloseWrite()
			readAllTimeout(t, a)
			waitDone(t, done)
			a.Close()
			b.Close()
		}()
	}
	waitFor(t, 10*time.Second, "goroutines to end", func() bool { return runtime.NumGoroutine() <= before+2 })
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// BenchmarkCopy measures Splice between two loopback TCP connections, one
// way, 1 MiB per op; allocs/op shows whether the copy allocates per read.
func BenchmarkCopy(b *testing.B) {
	src, dst, done, _, _ := splicedPair(b)
	chunk := bytes.Repeat([]byte{0x5a}, 1<<20)
	drained := make(chan int64, 1)
	go func() {
		n, _ := io.Copy(io.Discard, dst)
		drained <- n
	}()
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := src.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	src.CloseWrite()
	n := <-drained
	b.StopTimer()
	if n != int64(b.N)*int64(len(chunk)) {
		b.Fatalf("drained %d bytes, want %d", n, int64(b.N)*int64(len(chunk)))
	}
	dst.CloseWrite()
	<-done
}
