package control

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// serveOnce answers each connection on a fresh socket with reply and
// hands the request line it read to got.
func serveOnce(t *testing.T, reply string) (path string, got chan Request) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "ctl.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got = make(chan Request, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			line, _ := bufio.NewReader(c).ReadBytes('\n')
			var req Request
			if err := json.Unmarshal(line, &req); err == nil {
				got <- req
			}
			c.Write([]byte(reply + "\n"))
			c.Close()
		}
	}()
	return path, got
}

func TestClient(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	path, got := serveOnce(t, `{"ok":true,"ping":{"peer":"pay-2","seq":3,"replied":true,"rtt_ns":1500000}}`)
	r, err := Client{Path: path}.Ping(ctx, "pay-2", 3, time.Second)
	if err != nil || r.Peer != "pay-2" || !r.Replied || r.RTT != 1500*time.Microsecond {
		t.Fatalf("Ping = %+v, %v", r, err)
	}
	if req := <-got; req != (Request{Op: OpPing, To: "pay-2", Seq: 3, Timeout: time.Second}) {
		t.Errorf("request on the wire %+v", req)
	}

	path, _ = serveOnce(t, `{"ok":false,"error":"peers.yaml:3: bad"}`)
	if err := (Client{Path: path}).Reload(ctx); err == nil || err.Error() != "overlayd reload: peers.yaml:3: bad" {
		t.Errorf("Reload refused: %v, want the daemon's reason", err)
	}

	path, _ = serveOnce(t, `{"ok":true}`)
	if _, err := (Client{Path: path}).Status(ctx); err == nil || !strings.Contains(err.Error(), "empty reply") {
		t.Errorf("Status with no status in the reply: %v", err)
	}
	if _, err := (Client{Path: path}).Explain(ctx, "a", "b", 0); err == nil || !strings.Contains(err.Error(), "empty reply") {
		t.Errorf("Explain with no explanation in the reply: %v", err)
	}

	if _, err := (Client{Path: filepath.Join(t.TempDir(), "none.sock")}).Status(ctx); err == nil || !strings.Contains(err.Error(), "connect to overlayd at ") {
		t.Errorf("no daemon: %v", err)
	}
}
