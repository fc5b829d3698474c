package main

// Operator commands beyond editing: rotate-key, explain against the live
// daemon, and the mesh warnings of check.

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/nodewire/nodewire/overlay/control"
	"github.com/nodewire/nodewire/peers"
)

// maxGapsShown caps the gaps check prints; the count says how many more.
const maxGapsShown = 5

// writeMeshWarnings explains, for people, the gaps in the Erlang mesh that
// f's policy leaves, what OTP's global does about them and the fixes.
func writeMeshWarnings(w io.Writer, path string, f *peers.File) {
	gaps := f.MeshGaps()
	if len(gaps) == 0 {
		return
	}
	fmt.Fprintf(w, "%s: warning: the interconnect is not transitive (%d %s):\n", path, len(gaps), plural(len(gaps), "gap", "gaps"))
	bridges := map[string]bool{}
	var order []string
	for i, g := range gaps {
		if i < maxGapsShown {
			fmt.Fprintf(w, "  %s <-> %s and %s <-> %s, but not %s <-> %s\n", g.A, g.B, g.B, g.C, g.A, g.C)
		}
		if !bridges[g.B] {
			bridges[g.B] = true
			order = append(order, g.B)
		}
	}
	if len(gaps) > maxGapsShown {
		fmt.Fprintf(w, "  ... and %d more\n", len(gaps)-maxGapsShown)
	}
	fmt.Fprintf(w, `  Erlang's global (OTP 25+, prevent_overlapping_partitions) meshes the nodes it
  hears of. Once a node of %s is connected to nodes of both %s and %s, global
  on each of those two tries the other, is refused, and reports it; the node
  of %s then has one of them disconnect, sometimes both, to prevent
  overlapping partitions. Which one is a race, and every reconnection starts
  it over: nodes that may talk lose each other.
  Fix one of:
    - start the nodes with -kernel connect_all false (global then hears of no
      node and disconnects none), or
    - start the bridging nodes (%s) with -hidden (global ignores hidden
      connections), or
    - allow the missing connections (overlayctl allow ...).
`, gaps[0].B, gaps[0].A, gaps[0].C, gaps[0].B, strings.Join(order, ", "))
}

// cmdExplainLive is `explain --control SOCKET FROM TO [PORT]`: the running
// daemon's verdict, with the Erlang nodes it resolves now.
func cmdExplainLive(fs *cmdFlags, socket string, from, to string, port uint16) error {
	ctx, cancel := context.WithTimeout(context.Background(), controlTimeout)
	defer cancel()
	ex, err := control.Client{Path: socket}.Explain(ctx, from, to, port)
	if err != nil {
		return err
	}
	w := fs.e.stdout
	fmt.Fprintln(w, ex.Decision)
	if ex.Node != "" {
		fmt.Fprintf(w, "port %d is the distribution port of node %s on %s\n", port, ex.Node, to)
	}
	if ex.Known {
		if len(ex.Nodes) == 0 {
			fmt.Fprintf(w, "erlang: no node of %s known to this daemon\n", to)
		} else {
			fmt.Fprintf(w, "erlang: nodes of %s this daemon resolves now, and %s's access:\n", to, from)
			for _, n := range ex.Nodes {
				fmt.Fprintf(w, "  %-16s port %-5d %s\n", n.Name, n.Port, n.Decision)
			}
		}
	}
	if ex.Note != "" {
		fmt.Fprintf(w, "note: %s\n", ex.Note)
	}
	return nil
}

