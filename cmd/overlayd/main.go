// Command overlayd joins this host to a nodewire overlay: one UDP port, a
// userspace WireGuard device and stack, and faces on loopback through which
// unmodified epmd and Erlang nodes reach the other hosts.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"gopkg.in/yaml.v3"

	"github.com/nodewire/nodewire/netstack"
	"github.com/nodewire/nodewire/overlay"
	"github.com/nodewire/nodewire/overlay/control"
	"github.com/nodewire/nodewire/overlay/etcdsource"
	"github.com/nodewire/nodewire/overlay/tcpbind"
)

const usage = `usage: overlayd --peers FILE --self NAME --private-key FILE [flags]
       overlayd --config FILE [flags]

Joins this host to the overlay described by the peer file. Runs in the
foreground; SIGINT/SIGTERM stop it, SIGHUP reloads the peer file.

Flags (the same names are the fields of the --config YAML file; flags win):
`

// fileConfig is the --config file: the flags' names as YAML fields.
type fileConfig struct {
	Peers      string `yaml:"peers"`
	Self       string `yaml:"self"`
	PrivateKey string `yaml:"private-key"`
	ListenPort uint16 `yaml:"listen-port"`
	Control    string `yaml:"control"`
	Interface  string `yaml:"interface"`
	MTU        int    `yaml:"mtu"`
	// TCPCongestion is the userspace stack's congestion control.
	TCPCongestion string `yaml:"tcp-congestion"`
	LogLevel      string `yaml:"log-level"`
	Mode          string `yaml:"mode"`
	Inetrc        string `yaml:"inetrc"`
	Domain        string `yaml:"inetrc-domain"`
	Metrics       string `yaml:"metrics"`
	// MetricsPublic allows a non-loopback metrics address.
	MetricsPublic bool   `yaml:"metrics-public"`
	Procs         int    `yaml:"procs"`
	TCPListen     string `yaml:"tcp-listen"`
	Proxy         string `yaml:"proxy"`
	Trust         string `yaml:"trust"`
	TrustState    string `yaml:"trust-state"`
	StateDir      string `yaml:"state-dir"`
	EtcdCA        string `yaml:"etcd-ca"`
	EtcdCert      string `yaml:"etcd-cert"`
	EtcdKey       string `yaml:"etcd-key"`
	// ErlangHosts is a .hosts.erlang kept current for net_adm:world().
	ErlangHosts string `yaml:"erlang-hosts"`
}

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

