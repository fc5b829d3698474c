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
)

// Row is one way of carrying Erlang distribution between two hosts. Every
// row runs the same workloads; ratios are taken, per metric, against the
// better of the baseline rows (inet_tls_dist's). To add a row append one
// entry to [Rows] with a Setup that starts two connected nodes.
type Row struct {
	ID   string // short [a-z0-9], at most 9 chars: host names, JSON, -rows
	Name string // for the table
	// Judged rows are nodewire's: the table says whether they meet the
	// issue's targets.
	Judged bool
	// Baseline rows are what an operator who must encrypt distribution
	// uses today, configured as one would for speed: every ratio is to the
	// better of them (per metric, in the same run and condition), and they
	// always run.
	Baseline bool
	// WANOptIn rows run in the real-network matrix only when -rows names
	// them (the matrix has no ratios to TLS, and time is its budget).
	WANOptIn bool
	Setup    func(e *Env, id string) (*Pair, error)
}

// Pair is what a row's Setup made: node A measures against node B.
type Pair struct {
	A, B *cluster.Node
	// Daemons are the row's long-running helpers (overlayd), whose
	// resident memory the harness samples. Keyed by host name.
	Daemons map[string]*cluster.Process
}

// Env is what a Setup may use.
type Env struct {
	C       *cluster.Cluster
	T       cluster.TB
	Dir     string   // run dir: certificates and the like
	ErlArgs []string // every node must get these (they load benchwork)
	// DaemonArgs, if set, adds overlayd flags for a host (profiles).
	DaemonArgs func(host string) []string
	// FillerPeers, if set, adds that many peers (in a network of their own,
	// never reached) to nodewire's peer file: a daemon of a big overlay.
	FillerPeers int

	overlayd string // built on first use
}

// newEnv makes a run's cluster (namespaces prefixed by label) and compiles
// benchwork into it: what every mode of the harness starts with.
func newEnv(tb cluster.TB, label string) (*Env, error) {
	c := cluster.New(tb, label)
	erlArgs, err := compileBenchwork(c.Dir())
	if err != nil {
		return nil, err
	}
	return &Env{C: c, T: tb, Dir: c.Dir(), ErlArgs: erlArgs}, nil
}

// Rows are the ways of carrying distribution that the harness compares, in
// table order.
var Rows = []Row{
	{ID: "plain", Name: "plain TCP dist (veth)", Setup: setupPlain},
	{ID: "tls", Name: "inet_tls_dist TLS 1.3 only", Baseline: true, Setup: tlsRow(tls13Only)},
	// No versions option: what this OTP offers and negotiates by default
	// (the run reports which version and cipher it was).
	{ID: "tlsdef", Name: "inet_tls_dist OTP default", Baseline: true, WANOptIn: true, Setup: tlsRow(nil)},
	{ID: "nwuser", Name: "nodewire userspace", Judged: true, Setup: setupUserspace},
	{ID: "nwtun", Name: "nodewire TUN", Judged: true, Setup: overlayRow("tun")},
	// WireGuard over TLS/TCP (overlay/tcpbind), both peers pinned to it:
	// what a site that lets only TCP 443 out gets.
	{ID: "nwtcp", Name: "nodewire userspace over TCP 443", Setup: overlayRow(modeTCP)},
}

// tls13Only is the versions option of the TLS 1.3-only row.
var tls13Only = []string{"tlsv1.3"}

// isBaseline reports whether id is one of the baseline rows.
func isBaseline(id string) bool {
	r, err := rowByID(id)
	return err == nil && r.Baseline
}

// modeTCP, given to setupOverlay as a mode, is userspace mode with both
// peers pinned to WireGuard over TLS/TCP on port 443.
const modeTCP = "tcp443"

// twoHosts makes hosts <id>a and <id>b, each with its own epmd on the
// underlay, and a node bench@<address> on each started with args.
func twoHosts(e *Env, id string, args func(h *cluster.Host) ([]string, error)) (*Pair, error) {
	var nodes []*cluster.Node
	for _, suffix := range []string{"a", "b"} {
		h := e.C.AddHost(id + suffix)
		if _, err := h.StartEPMD(nil); err != nil {
			return nil, err
		}
		extra, err := args(h)
		if err != nil {
			return nil, err
		}
		n, err := h.StartNode(cluster.NodeOptions{
			Name: "bench@" + h.Addr.String(),
			Args: append(append([]string{}, e.ErlArgs...), extra...),
		})
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, n)
	}
	return &Pair{A: nodes[0], B: nodes[1]}, nil
}

// setupPlain: stock inet_tcp_dist over the veth, the unencrypted ceiling.
func setupPlain(e *Env, id string) (*Pair, error) {
	return twoHosts(e, id, func(*cluster.Host) ([]string, error) { return nil, nil })
}

// tlsRow: inet_tls_dist with the given TLS versions (nil: OTP's default)
// and certificates from a CA made for this run; both sides require and
// verify the other's certificate.
func tlsRow(versions []string) func(e *Env, id string) (*Pair, error) {
	return func(e *Env, id string) (*Pair, error) {
		ca, err := newTLSCA(filepath.Join(e.Dir, "tls-"+id))
		if err != nil {
			return nil, err
		}
		return twoHosts(e, id, func(h *cluster.Host) ([]string, error) {
			opt, err := ca.optFile(h.Name, net.IP(h.Addr.AsSlice()), versions)
			if err != nil {
				return nil, err
			}
			return []string{"-proto_dist", "inet_tls", "-ssl_dist_optfile", opt}, nil
		})
	}
}

