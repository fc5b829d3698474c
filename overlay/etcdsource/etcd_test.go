package etcdsource

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// etcdServer is a real etcd (Debian's etcd-server) on loopback with its
// data in a temporary directory; Cleanup stops it.
type etcdServer struct {
	t       *testing.T
	url     string // the client URL, http://127.0.0.1:PORT
	addr    string // 127.0.0.1:PORT
	peerURL string
	dir     string
	cmd     *exec.Cmd
	log     *os.File
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startEtcd starts etcd, or fails the test saying how to install it.
func startEtcd(t *testing.T) *etcdServer {
	t.Helper()
	if _, err := exec.LookPath("etcd"); err != nil {
		t.Fatalf("etcd not installed (Debian: apt-get install etcd-server, or run e2e/deps.sh): %v", err)
	}
	e := &etcdServer{t: t, dir: t.TempDir()}
	e.addr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	e.url = "http://" + e.addr
	e.peerURL = fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	t.Cleanup(e.stop)
	e.start()
	return e
}

func (e *etcdServer) start() {
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
	e.cmd.Stdout, e.cmd.Stderr = e.log, e.log
	if err := e.cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	cli := e.client()
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

func (e *etcdServer) stop() {
	if e.cmd == nil {
		return
	}
	e.cmd.Process.Kill()
	e.cmd.Wait()
	e.log.Close()
	e.cmd = nil
}

func (e *etcdServer) client() *clientv3.Client {
	e.t.Helper()
	cli, err := Dial(Target{Endpoints: []string{e.addr}, Key: "/x"}, TLSFiles{})
	if err != nil {
		e.t.Fatal(err)
	}
	return cli
}

func (e *etcdServer) target(key string) Target {
	return Target{Endpoints: []string{e.addr}, Key: key}
}

func TestParseTarget(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{in: "etcd://10.0.0.1:2379/nodewire/peers", want: "etcd://10.0.0.1:2379/nodewire/peers"},
		{in: "etcd://a:1,b:2/k", want: "etcd://a:1,b:2/k"},
		{in: "etcds://[::1]:2379/k", want: "etcds://[::1]:2379/k"},
		{in: "http://a:1/k", err: "want etcd://"},
		{in: "etcd://a:1", err: "no key"},
		{in: "etcd://a:1/", err: "no key"},
		{in: "etcd://a/k", err: `endpoint "a"`},
		{in: "etcd://a:1,/k", err: `endpoint ""`},
		{in: "etcd://a:1/k?ca=x", err: "may not contain"},
	} {
		got, err := ParseTarget(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseTarget(%q) = %v, %v; want error containing %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got.String() != tc.want {
			t.Errorf("ParseTarget(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
	if tg, _ := ParseTarget("etcds://a:1/k"); !tg.TLS {
		t.Error("etcds:// is not TLS")
	}
}
