package cluster

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/nodewire/nodewire/overlay/control"
)

// Overlay is a nodewire overlay across the cluster's hosts: one peer file
// edited with the real overlayctl, a copy of it per host (as on real
// machines), and per host an overlayd, an epmd and an Erlang node started
// exactly as `overlayctl show` says.
type Overlay struct {
	C        *Cluster
	Overlayd string // binary paths
	Ctl      string
	File     string // the master peer file; hosts get copies
	Hosts    map[string]*OverlayHost
	// DaemonArgs, if set, adds overlayd flags for a host (the benchmarks
	// ask for --cpuprofile this way).
	DaemonArgs func(oh *OverlayHost) []string
	// PeerArgs, if set, adds `overlayctl add-peer` flags for a host, once
	// its underlay address is known (the TCP benchmark row pins peers to
	// TCP this way).
	PeerArgs func(h *Host) []string
}

// OverlayHost is one host of the overlay.
type OverlayHost struct {
	*Host
	Peer     string // name in the peer file
	Dir      string
	PeerFile string // this host's copy
	KeyFile  string
	Control  string
	// Interface is the daemon's --interface: its UAPI socket
	// /var/run/wireguard/<Interface>.sock (and its kernel interface in
	// TUN mode). That directory is shared by every network namespace, so
	// each run's hosts get their own names: with overlayd's default
	// (nw-<peer>) two runs at once would take each other's socket, and
	// `wg show` would list the other run's daemon.
	Interface string
	Face      string
	Daemon    *Process
	EPMD      *Process
	Node      *Node
	ErlEnv    []string // from `overlayctl show`
	ErlArgs   []string // erl arguments from `overlayctl show`, -name excluded
}

// NewOverlay builds the binaries and writes a fresh peer file with `overlayctl init`.
func NewOverlay(c *Cluster, t TB, prefix string) *Overlay {
	t.Helper()
	bins := BuildBinaries(t, "github.com/nodewire/nodewire/cmd/overlayd", "github.com/nodewire/nodewire/cmd/overlayctl")
	return NewOverlayWith(c, t, prefix, bins["overlayd"], bins["overlayctl"])
}

// NewOverlayWith is NewOverlay with given overlayd and overlayctl binaries
// (the benchmarks' rows at an older revision run that revision's pair, whose
// peer file format may differ from today's).
func NewOverlayWith(c *Cluster, t TB, prefix, overlayd, ctl string) *Overlay {
	t.Helper()
	// A run may hold several overlays (the benchmarks do): each its own file.
	file := filepath.Join(c.Dir(), "peers.yaml")
	for i := 2; ; i++ {
		if _, err := os.Stat(file); os.IsNotExist(err) {
			break
		}
		file = filepath.Join(c.Dir(), fmt.Sprintf("peers-%d.yaml", i))
	}
	o := &Overlay{C: c, Overlayd: overlayd, Ctl: ctl, File: file, Hosts: map[string]*OverlayHost{}}
	if _, err := o.Run("init", "--file", o.File, "--prefix", prefix); err != nil {
		t.Fatalf("%v", err)
	}
	return o
}

