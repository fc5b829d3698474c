package main

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nodewire/nodewire/e2e/cluster"
	"github.com/nodewire/nodewire/overlay/control"
)

// ScaleResult is a real overlayd started alone on a peer file of Peers
// peers: how long until it had applied the file (its control socket
// accepts), its resident memory then, and how long a status request takes.
type ScaleResult struct {
	Peers int `json:"peers"`
	// Reachable is how many peers (self included) the policy lets self
	// exchange packets with; the others are in a network no rule reaches.
	Reachable int     `json:"reachable"`
	ReadyMs   float64 `json:"ready_ms"` // process start to the control socket accepting
	// ReadyCPUMs is overlayd's CPU time (all threads) by then: on a
	// machine shared with other work, the wall clock also counts waiting
	// for a CPU.
	ReadyCPUMs float64 `json:"ready_cpu_ms"`
	RSSKB      int64   `json:"vmrss_kib"` // then
	HWMKB      int64   `json:"vmhwm_kib"`
	// StatusMs is one `overlayctl status` request, which must list every
	// peer.
	StatusMs float64 `json:"status_ms"`
	// AddPeerMs is a reload (over the control socket) of the file with one
	// reachable peer more.
	AddPeerMs float64 `json:"add_peer_ms"`
	// AddPeerCPUMs is overlayd's CPU time during that reload.
	AddPeerCPUMs float64 `json:"add_peer_cpu_ms"`
}

// scalePeerFile writes a peer file of n peers, p-0 being self (its
// endpoint the host's underlay address), the first reach of them in
// network lab and the others in far, which no rule connects to lab, and
// p-0's private key. more is the same file with one peer more in lab.
func scalePeerFile(dir string, n, reach int, selfEndpoint string) (file, key string, more []byte, err error) {
	var b strings.Builder
	b.WriteString("overlay: {prefix: 10.80.0.0/16, faces: 127.80.0.0/16}\nnetworks:\n  lab: {prefix: 10.80.0.0/18}\n  far: {prefix: 10.80.64.0/18}\npeers:\n")
	var extra string
	for i := range n + 1 {
		k, err := ecdh.X25519().GenerateKey(rand.Reader)
		if err != nil {
			return "", "", nil, err
		}
		if i == 0 {
			key = filepath.Join(dir, "private.key")
			if err := os.WriteFile(key, []byte(base64.StdEncoding.EncodeToString(k.Bytes())+"\n"), 0o600); err != nil {
				return "", "", nil, err
			}
		}
		ep := fmt.Sprintf("10.200.%d.%d:51820", (i+1)/250, (i+1)%250+1)
		if i == 0 {
			ep = selfEndpoint
		}
		a, nw, hi := i+1, "lab", 0
		if i >= reach && i < n {
			nw, hi = "far", 64
		}
		line := fmt.Sprintf("  p-%d: {network: %s, public_key: %s, address: 10.80.%d.%d, endpoint: %s}\n",
			i, nw, base64.StdEncoding.EncodeToString(k.PublicKey().Bytes()), hi+a>>8, a&0xff, ep)
		if i == n {
			extra = line
			break
		}
		b.WriteString(line)
	}
	file = filepath.Join(dir, "peers.yaml")
	return file, key, []byte(b.String() + extra), os.WriteFile(file, []byte(b.String()), 0o644)
}

