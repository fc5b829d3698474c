package overlay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/nodewire/nodewire/netstack"
	"github.com/nodewire/nodewire/overlay/internal/promtext"
	"github.com/nodewire/nodewire/peers"
)

// Prometheus metrics, served on Config.MetricsAddr. Every number comes from
// where the work is done: WireGuard's own counters (UAPI get) for bytes on
// the wire and handshakes, the userspace stack's counters for streams,
// connections, decisions, EPMD requests and packets. README lists them.

// checkMetricsAddr refuses an address that is not loopback unless public
// is set: metrics name every peer, its addresses and who was refused, which
// is a map of the overlay. To scrape from another host, bind the host's
// face and list the port in its `expose:` so the policy decides who reads.
func checkMetricsAddr(addr string, public bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("--metrics %q: want HOST:PORT, e.g. 127.0.0.1:9101", addr)
	}
	if public {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	if host == "localhost" || err == nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("--metrics %s is not a loopback address: metrics map the whole overlay; bind 127.0.0.1 or this host's face (and expose the port to let peers scrape through the overlay), or pass --metrics-public", addr)
}

// serveMetrics starts the metrics HTTP server on ln; it stops when ln is
// closed.
func (d *Daemon) serveMetrics(ln net.Listener) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", promtext.ContentType)
		if err := d.WriteMetrics(w); err != nil {
			d.log.Debug("metrics reply", slog.Any("err", err))
		}
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "overlayd: metrics at /metrics")
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second,
		ErrorLog: slog.NewLogLogger(d.log.Handler(), slog.LevelDebug)}
	d.srv = srv
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, http.ErrServerClosed) {
			d.log.Warn("metrics server stopped", slog.Any("err", err))
		}
	}()
}

// metricsShutdownWait bounds how long Close lets scrapes in progress finish.
const metricsShutdownWait = time.Second

// stopMetrics closes the metrics listener, lets scrapes in progress finish
// (up to metricsShutdownWait), then closes whatever connection is left.
func (d *Daemon) stopMetrics() {
	ctx, cancel := context.WithTimeout(context.Background(), metricsShutdownWait)
	defer cancel()
	if err := d.srv.Shutdown(ctx); err != nil {
		d.srv.Close()
	}
}

