package control

import "time"

// Status is what `overlayctl status` shows: this host, then each peer.
type Status struct {
	Self       string    `json:"self"`
	Network    string    `json:"network"`
	Mode       string    `json:"mode"` // "userspace" or "tun": which data plane enforces the policy
	Address    string    `json:"address"`
	Face       string    `json:"face"`
	ListenPort uint16    `json:"listen_port"`
	PeerFile   string    `json:"peer_file"`
	Interface  string    `json:"interface"` // the name `wg show` takes
	LoadedAt   time.Time `json:"loaded_at"`
	Reloads    uint64    `json:"reloads"`
	ReloadErr  string    `json:"last_reload_error,omitempty"`
	// PeerFileSerial is `serial:` of the running peer file; 0 when it has
	// none.
	PeerFileSerial uint64        `json:"peer_file_serial,omitempty"`
	Peers          []PeerStatus  `json:"peers"`
	Uptime         time.Duration `json:"uptime_ns"`

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
	// Source is where the peer file comes from when it is not (only) the
	// local file: an etcd key (overlayd --peers etcd://...).
	Source *SourceStatus `json:"source,omitempty"`
}

// SourceStatus is the state of a watched peer-file source (an etcd key).
type SourceStatus struct {
	URL       string    `json:"url"`
	Connected bool      `json:"connected"`
	Revision  int64     `json:"revision"`             // of the value last applied (0: running on the cache)
	Seen      int64     `json:"seen_revision"`        // of the value last offered to the daemon
	AppliedAt time.Time `json:"applied_at,omitzero"`  // when Revision was applied
	Refused   uint64    `json:"refused"`              // values the daemon refused
	Errors    uint64    `json:"errors"`               // failed connections and watches
	LastError string    `json:"last_error,omitempty"` // the last refusal or etcd error
	Cached    bool      `json:"cached"`               // a cached value was on disk at start
}

// PeerStatus is one peer as this daemon sees it.
type PeerStatus struct {
	Name          string    `json:"name"`
	Network       string    `json:"network"`
	Address       string    `json:"address"`
	Face          string    `json:"face"`
	Endpoint      string    `json:"endpoint,omitempty"`  // current, as WireGuard knows it (roaming included)
	Transport     string    `json:"transport,omitempty"` // "udp" or "tcp": how WireGuard's datagrams reach the peer now
	LastHandshake time.Time `json:"last_handshake,omitzero"`
	RxBytes       uint64    `json:"rx_bytes"`
	TxBytes       uint64    `json:"tx_bytes"`
	OpenConns     int64     `json:"open_connections"`
	Denials       uint64    `json:"denials"`

	DeniedIn    uint64   `json:"denied_in"`  // refused arriving from the peer
	DeniedOut   uint64   `json:"denied_out"` // refused at the peer's face here
	LastRefusal *Refusal `json:"last_refusal,omitempty"`
	FaceError   string   `json:"face_error,omitempty"`
	Nodes       []string `json:"nodes,omitempty"` // "name:port" the peer's epmd announced here
	// Unreachable: the policy lets neither this host nor the peer open
	// anything to the other, so the peer is no WireGuard peer here (`wg
	// show` does not list it) and has no endpoint, handshake or traffic.
	Unreachable bool `json:"unreachable,omitempty"`
}

// Refusal is the last connection refused with a peer, as the userspace
// data plane recorded it.
type Refusal struct {
	At       time.Time `json:"at"`
	Dir      string    `json:"dir"`
	From     string    `json:"from"`
	To       string    `json:"to"`
	Port     uint16    `json:"port"`
	Proto    string    `json:"proto,omitempty"` // "icmp" for a ping (Port then 0); "" for TCP
	Decision string    `json:"decision"`
}

// Explanation is the running daemon's answer to "may FROM open PORT on TO?",
// with the Erlang nodes it knows on the side it can see.
type Explanation struct {
	// Decision is the verdict, "allow ..." or "deny ...", as the data plane
	// would judge the connection now.
	Decision string `json:"decision"`
	Allow    bool   `json:"allow"`
	// Erlang says the port counted as an Erlang port: 4369, or a
	// distribution port registered to Node.
	Erlang bool   `json:"erlang"`
	Node   string `json:"node,omitempty"`
	// Known says whether the daemon can see TO's registered nodes: it can
	// for this host (its epmd) and for a peer this host talks to (the
	// ports its epmd announced); not between two other peers.
	Known bool `json:"known"`
	// Nodes are the Erlang nodes of TO that the daemon resolves now, each
	// with the verdict for FROM.
	Nodes    []NodeVerdict `json:"nodes,omitempty"`
	PeerFile string        `json:"peer_file"`
	Note     string        `json:"note,omitempty"`
}

// NodeVerdict is one Erlang node and whether FROM may reach it.
type NodeVerdict struct {
	Name     string `json:"name"`
	Port     uint16 `json:"port"`
	Allow    bool   `json:"allow"`
	Decision string `json:"decision"`
}

// DefaultPingTimeout is how long the daemon waits for one echo reply when
// a ping request names no timeout.
const DefaultPingTimeout = 2 * time.Second

// PingReply is what became of one echo request the daemon sent.
type PingReply struct {
	From        string        `json:"from"` // this host
	FromAddress string        `json:"from_address"`
	Peer        string        `json:"peer"`
	Address     string        `json:"address"`
	Seq         uint16        `json:"seq"`
	Bytes       int           `json:"bytes"`   // ICMP message, header included
	Replied     bool          `json:"replied"` // false: no reply within Timeout
	RTT         time.Duration `json:"rtt_ns,omitempty"`
	Timeout     time.Duration `json:"timeout_ns"`
}
