package overlay

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// Scale targets of issue 4: a 10,000-peer file loads and applies in at most
// a second; the daemon's resident memory with 1,000 peers stays within
// 64 MiB (measured on a real overlayd by e2e/bench; here the Go heap).

// scalePeerFile is a peer file of n peers in one network, p-0 being self;
// faces in 127.93/16 so that it never meets the other tests' faces. It
// returns the file's text and self's private key.
func scalePeerFile(tb testing.TB, n int) (data []byte, selfPriv string) {
	tb.Helper()
	var b strings.Builder
	b.WriteString("overlay: {prefix: 10.93.0.0/16, faces: 127.93.0.0/16}\nnetworks:\n  lab: {prefix: 10.93.0.0/18}\npeers:\n")
	for i := range n {
		k, err := ecdh.X25519().GenerateKey(rand.Reader)
		if err != nil {
			tb.Fatal(err)
		}
		if i == 0 {
			selfPriv = base64.StdEncoding.EncodeToString(k.Bytes())
		}
		a := i + 1
		fmt.Fprintf(&b, "  p-%d: {network: lab, public_key: %s, address: 10.93.%d.%d, endpoint: 192.0.2.%d:%d}\n",
			i, base64.StdEncoding.EncodeToString(k.PublicKey().Bytes()), a>>8, a&0xff, a%250+1, 20000+a%40000)
	}
	return []byte(b.String()), selfPriv
}

// truncatePeers keeps the first n peers of a file made by scalePeerFile.
func truncatePeers(data []byte, n int) []byte {
	lines := strings.SplitAfter(string(data), "\n")
	return []byte(strings.Join(lines[:4+n], ""))
}

// scaleConfig is a daemon p-0 on free ports over the file at dir/peers.yaml.
func scaleConfig(tb testing.TB, dir, priv string) Config {
	tb.Helper()
	cfg := Config{
		PeerFile:       filepath.Join(dir, "peers.yaml"),
		Self:           "p-0",
		PrivateKeyFile: filepath.Join(dir, "key"),
		ListenPort:     freePort(tb),
		EPMDPort:       freePort(tb),
		ControlPath:    filepath.Join(dir, "ctl.sock"),
		Interface:      "nwbench-scale",
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if err := os.WriteFile(cfg.PrivateKeyFile, []byte(priv+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	return cfg
}

func writePeers(tb testing.TB, path string, data []byte) {
	tb.Helper()
	if err := os.WriteFile(path, data, 0o644); err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkStartPeers is overlayd's start on an n-peer file: load and
// validate the file, build the stack, open a face listener per peer,
// configure every peer on the WireGuard device and bring it up. It also
// reports the Go heap in use once up (live objects after a GC).
func BenchmarkStartPeers(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("peers=%d", n), func(b *testing.B) {
			data, priv := scalePeerFile(b, n)
			dir := b.TempDir()
			cfg := scaleConfig(b, dir, priv)
			writePeers(b, cfg.PeerFile, data)
			var heap uint64
			b.ResetTimer()
			for range b.N {
				d, err := New(context.Background(), cfg)
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if got := len(d.Status().Peers); got != n-1 {
					b.Fatalf("status lists %d peers, want %d", got, n-1)
				}
				runtime.GC()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				heap = ms.HeapInuse
				d.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(heap)/(1<<20), "heap-MiB")
		})
	}
}

// BenchmarkReloadTo10000Peers is a running daemon (self and one peer)
// applying a 10,000-peer file on reload: load, validate, the UAPI
// difference of 9,998 new peers, and a face listener for each.
func BenchmarkReloadTo10000Peers(b *testing.B) {
	const n = 10000
	data, priv := scalePeerFile(b, n)
	small := truncatePeers(data, 2)
	dir := b.TempDir()
	cfg := scaleConfig(b, dir, priv)
	writePeers(b, cfg.PeerFile, small)
	ctx := context.Background()
	d, err := New(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer d.Close()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		writePeers(b, cfg.PeerFile, data)
		b.StartTimer()
		if err := d.Reload(ctx); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if got := len(d.Status().Peers); got != n-1 {
			b.Fatalf("status lists %d peers, want %d", got, n-1)
		}
		writePeers(b, cfg.PeerFile, small)
		if err := d.Reload(ctx); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