func cmdRotateKey(e *env, args []string) error {
	fs := newFlags(e, "rotate-key", "--file F --self NAME --private-key FILE [--reload] [--control S]",
		`Gives this host a new WireGuard key without downtime. Writes a new private
key into FILE (mode 0600; the old one is kept as FILE.old) and the new public
key into the peer file, keeping everything else byte for byte.

Then, as quickly as you can one after the other:
  1. copy the peer file to every other host and reload each (overlayctl reload,
     or systemctl reload overlayd): they switch to the new key;
  2. reload this host (or pass --reload here and do step 1 right after): it
     reads FILE again and switches its device to the new key.
Connections stay open through a rotation; between the first and the last
reload, traffic between this host and the hosts already switched pauses and
TCP retransmits it. Keep that well under Erlang's net_ticktime (60 s).
Under systemd with LoadCredential, the key is copied at start: see README.`)
	file := fs.file()
	self := fs.String("self", "", "this host's peer name (required)")
	keyFile := fs.String("private-key", "", "this host's private key file, as overlayd reads it (required)")
	reload, socket := fs.reloadFlags()
	if _, err := fs.parse(args, 0, 0); err != nil {
		return err
	}
	if err := fs.required("file", "self", "private-key"); err != nil {
		return err
	}
	old, err := peers.LoadPrivateKey(*keyFile)
	if err != nil {
		return err
	}
	oldPub, err := peers.PublicKey(old)
	if err != nil {
		return err
	}
	raw, err := genPrivateKey(rand.Reader)
	if err != nil {
		return err
	}
	newKey := peers.Key(raw)
	newPub, err := peers.PublicKey(newKey)
	if err != nil {
		return err
	}
	// The new key goes next to the old one first: if the peer file cannot
	// be changed, nothing is.
	next := *keyFile + ".new"
	if err := writeKeyFile(next, newKey); err != nil {
		return err
	}
	_, err = editPeerFile(*file, func(data []byte, orig *peers.File, origErr error) ([]byte, error) {
		if origErr != nil {
			return nil, needValid(origErr)
		}
		p := orig.Peer(*self)
		switch {
		case p == nil:
			return nil, fmt.Errorf("no peer %s%s", *self, networkHint(orig, *self))
		case p.PublicKey != oldPub:
			return nil, fmt.Errorf("peers.%s.public_key is not the public key of %s (%s): is this the right host and key file?", p.Name, *keyFile, oldPub)
		}
		return peers.SetPublicKey(data, p.Name, newPub)
	})
	if err != nil {
		os.Remove(next)
		return fs.editFailed(*file, err, "")
	}
	if err := writeKeyFile(*keyFile+".old", old); err != nil {
		return fmt.Errorf("%s names the new key, but saving the old one failed: %v; the new key is in %s: move it to %s before reloading", *file, err, next, *keyFile)
	}
	if err := os.Rename(next, *keyFile); err != nil {
		return fmt.Errorf("%s names the new key, but installing it failed: %v; move %s to %s before reloading", *file, err, next, *keyFile)
	}
	fmt.Fprintf(e.stdout, "%s: new public key %s (was %s)\n", *self, newPub, oldPub)
	fmt.Fprintf(e.stdout, "%s: new private key written; the old one is in %s.old\n", *keyFile, *keyFile)
	if *reload {
		if err := fs.reload(true, *socket, *file); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "this host's overlayd switched to the new key; now copy %s to every other host and reload them\n", *file)
		return nil
	}
	fmt.Fprintf(e.stdout, "next: copy %s to every other host and reload them, then reload this host (overlayctl reload)\n", *file)
	return nil
}

// writeKeyFile writes k in base64 to path, mode 0600, atomically.
func writeKeyFile(path string, k peers.Key) error {
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%s: mode %04o lets others read it", path, fi.Mode().Perm())
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return peers.WriteFileAtomic(path, []byte(base64.StdEncoding.EncodeToString(k[:])+"\n"), 0o600)
}

// writeStatusHost is the second header line of status: this host's key and
// the Erlang nodes its epmd has registered.
func writeStatusHost(w io.Writer, st *control.Status) {
	fmt.Fprintf(w, "public key %s\n", st.PublicKey)
	switch {
	case st.NodesErr != "":
		fmt.Fprintf(w, "local nodes: unknown (%s)\n", st.NodesErr)
	case len(st.Nodes) == 0:
		fmt.Fprintln(w, "local nodes: none registered with epmd on this host's face")
	default:
		fmt.Fprintf(w, "local nodes: %s\n", strings.Join(st.Nodes, " "))
	}
}

// deniedCell is the DENIED column: the total, split by direction when any.
func deniedCell(p control.PeerStatus) string {
	if p.Denials == 0 {
		return "0"
	}
	return fmt.Sprintf("%d (in %d, out %d)", p.Denials, p.DeniedIn, p.DeniedOut)
}

// writeStatusDetails lists, under the table, what needs words: the last
// refusal per peer, faces that could not be opened, nodes learned.
func writeStatusDetails(w io.Writer, st *control.Status, now time.Time) {
	first := true
	for _, p := range st.Peers {
		var lines []string
		if r := p.LastRefusal; r != nil {
			what := fmt.Sprintf("port %d", r.Port)
			if r.Proto == "icmp" {
				what = "ping"
			}
			lines = append(lines, fmt.Sprintf("last refused %s ago: %s %s -> %s %s: %s", ago(now, r.At), r.Dir, r.From, r.To, what, r.Decision))
		}
		if p.FaceError != "" {
			lines = append(lines, "FACE NOT OPEN: "+p.FaceError)
		}
		if len(p.Nodes) > 0 {
			lines = append(lines, "nodes resolved: "+strings.Join(p.Nodes, " "))
		}
		if len(lines) == 0 {
			continue
		}
		if first {
			fmt.Fprintln(w)
			first = false
		}
		for _, l := range lines {
			fmt.Fprintf(w, "%s: %s\n", p.Name, l)
		}
	}
}
