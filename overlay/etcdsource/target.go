// Package etcdsource watches an etcd key holding a signed peer file: it
// hands every new value to the daemon's apply, keeps the last value the
// daemon accepted on local disk (so a restart with etcd down starts from
// it), and reconnects forever. etcd being down, slow or unreachable never
// blocks the caller: the watch runs on its own goroutine and Status reads
// only local state. It also holds the compare-and-swap publish that
// `overlayctl publish` and `add-peer --publish` use.
//
// The etcd endpoints are reached over the underlay: the overlay cannot
// depend on itself to learn who its peers are.
package etcdsource

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Target is a parsed etcd://HOST:PORT[,HOST:PORT]/KEY (or etcds:// for
// TLS).
type Target struct {
	Endpoints []string // HOST:PORT each
	Key       string   // the key, with its leading slash
	TLS       bool     // etcds://
}

// IsURL reports whether s names an etcd key rather than a local path.
func IsURL(s string) bool {
	return strings.HasPrefix(s, "etcd://") || strings.HasPrefix(s, "etcds://")
}

// ParseTarget parses etcd://HOST:PORT[,HOST:PORT]/KEY or etcds://...;
// the key is everything from the first slash after the hosts, so
// etcd://h:2379/nodewire/peers watches "/nodewire/peers".
func ParseTarget(s string) (Target, error) {
	var t Target
	rest, ok := strings.CutPrefix(s, "etcd://")
	if !ok {
		if rest, ok = strings.CutPrefix(s, "etcds://"); !ok {
			return t, fmt.Errorf("%q: want etcd://HOST:PORT[,HOST:PORT]/KEY (etcds:// for TLS)", s)
		}
		t.TLS = true
	}
	i := strings.IndexByte(rest, '/')
	if i < 0 || i == len(rest)-1 {
		return t, fmt.Errorf("%q: no key: want etcd://HOST:PORT[,HOST:PORT]/KEY", s)
	}
	hosts, key := rest[:i], rest[i:]
	if strings.ContainsAny(key, "?#") {
		return t, fmt.Errorf("%q: the key may not contain '?' or '#' (TLS files are flags: --etcd-ca, --etcd-cert, --etcd-key)", s)
	}
	for _, h := range strings.Split(hosts, ",") {
		host, port, err := net.SplitHostPort(h)
		if err != nil || host == "" || port == "" {
			return t, fmt.Errorf("%q: endpoint %q: want HOST:PORT", s, h)
		}
		t.Endpoints = append(t.Endpoints, h)
	}
	t.Key = key
	return t, nil
}

// String is the URL form.
func (t Target) String() string {
	scheme := "etcd://"
	if t.TLS {
		scheme = "etcds://"
	}
	return scheme + strings.Join(t.Endpoints, ",") + t.Key
}

// TLSFiles names the PEM files of an etcds:// connection. CA empty: the
// system roots. Cert and Key together: a TLS client certificate.
type TLSFiles struct {
	CA, Cert, Key string
}

// Config builds the client's TLS configuration.
func (f TLSFiles) Config() (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if f.CA != "" {
		pem, err := os.ReadFile(f.CA)
		if err != nil {
			return nil, fmt.Errorf("etcd CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("etcd CA %s: no PEM certificate in it", f.CA)
		}
		c.RootCAs = pool
	}
	if (f.Cert == "") != (f.Key == "") {
		return nil, errors.New("etcd client certificate: give both the certificate and its key, or neither")
	}
	if f.Cert != "" {
		cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
		if err != nil {
			return nil, fmt.Errorf("etcd client certificate %s, key %s: %w", f.Cert, f.Key, err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// Dial makes a client for t; it does not wait for a connection (requests
// do, each bounded by its context). TLS files are used only for etcds://.
func Dial(t Target, files TLSFiles) (*clientv3.Client, error) {
	cfg := clientv3.Config{
		Endpoints:            t.Endpoints,
		DialTimeout:          3 * time.Second,
		DialKeepAliveTime:    5 * time.Second,
		DialKeepAliveTimeout: 3 * time.Second,
		Logger:               zap.NewNop(), // errors come back to us; we log them once, via slog
	}
	if t.TLS {
		tc, err := files.Config()
		if err != nil {
			return nil, err
		}
		cfg.TLS = tc
	} else if files != (TLSFiles{}) {
		return nil, fmt.Errorf("%s: TLS files given for a plain etcd:// URL: use etcds://", t)
	}
	c, err := clientv3.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("etcd %s: %w", t, err)
	}
	return c, nil
}
