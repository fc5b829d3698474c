package tcpbind

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

var noDeadline time.Time

// DialFunc opens a TCP connection to addr ("host:port").
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// ProxyDialer dials through an HTTP proxy with CONNECT. proxy is
// "http://[user:pass@]host[:port]"; the credentials, if any, go as Basic
// Proxy-Authorization. An empty proxy gives a dialer that follows
// $HTTPS_PROXY and $NO_PROXY (as Go's net/http reads them) per address.
func ProxyDialer(proxy string) (DialFunc, error) {
	var base net.Dialer
	if proxy == "" {
		return func(ctx context.Context, network, addr string) (net.Conn, error) {
			req := &http.Request{URL: &url.URL{Scheme: "https", Host: addr}}
			u, err := http.ProxyFromEnvironment(req)
			if err != nil {
				return nil, fmt.Errorf("$HTTPS_PROXY: %w", err)
			}
			if u == nil {
				return base.DialContext(ctx, network, addr)
			}
			return dialConnect(ctx, &base, u, addr)
		}, nil
	}
	u, err := url.Parse(proxy)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "") {
		return nil, fmt.Errorf("proxy %q: want http://[user:pass@]host:port", proxy)
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		return dialConnect(ctx, &base, u, addr)
	}, nil
}

// dialConnect opens a tunnel to addr through the proxy at u.
func dialConnect(ctx context.Context, d *net.Dialer, u *url.URL, addr string) (_ net.Conn, err error) {
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "80")
	}
	c, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, fmt.Errorf("proxy %s: %w", host, err)
	}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
		defer c.SetDeadline(noDeadline)
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	var b strings.Builder
	fmt.Fprintf(&b, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n", addr, addr)
	if u.User != nil {
		pass, _ := u.User.Password()
		cred := base64.StdEncoding.EncodeToString([]byte(u.User.Username() + ":" + pass))
		fmt.Fprintf(&b, "Proxy-Authorization: Basic %s\r\n", cred)
	}
	b.WriteString("\r\n")
	if _, err := c.Write([]byte(b.String())); err != nil {
		return nil, fmt.Errorf("proxy %s: %w", host, err)
	}
	br := bufio.NewReaderSize(c, 1024)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	if err != nil {
		return nil, fmt.Errorf("proxy %s: CONNECT %s: %w", host, addr, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("proxy %s: CONNECT %s: %s", host, addr, resp.Status)
	}
	if br.Buffered() > 0 {
		// The server speaks first only after our TLS hello, so a proxy
		// that sent more than its answer is broken.
		return nil, fmt.Errorf("proxy %s: CONNECT %s: %d unexpected bytes after the answer", host, addr, br.Buffered())
	}
	return c, nil
}