// Run runs overlayctl with args (in the root namespace: it only edits files
// or talks to unix sockets) and returns its stdout.
func (o *Overlay) Run(args ...string) (string, error) {
	cmd := exec.Command(o.Ctl, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("overlayctl %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// AddPeer makes a host, gives it a key (0600) and adds it to the master peer
// file with `overlayctl add-peer`, its endpoint being its underlay address;
// addPeerArgs are more add-peer flags (--mode tun).
func (o *Overlay) AddPeer(hostName, peer, network string, addPeerArgs ...string) (*OverlayHost, error) {
	h := o.C.AddHost(hostName)
	oh := &OverlayHost{Host: h, Peer: peer, Dir: filepath.Join(o.C.Dir(), "host-"+hostName)}
	var rnd [3]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, err
	}
	oh.Interface = "nw" + hex.EncodeToString(rnd[:]) + "-" + peer
	if len(oh.Interface) > 15 { // IFNAMSIZ, and wg's limit
		oh.Interface = oh.Interface[:15]
	}
	if err := os.MkdirAll(oh.Dir, 0o700); err != nil {
		return nil, err
	}
	key, err := o.Run("genkey")
	if err != nil {
		return nil, err
	}
	oh.KeyFile = filepath.Join(oh.Dir, "private.key")
	if err := os.WriteFile(oh.KeyFile, []byte(key), 0o600); err != nil {
		return nil, err
	}
	pub := exec.Command(o.Ctl, "pubkey")
	pub.Stdin = strings.NewReader(key)
	pubOut, err := pub.Output()
	if err != nil {
		return nil, fmt.Errorf("overlayctl pubkey: %v", err)
	}
	args := []string{"add-peer", "--file", o.File, "--name", peer, "--network", network,
		"--public-key", strings.TrimSpace(string(pubOut)), "--endpoint", h.Addr.String() + ":51820"}
	args = append(args, addPeerArgs...)
	if o.PeerArgs != nil {
		args = append(args, o.PeerArgs(h)...)
	}
	if _, err := o.Run(args...); err != nil {
		return nil, err
	}
	oh.PeerFile = filepath.Join(oh.Dir, "peers.yaml")
	oh.Control = filepath.Join(oh.Dir, "overlayd.sock")
	o.Hosts[peer] = oh
	return oh, nil
}

// CopyFile gives the host its own copy of the master peer file.
func (o *Overlay) CopyFile(oh *OverlayHost) error {
	data, err := os.ReadFile(o.File)
	if err != nil {
		return err
	}
	return os.WriteFile(oh.PeerFile, data, 0o644)
}

// StartDaemon starts overlayd on the host and waits until its control socket answers.
func (o *Overlay) StartDaemon(oh *OverlayHost) error {
	if _, err := os.Stat(oh.PeerFile); err != nil {
		if err := o.CopyFile(oh); err != nil {
			return err
		}
	}
	argv := []string{o.Overlayd, "--peers", oh.PeerFile, "--self", oh.Peer,
		"--private-key", oh.KeyFile, "--control", oh.Control, "--interface", oh.Interface, "--log-level", "info"}
	if o.DaemonArgs != nil {
		argv = append(argv, o.DaemonArgs(oh)...)
	}
	p, err := oh.Start("overlayd", argv, nil)
	if err != nil {
		return err
	}
	oh.Daemon = p
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = Poll(ctx, 20*time.Millisecond, func() (bool, error) {
		if p.Exited() {
			return false, fmt.Errorf("overlayd on %s exited:\n%s", oh.Name, p.Tail(20))
		}
		_, err := control.Client{Path: oh.Control}.Status(ctx)
		return err == nil, nil
	})
	if err != nil {
		return fmt.Errorf("overlayd on %s not ready: %w\n%s", oh.Name, err, p.Tail(20))
	}
	return nil
}

// StartErlang starts epmd and a node called app@<face> with exactly the
// environment and flags `overlayctl show` prints for this host.
func (o *Overlay) StartErlang(oh *OverlayHost, extraArgs ...string) error {
	show, err := o.Run("show", "--file", oh.PeerFile, oh.Peer)
	if err != nil {
		return err
	}
	var name string
	sc := bufio.NewScanner(strings.NewReader(show))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "face "):
			oh.Face = strings.TrimSpace(strings.TrimPrefix(line, "face"))
		case strings.HasPrefix(line, "export "):
			oh.ErlEnv = append(oh.ErlEnv, strings.TrimPrefix(line, "export "))
		case strings.HasPrefix(line, "erl "):
			args := shellFields(strings.TrimPrefix(line, "erl "))
			for i := 0; i < len(args); i++ {
				if args[i] == "-name" && i+1 < len(args) {
					name = args[i+1]
					i++
					continue
				}
				oh.ErlArgs = append(oh.ErlArgs, args[i])
			}
		}
	}
	if name == "" || len(oh.ErlEnv) == 0 {
		return fmt.Errorf("overlayctl show %s: no erl/export lines in:\n%s", oh.Peer, show)
	}
	if oh.EPMD, err = oh.StartEPMD(oh.ErlEnv); err != nil {
		return err
	}
	oh.Node, err = oh.StartNode(NodeOptions{Name: name, Env: oh.ErlEnv, Args: append(append([]string{}, oh.ErlArgs...), extraArgs...)})
	return err
}

// shellFields splits a shell word list with single quotes (what `overlayctl
// show` prints) into arguments.
func shellFields(s string) []string {
	var out []string
	var cur strings.Builder
	inQuote, have := false, false
	for _, r := range s {
		switch {
		case r == '\'':
			inQuote, have = !inQuote, true
		case (r == ' ' || r == '\t') && !inQuote:
			if have {
				out = append(out, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteRune(r)
			have = true
		}
	}
	if have {
		out = append(out, cur.String())
	}
	return out
}
