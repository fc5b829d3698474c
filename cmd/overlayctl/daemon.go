package main

// The commands that talk to a running overlayd over its control socket.

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/nodewire/nodewire/overlay/control"
)

const controlTimeout = 15 * time.Second

// cmdReload implements `overlayctl reload [--control SOCKET]`.
func cmdReload(e *env, args []string) error {
	fs := newFlags(e, "reload", "[--control SOCKET]",
		`Asks the local overlayd to reload its peer file. A bad file is refused and the
daemon keeps running on the last good one.`)
	socket := fs.controlFlag()
	if _, err := fs.parse(args, 0, 0); err != nil {
		return err
	}
	if err := reloadDaemon(*socket); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "reloaded")
	return nil
}

// cmdStatus implements `overlayctl status [--control SOCKET] [--json]`.
func cmdStatus(e *env, args []string) error {
	fs := newFlags(e, "status", "[--control SOCKET] [--json]",
		`Shows this host (with its mode: userspace or tun), then each peer: endpoint,
last handshake, bytes each way, open connections and denials.`)
	socket := fs.controlFlag()
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := fs.parse(args, 0, 0); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), controlTimeout)
	defer cancel()
	st, err := control.Client{Path: *socket}.Status(ctx)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	writeStatus(e.stdout, st, time.Now())
	return nil
}

// controlFlag adds --control, the daemon's socket, to a command that talks
// to overlayd.
func (c *cmdFlags) controlFlag() *string {
	return c.String("control", "", "control socket of overlayd (default "+control.DefaultPath()+")")
}

// writeStatus renders a status for people: the host on top, a table of peers.
func writeStatus(w io.Writer, st *control.Status, now time.Time) {
	mode := ""
	if st.Mode != "" { // a daemon from before status had the mode leaves it out
		mode = ", " + st.Mode + " mode"
	}
	fmt.Fprintf(w, "%s (network %s%s)  address %s  face %s  udp %d  wg interface %s\n",
		st.Self, st.Network, mode, st.Address, st.Face, st.ListenPort, st.Interface)
	fmt.Fprintf(w, "peer file %s", st.PeerFile)
	if st.PeerFileSerial != 0 {
		fmt.Fprintf(w, " serial %d", st.PeerFileSerial)
	}
	fmt.Fprintf(w, ", loaded %s ago, %d reloads", ago(now, st.LoadedAt), st.Reloads)
	if st.ReloadErr != "" {
		fmt.Fprintf(w, "; LAST RELOAD REJECTED: %s", st.ReloadErr)
	}
	fmt.Fprintln(w)
	if s := st.Source; s != nil {
		state := "connected"
		if !s.Connected {
			state = "UNREACHABLE, running on the last good file"
		}
		fmt.Fprintf(w, "source %s: %s, revision %d applied, %d refused", s.URL, state, s.Revision, s.Refused)
		if s.LastError != "" {
			fmt.Fprintf(w, "; last error: %s", s.LastError)
		}
		fmt.Fprintln(w)
	}
	writeStatusHost(w, st)
	if st.Goroutines > 0 {
		fmt.Fprintf(w, "process: %d goroutines, %.1f MiB resident, %.1f MiB live heap\n",
			st.Goroutines, float64(st.RSSBytes)/(1<<20), float64(st.HeapLiveBytes)/(1<<20))
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PEER\tNETWORK\tADDRESS\tFACE\tENDPOINT\tHANDSHAKE\tRX\tTX\tCONNS\tDENIED")
	for _, p := range st.Peers {
		hs := "never"
		if !p.LastHandshake.IsZero() {
			hs = ago(now, p.LastHandshake) + " ago"
		}
		ep := p.Endpoint
		switch {
		case p.Unreachable:
			ep, hs = "(unreachable: policy)", "-" // no WireGuard peer for it here
		case ep == "":
			ep = "(none)"
		case p.Transport == "tcp":
			ep += " (tcp)" // UDP is blocked: WireGuard over TLS/TCP
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", p.Name, p.Network, p.Address, p.Face, ep, hs,
			bytesHuman(p.RxBytes), bytesHuman(p.TxBytes), p.OpenConns, deniedCell(p))
	}
	tw.Flush()
	writeStatusDetails(w, st, now)
}

func ago(now, t time.Time) string {
	d := now.Sub(t)
	switch {
	case d < time.Second:
		return "0s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%ds", int(d.Minutes()), int(d.Seconds())%60)
	default:
		return d.Truncate(time.Minute).String()
	}
}

func bytesHuman(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// reloadDaemon asks the daemon at socket (empty: the default path) to reload
// its peer file, and returns its verdict.
func reloadDaemon(socket string) error {
	ctx, cancel := context.WithTimeout(context.Background(), controlTimeout)
	defer cancel()
	return control.Client{Path: socket}.Reload(ctx)
}