// tlsNegotiated asks node a what its inet_tls_dist connection to b
// negotiated: "<protocol> <cipher suite>".
func tlsNegotiated(p *Pair) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := p.A.Eval(ctx, fmt.Sprintf("benchwork:tls_info(%s).", cluster.Atom(p.B.Name)))
	if err != nil {
		return "", fmt.Errorf("what %s's TLS connection to %s negotiated: %w", p.A.Name, p.B.Name, err)
	}
	return strings.Trim(out, "'"), nil
}

// setupUserspace: overlayd on each host, epmd and nodes exactly as
// `overlayctl show` says.
var setupUserspace = overlayRow("")

// overlayRow sets up a nodewire row: the overlay's peer file made with
// overlayctl, overlayd on each host (in mode, if set: the peers' mode in the
// file and overlayd's --mode), epmd and nodes exactly as `overlayctl show`
// says.
func overlayRow(mode string) func(e *Env, id string) (*Pair, error) {
	return func(e *Env, id string) (*Pair, error) { return setupOverlay(e, id, mode, "") }
}

// setupOverlay starts a nodewire row; overlayd, if set, is the daemon
// binary to run instead of this tree's.
func setupOverlay(e *Env, id, mode, overlayd string) (*Pair, error) {
	return setupOverlayWith(e, id, mode, overlayd, "")
}

// setupOverlayWith is setupOverlay with, if ctl is set, that overlayctl
// writing the peer file and saying how to start Erlang (with overlayd, a
// pair built at one older revision: a coherent old system).
func setupOverlayWith(e *Env, id, mode, overlayd, ctl string) (*Pair, error) {
	var modeArgs, daemonArgs []string
	var o *cluster.Overlay
	if ctl != "" {
		o = cluster.NewOverlayWith(e.C, e.T, "10.78.0.0/16", overlayd, ctl)
	} else {
		o = cluster.NewOverlay(e.C, e.T, "10.78.0.0/16")
	}
	switch mode {
	case "":
	case modeTCP:
		daemonArgs = []string{"--tcp-listen", ":443"}
		o.PeerArgs = func(h *cluster.Host) []string {
			return []string{"--tcp-endpoint", h.Addr.String() + ":443", "--transport", "tcp"}
		}
	default:
		modeArgs = []string{"--mode", mode}
	}
	if overlayd != "" {
		o.Overlayd = overlayd
	}
	o.DaemonArgs = func(oh *cluster.OverlayHost) []string {
		args := append(append([]string{}, modeArgs...), daemonArgs...)
		if e.DaemonArgs != nil {
			args = append(args, e.DaemonArgs(oh.Name)...)
		}
		return args
	}
	if _, err := o.Run("add-network", "--file", o.File, "--name", "bench", "--prefix", "10.78.1.0/24"); err != nil {
		return nil, err
	}
	var hosts []*cluster.OverlayHost
	for _, suffix := range []string{"a", "b"} {
		oh, err := o.AddPeer(id+suffix, "bench-"+suffix, "bench", modeArgs...)
		if err != nil {
			return nil, err
		}
		hosts = append(hosts, oh)
	}
	if e.FillerPeers > 0 {
		if err := addFillerPeers(o, e.FillerPeers); err != nil {
			return nil, err
		}
	}
	p := &Pair{Daemons: map[string]*cluster.Process{}}
	for _, oh := range hosts {
		if err := o.StartDaemon(oh); err != nil {
			return nil, err
		}
		p.Daemons[oh.Name] = oh.Daemon
	}
	for _, oh := range hosts {
		if err := o.StartErlang(oh, e.ErlArgs...); err != nil {
			return nil, err
		}
	}
	p.A, p.B = hosts[0].Node, hosts[1].Node
	return p, nil
}

func rowByID(id string) (Row, error) {
	for _, r := range Rows {
		if r.ID == id {
			return r, nil
		}
	}
	return Row{}, fmt.Errorf("no row %q", id)
}

// addFillerPeers adds n peers in a network "filler" to the overlay's peer
// file: appended as text, since the file ends with its peers section and
// overlayctl would take a process per peer.
func addFillerPeers(o *cluster.Overlay, n int) error {
	if n > 4000 {
		return fmt.Errorf("%d filler peers: at most 4000 fit the filler network", n)
	}
	if _, err := o.Run("add-network", "--file", o.File, "--name", "filler", "--prefix", "10.78.16.0/20"); err != nil {
		return err
	}
	var b strings.Builder
	for i := range n {
		k, err := ecdh.X25519().GenerateKey(rand.Reader)
		if err != nil {
			return err
		}
		a := i + 1
		fmt.Fprintf(&b, "  filler-%d: {network: filler, public_key: %s, address: 10.78.%d.%d, endpoint: 192.0.2.%d:51820}\n",
			i, base64.StdEncoding.EncodeToString(k.PublicKey().Bytes()), 16+(a>>8), a&0xff, a%250+1)
	}
	f, err := os.OpenFile(o.File, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(b.String()); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	_, err = o.Run("check", "--file", o.File)
	return err
}
