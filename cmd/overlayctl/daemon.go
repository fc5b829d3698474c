package main

// The commands that talk to a running overlayd over its control socket.

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/nodewire/nodewire/overlay/control"
)

const controlTimeout = 15 * time.Second

// cmdReload implements `overlayctl reload [--control SOCKET]`.
func cmdReload(e *env, args []string) int {
	fs := flag.NewFlagSet("reload", flag.ContinueOnError)
	socket := fs.String("control", "", "control socket of overlayd (default "+control.DefaultPath()+")")
	if code, done := parseDaemonFlags(e, fs, args, "usage: overlayctl reload [--control SOCKET]\n\nAsks the local overlayd to reload its peer file. A bad file is refused and the\ndaemon keeps running on the last good one.\n"); done {
		return code
	}
	if err := reloadDaemon(*socket); err != nil {
		fmt.Fprintf(e.stderr, "overlayctl reload: %v\n", err)
		return 1
	}
	fmt.Fprintln(e.stdout, "reloaded")
	return 0
}

// cmdStatus implements `overlayctl status [--control SOCKET] [--json]`.
func cmdStatus(e *env, args []string) int {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	socket := fs.String("control", "", "control socket of overlayd (default "+control.DefaultPath()+")")
	asJSON := fs.Bool("json", false, "print JSON")
	if code, done := parseDaemonFlags(e, fs, args, "usage: overlayctl status [--control SOCKET] [--json]\n\nShows this host (with its mode: userspace or tun), then each peer: endpoint,\nlast handshake, bytes each way, open connections and denials.\n"); done {
		return code
	}
	ctx, cancel := context.WithTimeout(context.Background(), controlTimeout)
	defer cancel()
	st, err := control.Client{Path: *socket}.Status(ctx)
	if err != nil {
		fmt.Fprintf(e.stderr, "overlayctl status: %v\n", err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(st); err != nil {
			fmt.Fprintf(e.stderr, "overlayctl status: %v\n", err)
			return 1
		}
		return 0
	}
	writeStatus(e.stdout, st, time.Now())
	return 0
}

// parseDaemonFlags parses a daemon command's flags; done says the caller
// should return code at once (help, usage error or stray arguments).
func parseDaemonFlags(e *env, fs *flag.FlagSet, args []string, usage string) (code int, done bool) {
	fs.SetOutput(io.Discard) // errors are reported below, in one line
	printUsage := func() { fmt.Fprint(fs.Output(), usage); fs.PrintDefaults() }
	fs.Usage = func() {} // printed below, once, to the right stream
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			fs.SetOutput(e.stdout)
			printUsage()
			return 0, true
		}
		fmt.Fprintf(e.stderr, "overlayctl %s: %v (see overlayctl %s -h)\n", fs.Name(), err, fs.Name())
		return 2, true
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(e.stderr, "overlayctl %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		return 2, true
	}
	return 0, false
}

// writeStatus renders a status for people: the host on top, a table of peers.
func writeStatus(w io.Writer, st *control.Status, now time.Time) {
	mode := ""
	if st.Mode != "" { // a daemon from before status had the mode leaves it out
		mode = ", " + st.Mode + " mode"
	}
	fmt.Fprintf(w, "%s (network %s%s)  address %s  face %s  udp %d  wg interface %s\n",
		st.Self, st.Network, mode, st.Address, st.Face, st.ListenPort, st.Interface)
	fmt.Fprintf(w, "peer file %s, loaded %s ago, %d reloads", st.PeerFile, ago(now, st.LoadedAt), st.Reloads)
	if st.ReloadErr != "" {
		fmt.Fprintf(w, "; LAST RELOAD REJECTED: %s", st.ReloadErr)
	}
	fmt.Fprintln(w)
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
		if ep == "" {
			ep = "(none)"
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
