package overlay

import (
	"bufio"
	"encoding/hex"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/nodewire/nodewire/peers"
)

// Status is what `overlayctl status` shows: this host, then each peer.
type Status struct {
	Self       string        `json:"self"`
	Network    string        `json:"network"`
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