func run(args []string, stderr io.Writer) int {
	fs := flag.NewFlagSet("overlayd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c fileConfig
	configPath := fs.String("config", "", "YAML file with any of the fields below")
	fs.StringVar(&c.Peers, "peers", "", "the peer file (the same on every host), or etcd://HOST:PORT[,HOST:PORT]/KEY to follow the signed file published there (etcds:// for TLS), reached over the underlay")
	fs.StringVar(&c.Self, "self", "", "this host's peer name in the peer file")
	fs.StringVar(&c.PrivateKey, "private-key", "", "file with this host's private key (base64, mode 0600)")
	listenPort := fs.Uint("listen-port", 0, "UDP port (default: the port of this host's endpoint, else overlay.port)")
	fs.StringVar(&c.Control, "control", "", "control socket (default "+control.DefaultPath()+")")
	fs.StringVar(&c.Interface, "interface", "", "name for `wg show`, and of the kernel interface in TUN mode (default nw-SELF)")
	fs.StringVar(&c.TCPCongestion, "tcp-congestion", "", "userspace mode's TCP congestion control: "+strings.Join(netstack.CongestionControls(), " or ")+"; default "+netstack.DefaultCongestionControl+" (loss that no queue explains does not shrink the window); reno behind a bottleneck whose queue is shallow (see the README's Networks: loss)")
	fs.IntVar(&c.MTU, "mtu", 0, "inner MTU the paths to all peers carry (576..65535); default: 1420 on the device, and each peer's TCP held to the route to its endpoint and to 1400-byte datagrams (see the README's Networks: MTU)")
	fs.StringVar(&c.LogLevel, "log-level", "", "debug, info, warn or error (default info)")
	fs.StringVar(&c.Mode, "mode", "", "userspace (faces on loopback, no root) or tun (a kernel interface named by --interface; root); default: the peer's mode in the peer file")
	fs.StringVar(&c.Inetrc, "inetrc", "", "keep an Erlang inetrc (ERL_INETRC) here, naming every peer PEER.DOMAIN")
	fs.StringVar(&c.Domain, "inetrc-domain", "", "domain of the names in --inetrc (default nodewire)")
	fs.StringVar(&c.ErlangHosts, "erlang-hosts", "", "keep a .hosts.erlang here for net_adm:world(): the hosts whose epmd this host may reach (named PEER.DOMAIN with --inetrc, else by address)")
	fs.StringVar(&c.Metrics, "metrics", "", "serve Prometheus metrics on HOST:PORT (/metrics); loopback only unless --metrics-public")
	fs.BoolVar(&c.MetricsPublic, "metrics-public", false, "allow --metrics on a non-loopback address (metrics map the whole overlay)")
	fs.IntVar(&c.Procs, "procs", 0, "OS threads running Go code at once (GOMAXPROCS); default 1, or $GOMAXPROCS if set. See the README's Benchmarks")
	fs.StringVar(&c.TCPListen, "tcp-listen", "", "also take WireGuard over TLS/TCP on HOST:PORT (e.g. :443), for peers whose UDP is blocked")
	fs.StringVar(&c.Proxy, "proxy", "", "dial peers' tcp_endpoints through this HTTP proxy (http://[user:pass@]host:port, CONNECT); default $HTTPS_PROXY unless $NO_PROXY matches")
	fs.StringVar(&c.Trust, "trust", "", "apply only peer files signed (PEERFILE.sig, ssh-keygen -Y sign -n nodewire) by a key in this `FILE` (authorized_keys or allowed_signers lines), never an older serial nor an expired file")
	fs.StringVar(&c.TrustState, "trust-state", "", "with --trust, keep the serial of the last applied peer file in this `FILE` (writable, e.g. under systemd's StateDirectory), so that a restart still refuses an older one")
	fs.StringVar(&c.StateDir, "state-dir", "/var/lib/nodewire", "with --peers etcd://..., keep the last good peer file (and the trust state) here, so a restart with etcd down starts from it")
	fs.StringVar(&c.EtcdCA, "etcd-ca", "", "with --peers etcds://..., PEM file of etcd's CA (default: the system's roots)")
	fs.StringVar(&c.EtcdCert, "etcd-cert", "", "with --peers etcds://..., PEM client certificate for etcd")
	fs.StringVar(&c.EtcdKey, "etcd-key", "", "PEM key of --etcd-cert")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile (pprof) of the whole run to `FILE` at exit; off by default")
	memProfile := fs.String("memprofile", "", "write a heap profile (pprof) to `FILE` at exit; off by default")
	traceFile := fs.String("trace", "", "write a Go execution trace (go tool trace) of the whole run to `FILE`; off by default")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stdout)
			fs.Usage()
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "overlayd: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	if *listenPort > 65535 {
		fmt.Fprintf(stderr, "overlayd: --listen-port %d is not a port\n", *listenPort)
		return 2
	}
	c.ListenPort = uint16(*listenPort)
	if *configPath != "" {
		if err := mergeConfigFile(&c, *configPath, fs); err != nil {
			fmt.Fprintf(stderr, "overlayd: %v\n", err)
			return 2
		}
	}
	var missing []string
	for flagName, v := range map[string]string{"--peers": c.Peers, "--self": c.Self, "--private-key": c.PrivateKey} {
		if v == "" {
			missing = append(missing, flagName)
		}
	}
	if len(missing) > 0 {
		fmt.Fprintf(stderr, "overlayd: missing %s (see overlayd -h)\n", strings.Join(missing, ", "))
		return 2
	}
	if err := netstack.CheckCongestionControl(c.TCPCongestion); err != nil {
		fmt.Fprintf(stderr, "overlayd: --tcp-congestion %v\n", err)
		return 2
	}
	if c.MTU != 0 && (c.MTU < 576 || c.MTU > 65535) {
		fmt.Fprintf(stderr, "overlayd: --mtu %d: want 576..65535\n", c.MTU)
		return 2
	}
	level := slog.LevelInfo
	if c.LogLevel != "" {
		if err := level.UnmarshalText([]byte(c.LogLevel)); err != nil {
			fmt.Fprintf(stderr, "overlayd: --log-level %q: want debug, info, warn or error\n", c.LogLevel)
			return 2
		}
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if c.Procs < 0 {
		fmt.Fprintf(stderr, "overlayd: --procs %d: want 1 or more\n", c.Procs)
		return 2
	}
	stopProfiles, err := startProfiles(*cpuProfile, *memProfile, *traceFile)
	if err != nil {
		fmt.Fprintf(stderr, "overlayd: %v\n", err)
		return 2
	}
	defer func() {
		if err := stopProfiles(); err != nil {
			log.Error("profile", slog.Any("err", err))
		}
	}()

	dial, err := tcpbind.ProxyDialer(c.Proxy)
	if err != nil {
		fmt.Fprintf(stderr, "overlayd: --proxy: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	peerFile := c.Peers
	var etcd *etcdMode
	var fromEtcd []byte
	if etcdsource.IsURL(c.Peers) {
		tls := etcdsource.TLSFiles{CA: c.EtcdCA, Cert: c.EtcdCert, Key: c.EtcdKey}
		if etcd, err = newEtcdMode(c.Peers, c.StateDir, tls, log); err == nil {
			fromEtcd, err = etcd.prepare(ctx)
		}
		if err != nil {
			fmt.Fprintf(stderr, "overlayd: %v\n", err)
			return 1
		}
		peerFile = etcd.peerFile
		if c.Trust != "" && c.TrustState == "" {
			c.TrustState = filepath.Join(c.StateDir, "trust-state")
		}
	}
	cfg := overlay.Config{
		PeerFile: peerFile, Self: c.Self, PrivateKeyFile: c.PrivateKey, ListenPort: c.ListenPort,
		ControlPath: c.Control, Interface: c.Interface, MTU: c.MTU, TCPCongestion: c.TCPCongestion, Logger: log,
		Mode: c.Mode, Inetrc: c.Inetrc, InetrcDomain: c.Domain, ErlangHosts: c.ErlangHosts,
		MetricsAddr: c.Metrics, MetricsPublic: c.MetricsPublic,
		TCPListen: c.TCPListen, TCPDial: dial,
		Trust: c.Trust, TrustState: c.TrustState,
	}
	// The first apply is mostly allocation (parsing the file, a face and
	// a path per peer), and most of it garbage: collected every 4x
	// growth of the heap instead of every 2x it costs fewer collections,
	// and New hands the garbage back once up (10,000 peers of which 200
	// reachable: 140 -> 131 ms of CPU, VmRSS 58 -> 32 MiB; all reachable:
	// 625 -> 481 ms, 83 -> 63 MiB).
	gcPercent := debug.SetGCPercent(startGCPercent)
	d, err := overlay.New(ctx, cfg)
	debug.SetGCPercent(gcPercent)
	if err != nil && etcd != nil && fromEtcd == nil {
		// The cache was refused (damaged, or older than the trust state
		// after a crash between the two writes): etcd's value, if etcd
		// answers now, is the way back.
		log.Error("the cached peer file was refused; trying etcd's", slog.Any("err", err))
		if fromEtcd, err = etcd.fetch(ctx); err == nil {
			d, err = overlay.New(ctx, cfg)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "overlayd: %v\n", err)
		return 1
	}
	// The first apply ran on every CPU: a big peer file is mostly
	// allocation, whose GC the other CPUs take (10,000 peers: 1.6 s
	// instead of 2.2 s on 2 vCPUs). Traffic runs on procs threads.
	runtime.GOMAXPROCS(procs(c.Procs, os.Getenv("GOMAXPROCS")))
	var watchers sync.WaitGroup
	wctx, wcancel := context.WithCancel(ctx)
	defer watchers.Wait()
	defer wcancel() // first: Run may return with ctx still live
	if etcd != nil {
		etcd.run(wctx, &watchers, d, fromEtcd)
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-hup:
				log.Info("SIGHUP: reloading the peer file")
				_ = d.Reload(ctx) // Reload logs its own verdict
			case <-ctx.Done():
				return
			}
		}
	}()
	if err := d.Run(ctx); err != nil {
		log.Error("stopped", slog.Any("err", err))
		return 1
	}
	log.Info("stopped")
	return 0
}

