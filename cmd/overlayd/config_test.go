package main

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nodewire/nodewire/overlay/control"
)

// TestShippedConfig reads configs/overlayd.yaml, the file both systemd
// units pass with --config, strictly (unknown fields are errors), so the
// file stays in step with the flags.
func TestShippedConfig(t *testing.T) {
	var c fileConfig
	if err := mergeConfigFile(&c, filepath.Join("..", "..", "configs", "overlayd.yaml"), flag.NewFlagSet("t", flag.ContinueOnError)); err != nil {
		t.Fatal(err)
	}
	want := fileConfig{Peers: "/etc/nodewire/peers.yaml", Self: "pay-1", Control: "/run/nodewire/overlayd.sock", LogLevel: "info"}
	if c != want {
		t.Errorf("configs/overlayd.yaml read as %+v, want %+v", c, want)
	}
}

func TestConfigFileRefused(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown field", "peers: p\nself: s\nprivate-key: k\nlisten_port: 1\n", "field listen_port not found"},
		{"missing file", "", "--config: open"},
		{"not yaml", "peers: [\n", "did not find expected node content"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")+".yaml")
			if tc.yaml != "" {
				if err := os.WriteFile(path, []byte(tc.yaml), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			var out testWriter
			if code := run([]string{"--config", path}, &out); code != 2 || !strings.Contains(string(out), tc.want) {
				t.Errorf("exit %d, stderr %q; want 2 and %q", code, out, tc.want)
			}
		})
	}
}

// TestRunFromConfigFile starts overlayd as the systemd units do, from
// --config plus a flag, and checks through the control socket that the
// daemon runs with the file's fields and that the flag won over the file.
func TestRunFromConfigFile(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0)) // run sets it from procs
	dir := t.TempDir()
	keys := map[string]*ecdh.PrivateKey{}
	for _, n := range []string{"a", "b"} {
		k, err := ecdh.X25519().GenerateKey(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		keys[n] = k
	}
	pub := func(n string) string { return base64.StdEncoding.EncodeToString(keys[n].PublicKey().Bytes()) }
	peersPath := filepath.Join(dir, "peers.yaml")
	// Faces in 127.94/16: no other test of this repository uses them.
	peerFile := fmt.Sprintf("overlay: {prefix: 10.94.0.0/16, faces: 127.94.0.0/16}\nnetworks:\n  lab: {prefix: 10.94.1.0/24}\npeers:\n"+
		"  a: {network: lab, public_key: %s, address: 10.94.1.1, endpoint: 127.0.0.1:9}\n"+
		"  b: {network: lab, public_key: %s, address: 10.94.1.2, endpoint: 127.0.0.1:9}\n", pub("a"), pub("b"))
	keyPath := filepath.Join(dir, "private.key")
	if err := os.WriteFile(peersPath, []byte(peerFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyPath, []byte(base64.StdEncoding.EncodeToString(keys["a"].Bytes())+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	port := freeUDPPort(t)
	sock := filepath.Join(dir, "ctl.sock")
	cfgPath := filepath.Join(dir, "overlayd.yaml")
	cfg := fmt.Sprintf("peers: %s\nself: a\ncontrol: %s\nlisten-port: %d\ninterface: nwtest-file\nlog-level: debug\nprocs: 1\n", peersPath, sock, port)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}

	var (
		mu   sync.Mutex
		logs testWriter
		code = -1
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		c := run([]string{"--config", cfgPath, "--private-key", keyPath, "--interface", "nwtest-flag"}, lockedWriter{&mu, &logs})
		mu.Lock()
		code = c
		mu.Unlock()
	}()
	var st *control.Status
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		var err error
		st, err = control.Client{Path: sock}.Status(ctx)
		cancel()
		if err == nil {
			break
		}
		select {
		case <-done:
			t.Fatalf("overlayd exited (%d) before it answered on %s:\n%s", code, sock, logs) // run is done: nothing writes
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no status from %s: %v", sock, err)
		}
		time.Sleep(20 * time.Millisecond) // polling the socket, with a deadline
	}
	// The control socket answers only after run registered for SIGTERM.
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("overlayd did not stop on SIGTERM")
	}
	mu.Lock()
	defer mu.Unlock()
	if code != 0 {
		t.Errorf("exit %d, want 0:\n%s", code, logs)
	}
	if st.Self != "a" || st.PeerFile != peersPath || st.ListenPort != port || st.Mode != "userspace" {
		t.Errorf("status self %q, peer file %q, port %d, mode %q; want a, %s, %d, userspace (from the config file)",
			st.Self, st.PeerFile, st.ListenPort, st.Mode, peersPath, port)
	}
	if st.Interface != "nwtest-flag" {
		t.Errorf("interface %q, want nwtest-flag: the flag wins over the file", st.Interface)
	}
	if !strings.Contains(string(logs), "level=DEBUG") {
		t.Errorf("log-level debug from the file not applied:\n%s", logs)
	}
}

// freeUDPPort returns a UDP port that was free a moment ago.
func freeUDPPort(t *testing.T) uint16 {
	t.Helper()
	u, err := net.ListenUDP("udp", &net.UDPAddr{})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	return uint16(u.LocalAddr().(*net.UDPAddr).Port)
}

// lockedWriter lets the daemon's goroutines log into a buffer the test
// reads.
type lockedWriter struct {
	mu *sync.Mutex
	w  *testWriter
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
