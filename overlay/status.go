package overlay

import (
	"context"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"

	"github.com/nodewire/nodewire/netstack/erldist"
	"github.com/nodewire/nodewire/overlay/control"
	"github.com/nodewire/nodewire/peers"
)

// addOpsStatus fills in what the data plane knows beyond WireGuard: denials
// by direction, the last refusal, face errors and the Erlang nodes seen.
func (d *Daemon) addOpsStatus(st *control.Status) {
	d.mu.Lock()
	pub, err := peers.PublicKey(d.private)
	d.mu.Unlock()
	if err == nil {
		st.PublicKey = pub.String()
	}
	conns := d.plane.Stats()
	for i := range st.Peers {
		p := &st.Peers[i]
		c := conns[p.Name]
		p.DeniedIn, p.DeniedOut, p.FaceError = c.DeniedIn, c.DeniedOut, c.FaceError
	}
	ops := d.ops()
	if ops == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	local, err := ops.ErlangPorts(ctx, st.Self)
	if err != nil {
		st.NodesErr = err.Error()
	}
	st.Nodes = nodeList(local)
	last := ops.LastRefusals()
	remote := ops.RemoteErlangPorts()
	for i := range st.Peers {
		p := &st.Peers[i]
		if r, ok := last[p.Name]; ok {
			p.LastRefusal = &control.Refusal{At: r.At, Dir: r.Dir, From: r.From, To: r.To, Port: r.Port, Proto: r.Proto, Decision: r.Decision}
		}
		p.Nodes = nodeList(remote[p.Name])
	}
}

func nodeList(es []erldist.NameEntry) []string {
	var out []string
	for _, e := range es {
		out = append(out, fmt.Sprintf("%s:%d", e.Name, e.Port))
	}
	return out
}

// processStats fills in the goroutine count, resident memory and live heap
// of this process (RSS 0 where /proc is not available).
func processStats(st *control.Status) {
	st.Goroutines = runtime.NumGoroutine()
	samples := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(samples)
	if samples[0].Value.Kind() == metrics.KindUint64 {
		st.HeapLiveBytes = samples[0].Value.Uint64()
	}
	if samples[1].Value.Kind() == metrics.KindUint64 {
		st.GCCycles = samples[1].Value.Uint64()
	}
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return
	}
	if pages, err := strconv.ParseUint(f[1], 10, 64); err == nil {
		st.RSSBytes = pages * uint64(os.Getpagesize())
	}
}

// wgPeerState is the per-peer part of a UAPI get.
type wgPeerState struct {
	Endpoint      string
	Transport     string // "udp" or "tcp"; "" without an endpoint
	LastHandshake time.Time
	Rx, Tx        uint64
}

// wgState is what the device says of each peer, with the transport its
// datagrams take.
func (d *Daemon) wgState() map[peers.Key]wgPeerState {
	text, err := d.dev.IpcGet()
	if err != nil {
		return nil
	}
	st := parseUAPIGet(text)
	tcp := d.tcp.TCPEndpoints()
	for k, w := range st {
		if tcp[w.Endpoint] {
			w.Transport = "tcp"
			st[k] = w
		}
	}
	return st
}

// parseUAPIGet reads the peers out of `get=1` output.
// It allocates per peer only what it returns: a status of 10,000 peers
// is garbage enough (a line a string and a key a slice were 9 MiB of it).
func parseUAPIGet(text string) map[peers.Key]wgPeerState {
	out := make(map[peers.Key]wgPeerState, strings.Count(text, "public_key="))
	var (
		cur   peers.Key
		have  bool
		state wgPeerState
		sec   int64
	)
	flush := func() {
		if have {
			if sec > 0 {
				state.LastHandshake = time.Unix(sec, 0)
			}
			out[cur] = state
		}
	}
	var hexKey [2 * len(peers.Key{})]byte
	for rest := text; rest != ""; {
		var line string
		line, rest, _ = strings.Cut(rest, "\n")
		k, v, ok := strings.Cut(strings.TrimSuffix(line, "\r"), "=")
		if !ok {
			continue
		}
		switch k {
		case "public_key":
			flush()
			have, state, sec = false, wgPeerState{}, 0
			if len(v) == len(hexKey) {
				copy(hexKey[:], v)
				var key peers.Key
				if _, err := hex.Decode(key[:], hexKey[:]); err == nil {
					cur, have = key, true
				}
			}
		case "endpoint":
			if ap, err := netip.ParseAddrPort(v); err == nil {
				state.Endpoint, state.Transport = ap.String(), "udp"
			}
		case "last_handshake_time_sec":
			sec, _ = strconv.ParseInt(v, 10, 64)
		case "rx_bytes":
			state.Rx, _ = strconv.ParseUint(v, 10, 64)
		case "tx_bytes":
			state.Tx, _ = strconv.ParseUint(v, 10, 64)
		}
	}
	flush()
	return out
}
