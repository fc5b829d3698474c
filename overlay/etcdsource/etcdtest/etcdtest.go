// Package etcdtest runs a real etcd (Debian's etcd-server) for tests: on
// loopback, free ports, its data in a temporary directory, stopped by the
// test's Cleanup.
package etcdtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Server is one etcd process.
type Server struct {
	t    testing.TB
	Addr string // 127.0.0.1:PORT, the client endpoint
	// With StartTLS: PEM files of the CA (which signed the server's and
	// the client's certificates) and of a client certificate and its key.
	CA, ClientCert, ClientKey string
	tlsArgs                   []string

	url     string
	peerURL string
	dir     string
	cmd     *exec.Cmd
	log     *os.File
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Start starts etcd and waits until it answers, or fails the test saying
// how to install it.
func Start(t testing.TB) *Server {
	t.Helper()
	return start(t, false)
}

// StartTLS is Start with TLS on the client port, and client certificates
// required (--client-cert-auth): the CA and the client's certificate are
// in the Server's fields.
func StartTLS(t testing.TB) *Server {
	t.Helper()
	return start(t, true)
}

func start(t testing.TB, withTLS bool) *Server {
	t.Helper()
	if _, err := exec.LookPath("etcd"); err != nil {
		t.Fatalf("etcd not installed (Debian: apt-get install etcd-server, or run e2e/deps.sh): %v", err)
	}
	e := &Server{t: t, dir: t.TempDir()}
	e.Addr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	e.url = "http://" + e.Addr
	if withTLS {
		e.url = "https://" + e.Addr
		e.writeCerts()
	}
	e.peerURL = fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	t.Cleanup(e.Stop)
	e.Restart()
	return e
}

// Restart starts a stopped server again, on the same ports and data.
func (e *Server) Restart() {
	e.t.Helper()
	var err error
	e.log, err = os.OpenFile(filepath.Join(e.dir, "etcd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		e.t.Fatal(err)
	}
	e.cmd = exec.Command("etcd", "--name", "t", "--data-dir", filepath.Join(e.dir, "data"),
		"--listen-client-urls", e.url, "--advertise-client-urls", e.url,
		"--listen-peer-urls", e.peerURL, "--initial-advertise-peer-urls", e.peerURL,
		"--initial-cluster", "t="+e.peerURL, "--log-level", "warn")
	e.cmd.Args = append(e.cmd.Args, e.tlsArgs...)
	e.cmd.Stdout, e.cmd.Stderr = e.log, e.log
	if err := e.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	cli := e.Client()
	defer cli.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := cli.Get(ctx, "/ready")
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(e.log.Name())
			e.t.Fatalf("etcd did not answer within 20 s: %v\n%s", err, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop kills the server; Restart brings it back.
func (e *Server) Stop() {
	if e.cmd == nil {
		return
	}
	e.cmd.Process.Kill()
	e.cmd.Wait()
	e.log.Close()
	e.cmd = nil
}

// Client is a client of the server; the caller closes it.
func (e *Server) Client() *clientv3.Client {
	e.t.Helper()
	cfg := clientv3.Config{Endpoints: []string{e.Addr}, DialTimeout: 3 * time.Second, Logger: zap.NewNop()}
	if e.CA != "" {
		cfg.TLS = e.clientTLS()
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return cli
}
