package tcpbind

import (
	"bufio"
	"context"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// connectProxy is a minimal in-process HTTP CONNECT proxy requiring user:pass.
func connectProxy(t *testing.T, user, pass string) (addr string, seen chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	seen = make(chan string, 16)
	want := "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				seen <- req.Method + " " + req.Host
				if req.Header.Get("Proxy-Authorization") != want {
					io.WriteString(c, "HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")
					return
				}
				up, err := net.Dial("tcp", req.Host)
				if err != nil {
					io.WriteString(c, "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
					return
				}
				defer up.Close()
				io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
				go io.Copy(up, c)
				io.Copy(c, up)
			}()
		}
	}()
	return ln.Addr().String(), seen
}

func TestProxyDialer(t *testing.T) {
	echo, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echo.Close()
	go func() {
		for {
			c, err := echo.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	paddr, seen := connectProxy(t, "alice", "s3cret")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	dial, err := ProxyDialer("http://alice:s3cret@" + paddr)
	if err != nil {
		t.Fatal(err)
	}
	c, err := dial(ctx, "tcp", echo.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if got := <-seen; got != "CONNECT "+echo.Addr().String() {
		t.Fatalf("proxy saw %q", got)
	}
	io.WriteString(c, "ping")
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("through the tunnel: %q, %v", buf, err)
	}
	c.Close()

	bad, _ := ProxyDialer("http://alice:wrong@" + paddr)
	if _, err := bad(ctx, "tcp", echo.Addr().String()); err == nil || !strings.Contains(err.Error(), "407") {
		t.Fatalf("wrong password: %v, want a 407 error", err)
	}
	if _, err := ProxyDialer("socks5://x:1"); err == nil {
		t.Fatal("socks5 proxy accepted")
	}
}

// TestBindThroughProxy: a peer pinned to TCP reaches the listener through
// the proxy.
func TestBindThroughProxy(t *testing.T) {
	paddr, seen := connectProxy(t, "u", "p")
	a := open(t, "127.0.0.1:0")
	dial, err := ProxyDialer("http://u:p@" + paddr)
	if err != nil {
		t.Fatal(err)
	}
	b := openWith(t, Config{Dial: dial})
	ep, err := b.b.ParseEndpoint(TCPPrefix + a.b.ListenAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	sendUntil(t, b, ep, a, message(msgInitiation, sizeInitiation))
	if got := <-seen; !strings.HasPrefix(got, "CONNECT ") {
		t.Fatalf("proxy saw %q", got)
	}
}