// measureScale starts overlayd on a new host with an n-peer file of
// which reach are reachable and measures it once its status lists every
// other peer; then it times a reload adding one reachable peer.
func measureScale(e *Env, n, reach int) (ScaleResult, error) {
	res := ScaleResult{Peers: n, Reachable: reach}
	bin := e.overlaydBin()
	h := e.C.AddHost(fmt.Sprintf("s%dr%d", n, reach))
	dir := filepath.Join(e.Dir, h.Name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return res, err
	}
	file, key, more, err := scalePeerFile(dir, n, reach, h.Addr.String()+":51820")
	if err != nil {
		return res, err
	}
	ctl := filepath.Join(dir, "overlayd.sock")
	t0 := time.Now()
	p, err := h.Start("overlayd", []string{bin, "--peers", file, "--self", "p-0", "--private-key", key,
		"--control", ctl, "--log-level", "warn"}, nil)
	if err != nil {
		return res, err
	}
	defer p.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// overlayd opens its control socket last, once the file is loaded and
	// applied (stack, faces, every WireGuard peer, device up).
	err = cluster.Poll(ctx, 2*time.Millisecond, func() (bool, error) {
		if p.Exited() {
			return false, fmt.Errorf("overlayd exited:\n%s", p.Tail(20))
		}
		c, err := net.Dial("unix", ctl)
		if err != nil {
			return false, nil
		}
		c.Close()
		return true, nil
	})
	if err != nil {
		return res, err
	}
	res.ReadyMs = millis(time.Since(t0))
	cpu, _ := procWork(p.Pid())
	res.ReadyCPUMs = millis(cpu)
	if res.RSSKB, res.HWMKB, err = procMem(p.Pid()); err != nil {
		return res, err
	}
	t1 := time.Now()
	st, err := control.Client{Path: ctl}.Status(ctx)
	if err != nil {
		return res, fmt.Errorf("status: %w", err)
	}
	res.StatusMs = millis(time.Since(t1))
	if len(st.Peers) != n-1 {
		return res, fmt.Errorf("status lists %d peers, want %d", len(st.Peers), n-1)
	}
	if err := os.WriteFile(file, more, 0o644); err != nil {
		return res, err
	}
	c2, _ := procWork(p.Pid())
	t2 := time.Now()
	if err := (control.Client{Path: ctl}).Reload(ctx); err != nil {
		return res, fmt.Errorf("reload adding a peer: %w", err)
	}
	res.AddPeerMs = millis(time.Since(t2))
	c3, _ := procWork(p.Pid())
	res.AddPeerCPUMs = millis(c3 - c2)
	return res, nil
}

func (e *Env) overlaydBin() string {
	if e.overlayd == "" {
		e.overlayd = cluster.BuildBinaries(e.T, "github.com/nodewire/nodewire/cmd/overlayd")["overlayd"]
	}
	return e.overlayd
}

// LoadedScaleResult is the userspace row again with a peer file of Peers
// peers (the two hosts and fillers): resident memory of both daemons while
// the bulk workloads run, since idle figures hide the packet buffers.
type LoadedScaleResult struct {
	Peers        int         `json:"peers"`
	BulkMBps     float64     `json:"bulk_mbps"`
	ParallelMBps float64     `json:"parallel_mbps"`
	Daemons      []DaemonMem `json:"daemons"`
}

func measureLoadedScale(e *Env, n int, sz Sizes) (LoadedScaleResult, error) {
	res := LoadedScaleResult{Peers: n}
	pe := *e
	pe.FillerPeers = n - 2
	pe.DaemonArgs = nil
	pair, err := setupUserspace(&pe, fmt.Sprintf("f%d", n))
	if err != nil {
		return res, err
	}
	samplers := map[string]*rssSampler{}
	for host, d := range pair.Daemons {
		samplers[host] = startRSSSampler(d.Pid(), 100*time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*sz.BulkDuration+4*time.Minute)
	defer cancel()
	if res.BulkMBps, err = stream(ctx, pair.A, pair.B, 1, sz.MessageSize, sz.Window, sz.BulkDuration); err != nil {
		return res, fmt.Errorf("bulk: %w", err)
	}
	if res.ParallelMBps, err = stream(ctx, pair.A, pair.B, sz.Senders, sz.MessageSize, sz.ParallelWindow, sz.BulkDuration); err != nil {
		return res, fmt.Errorf("parallel: %w", err)
	}
	for _, host := range []string{pair.A.Host.Name, pair.B.Host.Name} {
		m := samplers[host].stop()
		m.Host = host
		res.Daemons = append(res.Daemons, m)
	}
	// Stop this pair now: idle or not, it should not share the machine
	// with what runs next.
	for _, p := range []interface{ Stop() error }{pair.A, pair.B, pair.Daemons[pair.A.Host.Name], pair.Daemons[pair.B.Host.Name]} {
		if err := p.Stop(); err != nil {
			return res, err
		}
	}
	return res, nil
}
