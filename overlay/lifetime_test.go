package overlay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nodewire/nodewire/overlay/control"
)

// TestDaemonCloseDuringReload: reloads (direct and over the control socket)
// race Close. Each either completes or is refused with ErrClosed; none runs
// on a closed device or stack; every Close returns the first's result; a
// Reload after Close is refused clearly.
func TestDaemonCloseDuringReload(t *testing.T) {
	a, b, c := newTestHost(t), newTestHost(t), newTestHost(t)
	dir := t.TempDir()
	cfg := testConfig(t, dir, a, b, "nwtest-life")
	two := mustRead(t, cfg.PeerFile)
	peerFile(t, dir, map[string]testHost{"a": a, "b": b, "c": c}, "")
	three := mustRead(t, cfg.PeerFile)
	d, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	cc := control.Client{Path: cfg.ControlPath}

	// The file flips between two and three peers, so that every reload
	// changes the device and the stack.
	var fileMu sync.Mutex
	flip := func(i int) {
		fileMu.Lock()
		defer fileMu.Unlock()
		body := two
		if i%2 == 0 {
			body = three
		}
		// Replaced whole (as an editor does), never read half-written.
		tmp := cfg.PeerFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
			t.Error(err)
		}
		if err := os.Rename(tmp, cfg.PeerFile); err != nil {
			t.Error(err)
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var okMu sync.Mutex
	ok := 0
	reloader := func(viaSocket bool) {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			flip(i)
			var err error
			if viaSocket {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err = cc.Reload(ctx)
				cancel()
				// Once Close has begun the socket is gone or the request
				// is cut off: the client gets no answer, which is fine.
				var ne *net.OpError
				if errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
					continue
				}
			} else {
				err = d.Reload(context.Background())
			}
			switch {
			case err == nil:
				okMu.Lock()
				ok++
				okMu.Unlock()
			case errors.Is(err, ErrClosed) || strings.Contains(err.Error(), ErrClosed.Error()):
			default:
				t.Errorf("reload (socket %v): %v, want success or ErrClosed", viaSocket, err)
			}
		}
	}
	wg.Add(2)
	go reloader(false)
	go reloader(true)
	waitUntil(t, 20*time.Second, "a few reloads before Close", func() bool {
		okMu.Lock()
		defer okMu.Unlock()
		return ok >= 4
	})

	const closers = 3
	errs := make(chan error, closers)
	for range closers {
		go func() {
			err := d.Close()
			// Every Close returns with the daemon closed.
			select {
			case <-d.dev.Wait():
			default:
				if err == nil {
					err = errors.New("Close returned before the WireGuard device closed")
				}
			}
			errs <- err
		}()
	}
	for range closers {
		select {
		case err := <-errs:
			if err != nil {
				t.Error(err)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("Close hangs")
		}
	}
	close(stop)
	wg.Wait()
	if err := d.Reload(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Reload after Close: %v, want ErrClosed", err)
	}
	if st := d.Status(); st.Reloads == 0 || st.ReloadErr != "" {
		t.Errorf("status after Close: %d reloads, error %q; a refused reload after Close is no rejected file", st.Reloads, st.ReloadErr)
	}
}

// TestDaemonCloseEndsIdleRequests: a UAPI or control client that connects
// and sends nothing does not hold Close up.
func TestDaemonCloseEndsIdleRequests(t *testing.T) {
	a, b := newTestHost(t), newTestHost(t)
	dir := t.TempDir()
	cfg := testConfig(t, dir, a, b, "nwtest-idle")
	d, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	var idle []net.Conn
	ctl, err := net.Dial("unix", cfg.ControlPath)
	if err != nil {
		t.Fatal(err)
	}
	idle = append(idle, ctl)
	if d.uapi != nil { // no UAPI socket without /var/run/wireguard
		u, err := net.Dial("unix", d.uapi.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		idle = append(idle, u)
	}
	// Both requests are being served before Close begins.
	waitUntil(t, 10*time.Second, "the idle requests to be served", func() bool {
		d.reqs.mu.Lock()
		defer d.reqs.mu.Unlock()
		return len(d.reqs.conns) == len(idle)
	})
	done := make(chan error, 1)
	go func() { done <- d.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close waits for idle control or UAPI clients")
	}
	for _, c := range idle {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("idle client %s: %v, want its connection closed", c.RemoteAddr(), err)
		}
		c.Close()
	}
}