// mergeConfigFile fills c from a YAML file, leaving alone every field whose
// flag was given on the command line.
func mergeConfigFile(c *fileConfig, path string, fs *flag.FlagSet) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--config: %w", err)
	}
	var fc fileConfig
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&fc); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s: %v", path, err)
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	fill := func(name string, dst *string, v string) {
		if !set[name] && v != "" {
			*dst = v
		}
	}
	fill("peers", &c.Peers, fc.Peers)
	fill("self", &c.Self, fc.Self)
	fill("private-key", &c.PrivateKey, fc.PrivateKey)
	fill("control", &c.Control, fc.Control)
	fill("interface", &c.Interface, fc.Interface)
	fill("log-level", &c.LogLevel, fc.LogLevel)
	fill("mode", &c.Mode, fc.Mode)
	fill("tcp-congestion", &c.TCPCongestion, fc.TCPCongestion)
	fill("inetrc", &c.Inetrc, fc.Inetrc)
	fill("inetrc-domain", &c.Domain, fc.Domain)
	fill("erlang-hosts", &c.ErlangHosts, fc.ErlangHosts)
	fill("metrics", &c.Metrics, fc.Metrics)
	fill("tcp-listen", &c.TCPListen, fc.TCPListen)
	fill("proxy", &c.Proxy, fc.Proxy)
	fill("trust", &c.Trust, fc.Trust)
	fill("trust-state", &c.TrustState, fc.TrustState)
	fill("state-dir", &c.StateDir, fc.StateDir)
	fill("etcd-ca", &c.EtcdCA, fc.EtcdCA)
	fill("etcd-cert", &c.EtcdCert, fc.EtcdCert)
	fill("etcd-key", &c.EtcdKey, fc.EtcdKey)
	if !set["metrics-public"] && fc.MetricsPublic {
		c.MetricsPublic = true
	}
	if !set["listen-port"] && fc.ListenPort != 0 {
		c.ListenPort = fc.ListenPort
	}
	if !set["mtu"] && fc.MTU != 0 {
		c.MTU = fc.MTU
	}
	if !set["procs"] && fc.Procs != 0 {
		c.Procs = fc.Procs
	}
	return nil
}

// startGCPercent is the GC percentage (GOGC) while overlay.New applies
// the first peer file; the one in force before comes back after it.
const startGCPercent = 400

// procs is how many threads run Go code at once: flag (or config file)
// first, then $GOMAXPROCS, else 1. One is the default because every packet
// crosses a chain of goroutines (gVisor's TCP, wireguard-go's encryption
// and sequential queues, the copy loops); on one thread each hand-off is a
// goroutine switch, while with more, each wakes another thread (a futex, an
// IPI on a VM). Measured by make bench on 2 vCPUs: round trips about 35-50%
// shorter and bulk no lower. Hosts moving more than one core can encrypt
// raise it.
func procs(flagValue int, env string) int {
	if flagValue > 0 {
		return flagValue
	}
	if n, err := strconv.Atoi(env); err == nil && n > 0 {
		return n
	}
	return 1
}