// WriteMetrics writes every metric in the Prometheus text format.
func (d *Daemon) WriteMetrics(out io.Writer) error {
	d.mu.Lock()
	f, self := d.file, d.self
	reloadsOK, reloadsFailed, loadedAt, reloadErr := d.reloads, d.reloadFails, d.loadedAt, d.reloadErr
	d.mu.Unlock()

	wgState := d.wgState()
	conns := d.plane.Stats()
	var (
		decisions []netstack.DecisionCount
		epmd      []netstack.EPMDCount
		pk        *netstack.PacketCounts
	)
	if ops := d.ops(); ops != nil {
		decisions, epmd = ops.PolicyCounters()
		p := ops.Packets()
		pk = &p
	}

	w := promtext.NewWriter(out)
	each := func(fn func(p *peers.Peer)) {
		for _, p := range f.Peers {
			if p.Name != self.Name {
				fn(p)
			}
		}
	}
	w.Family("nodewire_up", promtext.Gauge, "1 while overlayd runs; labels name this host.")
	w.Sample(1, "self", self.Name, "network", self.Network.Name, "address", self.Address.String(), "face", self.Face.String())
	w.Family("nodewire_start_time_seconds", promtext.Gauge, "When overlayd started (Unix time).")
	w.Sample(float64(d.started.Unix()))

	w.Family("nodewire_peer_info", promtext.Gauge, "One per peer of the current peer file: its network, overlay address and face here.")
	each(func(p *peers.Peer) {
		w.Sample(1, "peer", p.Name, "network", p.Network.Name, "address", p.Address.String(), "face", p.Face.String())
	})
	w.Family("nodewire_peer_wireguard_rx_bytes_total", promtext.Counter, "Bytes WireGuard received from the peer (UDP payload, as wg show counts).")
	each(func(p *peers.Peer) { w.Sample(float64(wgState[p.PublicKey].Rx), "peer", p.Name) })
	w.Family("nodewire_peer_wireguard_tx_bytes_total", promtext.Counter, "Bytes WireGuard sent to the peer (UDP payload, as wg show counts).")
	each(func(p *peers.Peer) { w.Sample(float64(wgState[p.PublicKey].Tx), "peer", p.Name) })
	w.Family("nodewire_peer_transport", promtext.Gauge, "1 for the transport now carrying the peer's WireGuard datagrams (udp, or tcp when UDP is blocked), 0 for the other.")
	each(func(p *peers.Peer) {
		if tr := wgState[p.PublicKey].Transport; tr != "" {
			w.Sample(b2f(tr == "udp"), "peer", p.Name, "transport", "udp")
			w.Sample(b2f(tr == "tcp"), "peer", p.Name, "transport", "tcp")
		}
	})
	w.Family("nodewire_peer_last_handshake_seconds", promtext.Gauge, "Unix time of the last WireGuard handshake with the peer; 0 if none yet.")
	each(func(p *peers.Peer) {
		var t float64
		if hs := wgState[p.PublicKey].LastHandshake; !hs.IsZero() {
			t = float64(hs.Unix())
		}
		w.Sample(t, "peer", p.Name)
	})
	w.Family("nodewire_peer_stream_bytes_total", promtext.Counter, "Bytes of forwarded TCP streams: dir=in from the peer to local sockets, dir=out from local sockets to the peer.")
	each(func(p *peers.Peer) {
		c := conns[p.Name]
		w.Sample(float64(c.BytesIn), "peer", p.Name, "dir", "in")
		w.Sample(float64(c.BytesOut), "peer", p.Name, "dir", "out")
	})
	w.Family("nodewire_peer_connections_open", promtext.Gauge, "Forwarded connections open now with the peer, both directions.")
	each(func(p *peers.Peer) { w.Sample(float64(conns[p.Name].Open), "peer", p.Name) })
	w.Family("nodewire_peer_connections_total", promtext.Counter, "Forwarded connections carried with the peer, both directions.")
	each(func(p *peers.Peer) { w.Sample(float64(conns[p.Name].Total), "peer", p.Name) })
	w.Family("nodewire_peer_denials_total", promtext.Counter, "Connections and EPMD requests refused: dir=in arriving from the peer (and, from a peer the policy keeps out, its handshakes WireGuard dropped), dir=out from local processes to the peer's face.")
	handshakes := d.strangers.refusals() // as status counts them
	each(func(p *peers.Peer) {
		c := conns[p.Name]
		w.Sample(float64(c.DeniedIn+handshakes[p.Name]), "peer", p.Name, "dir", "in")
		w.Sample(float64(c.DeniedOut), "peer", p.Name, "dir", "out")
	})
	w.Family("nodewire_peer_face_error", promtext.Gauge, "1 when a listener on the peer's face could not be opened (overlayctl status says why).")
	each(func(p *peers.Peer) {
		v := 0.0
		if conns[p.Name].FaceError != "" {
			v = 1
		}
		w.Sample(v, "peer", p.Name)
	})

	w.Family("nodewire_policy_decisions_total", promtext.Counter, "Policy verdicts on new connections, and refusals inside them (an EPMD request, a node a rule does not name), by deciding reason and rule (file:line).")
	for _, c := range decisions {
		w.Sample(float64(c.Count), "peer", c.Peer, "dir", c.Dir, "verdict", c.Verdict, "reason", c.Reason, "rule", c.Rule)
	}
	w.Family("nodewire_epmd_requests_total", promtext.Counter, "EPMD requests seen by the relay, by type and verdict (relayed or refused).")
	for _, c := range epmd {
		w.Sample(float64(c.Count), "peer", c.Peer, "dir", c.Dir, "request", c.Request, "verdict", c.Verdict)
	}
	if pk != nil {
		w.Family("nodewire_stack_packets_total", promtext.Counter, "IP packets between WireGuard and the userspace stack, all peers: dir=rx into the stack, dir=tx out of it.")
		w.Sample(float64(pk.Received), "dir", "rx")
		w.Sample(float64(pk.Sent), "dir", "tx")
		w.Family("nodewire_stack_dropped_packets_total", promtext.Counter, "Packets the userspace stack lost itself: where=stack dropped by gVisor (mostly TCP segments arriving while the connection's receive memory was full), where=link sent while the queue to WireGuard was full.")
		w.Sample(float64(pk.Dropped), "where", "stack")
		w.Sample(float64(pk.LinkFull), "where", "link")
		w.Family("nodewire_stack_tcp_retransmits_total", promtext.Counter, "TCP segments the userspace stack sent again, all connections; kind=timeout counts the retransmission timeouts among the recoveries.")
		w.Sample(float64(pk.Retransmits), "kind", "segment")
		w.Sample(float64(pk.Timeouts), "kind", "timeout")
		w.Family("nodewire_stack_tcp_recoveries_total", promtext.Counter, "How the userspace stack's TCP found its losses, all connections: kind=fast (fast recovery entered), sack (of those, by SACK), tlp (tail loss probes), spurious and spurious_timeout (recoveries and timeouts the timestamps showed needless: a packet was late, not lost).")
		r := pk.Recoveries
		w.Sample(float64(r.Fast), "kind", "fast")
		w.Sample(float64(r.SACK), "kind", "sack")
		w.Sample(float64(r.TLP), "kind", "tlp")
		w.Sample(float64(r.Spurious), "kind", "spurious")
		w.Sample(float64(r.SpuriousRTO), "kind", "spurious_timeout")
	}
	if ud, ok := d.udp.(interface{ ReceiveDrops() uint64 }); ok {
		w.Family("nodewire_udp_receive_drops_total", promtext.Counter, "WireGuard datagrams the kernel dropped at this host's UDP sockets (receive buffer full: overlayd read too slowly), since they were opened.")
		w.Sample(float64(ud.ReceiveDrops()))
	}

	w.Family("nodewire_reloads_total", promtext.Counter, "Reloads of the peer file, by result (ok, or error: rejected, the last good file kept).")
	w.Sample(float64(reloadsOK), "result", "ok")
	w.Sample(float64(reloadsFailed), "result", "error")
	w.Family("nodewire_peer_file_loaded_seconds", promtext.Gauge, "Unix time the running peer file was loaded.")
	w.Sample(float64(loadedAt.Unix()))
	w.Family("nodewire_last_reload_ok", promtext.Gauge, "1 if the last reload succeeded (or none failed since start), 0 if it was rejected.")
	ok := 1.0
	if reloadErr != "" {
		ok = 0
	}
	w.Sample(ok)
	w.Family("nodewire_peerfile_serial", promtext.Gauge, "serial: of the running peer file (0 when it has none).")
	w.Sample(float64(f.Serial))
	if refused := d.refusedCounts(); refused != nil {
		w.Family("nodewire_peerfile_refused_total", promtext.Counter, "Peer files refused by the trust policy (--trust), by reason; the last good file kept.")
		for _, r := range peers.RefusalReasons {
			w.Sample(float64(refused[r]), "reason", string(r))
		}
	}
	writeSourceMetrics(w, d.sourceStatus())
	return w.Flush()
}

// listenMetrics opens the metrics listener of cfg, if any.
func listenMetrics(ctx context.Context, cfg Config) (net.Listener, error) {
	if cfg.MetricsAddr == "" {
		return nil, nil
	}
	if err := checkMetricsAddr(cfg.MetricsAddr, cfg.MetricsPublic); err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.MetricsAddr)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	return ln, nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