// TestDaemonCloseResetsPeers: two daemons joined over loopback UDP; a bulk
// transfer from a client on host a to a service on host b runs through the
// overlay while b's daemon closes. The client learns at once (a reset or
// EOF), not after a keepalive or user timeout; so does a quiet connection.
func TestDaemonCloseResetsPeers(t *testing.T) {
	ha, hb := newTestHost(t), newTestHost(t)
	portA, portB, epmd, svc := freePort(t), freePort(t), freePort(t), freePort(t)
	// Each host has its own copy of the file, with its own faces, as on two
	// machines: a sees b at 127.95.1.2, b's own face is 127.96.1.2.
	file := func(faces string) string {
		return fmt.Sprintf("overlay: {prefix: 10.95.0.0/16, faces: %s}\nnetworks:\n  lab: {prefix: 10.95.1.0/24}\npeers:\n"+
			"  a: {network: lab, public_key: %s, address: 10.95.1.1, endpoint: 127.0.0.1:%d}\n"+
			"  b: {network: lab, public_key: %s, address: 10.95.1.2, endpoint: 127.0.0.1:%d, expose: [%d]}\n",
			faces, ha.pub, portA, hb.pub, portB, svc)
	}
	start := func(name string, h testHost, faces string, port uint16) *Daemon {
		dir := t.TempDir()
		cfg := Config{
			PeerFile: filepath.Join(dir, "peers.yaml"), Self: name, PrivateKeyFile: filepath.Join(dir, "key"),
			ListenPort: port, EPMDPort: epmd, ControlPath: filepath.Join(dir, "ctl.sock"), Interface: "nwtest-rst" + name,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		}
		if err := os.WriteFile(cfg.PeerFile, []byte(file(faces)), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(cfg.PrivateKeyFile, []byte(h.priv+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		d, err := New(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return d
	}
	start("a", ha, "127.95.0.0/16", portA)
	db := start("b", hb, "127.96.0.0/16", portB)

	// The service on b's own face: reads everything, answers a ping.
	ln, err := net.Listen("tcp4", fmt.Sprintf("127.96.1.2:%d", svc))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var served sync.WaitGroup
	defer served.Wait()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			served.Add(1)
			go func() {
				defer served.Done()
				defer c.Close()
				buf := make([]byte, 64<<10)
				for {
					n, err := c.Read(buf)
					if err != nil {
						return
					}
					if n == 1 && buf[0] == '?' {
						c.Write([]byte{'!'})
					}
				}
			}()
		}
	}()
	dial := func() net.Conn {
		t.Helper()
		var c net.Conn
		// The first dial waits for the WireGuard handshake.
		waitUntil(t, 30*time.Second, "a connection from a through the overlay", func() bool {
			var err error
			c, err = net.DialTimeout("tcp4", fmt.Sprintf("127.95.1.2:%d", svc), 15*time.Second)
			if err != nil {
				return false
			}
			c.SetDeadline(time.Now().Add(15 * time.Second))
			if _, err = c.Write([]byte{'?'}); err == nil {
				_, err = io.ReadFull(c, make([]byte, 1))
			}
			if err != nil {
				c.Close()
				return false
			}
			c.SetDeadline(time.Time{})
			return true
		})
		return c
	}
	quiet := dial()
	defer quiet.Close()
	bulk := dial()
	defer bulk.Close()

	// Bulk: a writes as fast as the overlay takes it.
	bulkErr := make(chan error, 1)
	var sent sync.WaitGroup
	sent.Add(1)
	go func() {
		defer sent.Done()
		chunk := make([]byte, 256<<10)
		for {
			if _, err := bulk.Write(chunk); err != nil {
				bulkErr <- err
				return
			}
		}
	}()
	waitUntil(t, 10*time.Second, "bulk data to reach b", func() bool {
		return db.plane.Stats()["a"].Open == 2 && daemonRx(t, db) > 4<<20
	})

	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// Well under keepalive (30 s idle + probes) and the user timeout
	// (90 s): only a reset gets through in time.
	const prompt = 10 * time.Second
	select {
	case err := <-bulkErr:
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("bulk writer: %v", err)
		}
	case <-time.After(prompt):
		bulk.Close()
		sent.Wait()
		t.Fatal("the bulk writer on a still writes after b closed")
	}
	quiet.SetReadDeadline(time.Now().Add(prompt))
	if _, err := quiet.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("quiet connection on a after b closed: %v, want a reset or EOF", err)
	}
	sent.Wait()
}

// daemonRx is the bytes d's WireGuard device has received.
func daemonRx(t *testing.T, d *Daemon) int64 {
	t.Helper()
	text, err := d.dev.IpcGet()
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, st := range parseUAPIGet(text) {
		total += int64(st.Rx)
	}
	return total
}

// waitUntil polls cond until it holds or d passes.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
