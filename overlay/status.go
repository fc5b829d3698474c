package overlay

import (
	"bufio"
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

	"github.com/nodewire/nodewire/netstack"
	"github.com/nodewire/nodewire/netstack/erldist"
	"github.com/nodewire/nodewire/peers"
)

// addOpsStatus fills in what the data plane knows beyond WireGuard: denials
// by direction, the last refusal, face errors and the Erlang nodes seen.
func (d *Daemon) addOpsStatus(st *Status) {
	d.mu.Lock()
	pub, err := PublicKey(d.private)
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
			p.LastRefusal = &r
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

// Status is what `overlayctl status` shows: this host, then each peer.
type Status struct {
	Self       string        `json:"self"`
	Network    string        `json:"network"`
	Mode       string        `json:"mode"` // "userspace" or "tun": which data plane enforces the policy
	Address    string        `json:"address"`
	Face       string        `json:"face"`
	ListenPort uint16        `json:"listen_port"`
	PeerFile   string        `json:"peer_file"`
	Interface  string        `json:"interface"` // the name `wg show` takes
	LoadedAt   time.Time     `json:"loaded_at"`
	Reloads    uint64        `json:"reloads"`
	ReloadErr  string        `json:"last_reload_error,omitempty"`
	Peers      []PeerStatus  `json:"peers"`
	Uptime     time.Duration `json:"uptime_ns"`

	PublicKey string   `json:"public_key"`            // this host's, as WireGuard uses it now
	Nodes     []string `json:"local_nodes,omitempty"` // "name:port" registered with this host's epmd
	NodesErr  string   `json:"local_nodes_error,omitempty"`
	// Goroutines and RSSBytes are the daemon process's, so operators and
	// soak tests can see that connections leave nothing behind.
	Goroutines int    `json:"goroutines"`
	RSSBytes   uint64 `json:"rss_bytes"`
	// HeapLiveBytes is the Go heap marked live by the last GC (GCCycles
	// so far): unlike RSS it does not include garbage awaiting the next GC.
	HeapLiveBytes uint64 `json:"heap_live_bytes"`
	GCCycles      uint64 `json:"gc_cycles"`
}

// processStats fills in the goroutine count, resident memory and live heap
// of this process (RSS 0 where /proc is not available).
func processStats(st *Status) {
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

// PeerStatus is one peer as this daemon sees it.
type PeerStatus struct {
	Name          string    `json:"name"`
	Network       string    `json:"network"`
	Address       string    `json:"address"`
	Face          string    `json:"face"`
	Endpoint      string    `json:"endpoint,omitempty"` // current, as WireGuard knows it (roaming included)
	LastHandshake time.Time `json:"last_handshake,omitzero"`
	RxBytes       uint64    `json:"rx_bytes"`
	TxBytes       uint64    `json:"tx_bytes"`
	OpenConns     int64     `json:"open_connections"`
	Denials       uint64    `json:"denials"`

	DeniedIn    uint64            `json:"denied_in"`  // refused arriving from the peer
	DeniedOut   uint64            `json:"denied_out"` // refused at the peer's face here
	LastRefusal *netstack.Refusal `json:"last_refusal,omitempty"`
	FaceError   string            `json:"face_error,omitempty"`
	Nodes       []string          `json:"nodes,omitempty"` // "name:port" the peer's epmd announced here
}

// wgPeerState is the per-peer part of a UAPI get.
type wgPeerState struct {
	Endpoint      string
	LastHandshake time.Time
	Rx, Tx        uint64
}

// parseUAPIGet reads the peers out of `get=1` output.
func parseUAPIGet(text string) map[peers.Key]wgPeerState {
	out := make(map[peers.Key]wgPeerState)
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
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		switch k {
		case "public_key":
			flush()
			have, state, sec = false, wgPeerState{}, 0
			if b, err := hex.DecodeString(v); err == nil && len(b) == len(cur) {
				copy(cur[:], b)
				have = true
			}
		case "endpoint":
			if ap, err := netip.ParseAddrPort(v); err == nil {
				state.Endpoint = ap.String()
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
