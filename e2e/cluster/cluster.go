// Package cluster is the end-to-end test harness of nodewire: it builds a
// small network of Linux network namespaces ("hosts") joined by a bridge,
// runs real processes (epmd, erl, overlayd) inside them and tears all of it
// down again.
//
// The e2e tests, the demo and the benchmarks share it so that all of them
// exercise the same unmodified Erlang runtime over the same kind of network.
//
// Layout of one run (ID "nwt-<pid>-<rand>-<label>"):
//
//	<ID>-switch   namespace holding bridge br0 and the switch ends p1, p2, ...
//	<ID>-<host>   one namespace per host: lo up, eth0 (veth to the switch) with
//	              an underlay address 192.168.77.N/24
//
// Nothing is created in the root namespace, so runs never touch the host's
// network and parallel runs never collide (each has its own bridge and may
// reuse the same underlay addresses). The owner's PID in the name lets
// [SweepStale] and e2e/cleanup.sh tell leftovers of crashed runs from live
// runs of colleagues.
//
// Everything a run creates is registered for cleanup through [TB.Cleanup],
// so it goes away on failure, t.Fatal and panics. A test binary killed by
// go test -timeout runs no cleanups: its processes still die (they get
// SIGKILL when the harness dies, via PR_SET_PDEATHSIG) but its namespaces
// stay until `e2e/cleanup.sh` or [SweepStale] removes them.
//
// Setting NODEWIRE_E2E=0 skips e2e tests; any other missing precondition
// (not root, no ip, no erl) fails them, so a skipped test never passes
// unnoticed.
package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Prefix starts the name of every namespace the harness creates. Sweeps
// refuse to touch anything else.
const Prefix = "nwt-"

// Underlay is the subnet of the bridge that joins the hosts. Each run has its
// own bridge, so every run can use the same subnet.
var Underlay = netip.MustParsePrefix("192.168.77.0/24")

// TB is the part of testing.TB the harness needs. It is an interface so the
// demo and benchmarks can use the harness outside a test; see [Standalone].
type TB interface {
	Helper()
	Cleanup(func())
	Logf(format string, args ...any)
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
	Failed() bool
}

// Cluster is one run: a switch namespace with a bridge, and hosts on it.
type Cluster struct {
	t        TB
	id       string // namespace name prefix of this run, e.g. nwt-1234-a1b2c3-self
	dir      string // per-run temp dir: logs, compiled driver, ...
	switchNS string // switch namespace

	mu      sync.Mutex
	hosts   []*Host
	procs   []*Process // every process started, in start order
	closed  bool
	driverM sync.Mutex
	driver  string // dir holding nwdriver.beam, once compiled
}

var labelRE = regexp.MustCompile(`[^a-z0-9]+`)

// New creates a run: its temp dir, the switch namespace and the bridge.
// label names the run for humans (sanitised to [a-z0-9], at most 16 chars);
// uniqueness comes from the PID and a random part. New skips the test when
// NODEWIRE_E2E=0 and fails it when a precondition is missing.
func New(t TB, label string) *Cluster {
	t.Helper()
	Require(t)
	label = labelRE.ReplaceAllString(strings.ToLower(strings.TrimPrefix(label, Prefix)), "")
	if len(label) > 16 {
		label = label[:16]
	}
	if label == "" {
		label = "run"
	}
	var rnd [3]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		t.Fatalf("cluster: random: %v", err)
	}
	id := fmt.Sprintf("%s%d-%s-%s", Prefix, os.Getpid(), hex.EncodeToString(rnd[:]), label)
	dir, err := os.MkdirTemp("", id+"-")
	if err != nil {
		t.Fatalf("cluster: temp dir: %v", err)
	}
	c := &Cluster{t: t, id: id, dir: dir, switchNS: id + "-switch"}
	t.Cleanup(c.cleanup)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.ip(ctx, "netns", "add", c.switchNS); err != nil {
		t.Fatalf("cluster: %v", err)
	}
	for _, args := range [][]string{
		{"-n", c.switchNS, "link", "set", "lo", "up"},
		// STP off (the default) and forward delay 0: ports forward at once.
		{"-n", c.switchNS, "link", "add", "br0", "type", "bridge", "forward_delay", "0", "stp_state", "0"},
		{"-n", c.switchNS, "link", "set", "br0", "up"},
	} {
		if err := c.ip(ctx, args...); err != nil {
			t.Fatalf("cluster: %v", err)
		}
	}
	return c
}

// ID is the run's name prefix; every namespace of the run starts with it.
func (c *Cluster) ID() string { return c.id }

// Dir is the run's temp dir. It is kept (and its path logged) when the test
// fails, or always with NODEWIRE_E2E_KEEP=1.
func (c *Cluster) Dir() string { return c.dir }

// SwitchNS is the namespace holding the bridge, for tests that want to
// shape or cut traffic on the switch side.
func (c *Cluster) SwitchNS() string { return c.switchNS }

// Hosts returns the hosts in creation order.
func (c *Cluster) Hosts() []*Host {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.hosts)
}

var hostRE = regexp.MustCompile(`^[a-z0-9]{1,12}$`)

// AddHost creates namespace <ID>-<name> with lo up and eth0, a veth whose
// other end (pN) sits on the bridge, addressed from [Underlay] in creation
// order (.1, .2, ...). name must be 1-12 chars of [a-z0-9] and unique in the
// run; "switch" is reserved. AddHost returns once eth0 has carrier.
func (c *Cluster) AddHost(name string) *Host {
	c.t.Helper()
	if !hostRE.MatchString(name) || name == "switch" {
		c.t.Fatalf("cluster: bad host name %q (want [a-z0-9]{1,12}, not \"switch\")", name)
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		c.t.Fatalf("cluster: AddHost after cleanup")
	}
	for _, h := range c.hosts {
		if h.Name == name {
			c.mu.Unlock()
			c.t.Fatalf("cluster: duplicate host %q", name)
		}
	}
	n := len(c.hosts) + 1
	addr := Underlay.Addr()
	for range n {
		addr = addr.Next()
	}
	if !Underlay.Contains(addr.Next()) { // keep the broadcast address free
		c.mu.Unlock()
		c.t.Fatalf("cluster: underlay %v is full", Underlay)
	}
	h := &Host{
		c:          c,
		Name:       name,
		NS:         c.id + "-" + name,
		Veth:       "eth0",
		SwitchPort: "p" + strconv.Itoa(n),
		Addr:       addr,
		Prefix:     netip.PrefixFrom(addr, Underlay.Bits()),
	}
	// Registered before it exists so a half-made host is still cleaned up.
	c.hosts = append(c.hosts, h)
	c.mu.Unlock()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.ip(ctx, "netns", "add", h.NS); err != nil {
		c.t.Fatalf("cluster: %v", err)
	}
	for _, args := range [][]string{
		{"-n", h.NS, "link", "set", "lo", "up"},
		// Created from the switch namespace with the peer placed straight
		// into the host: no name ever appears in the root namespace.
		{"-n", c.switchNS, "link", "add", h.SwitchPort, "type", "veth", "peer", "name", h.Veth, "netns", h.NS},
		{"-n", c.switchNS, "link", "set", h.SwitchPort, "master", "br0"},
		{"-n", c.switchNS, "link", "set", h.SwitchPort, "up"},
		{"-n", h.NS, "addr", "add", h.Prefix.String(), "dev", h.Veth},
		{"-n", h.NS, "link", "set", h.Veth, "up"},
	} {
		if err := c.ip(ctx, args...); err != nil {
			c.t.Fatalf("cluster: host %s: %v", name, err)
		}
	}
	err := Poll(ctx, 10*time.Millisecond, func() (bool, error) {
		out, err := exec.CommandContext(ctx, "ip", "-n", h.NS, "-o", "link", "show", h.Veth).CombinedOutput()
		if err != nil {
			return false, fmt.Errorf("ip link show: %v: %s", err, out)
		}
		return bytes.Contains(out, []byte("LOWER_UP")), nil
	})
	if err != nil {
		c.t.Fatalf("cluster: host %s: waiting for carrier on %s: %v", name, h.Veth, err)
	}
	return h
}

// ip runs ip(8) in the root namespace context (use -n for others).
func (c *Cluster) ip(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// cleanup stops every process (all at once: each may take StopTimeout),
// deletes every namespace of the run and removes the temp dir unless
// the test failed. It is idempotent.
func (c *Cluster) cleanup() {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	procs := slices.Clone(c.procs)
	hosts := slices.Clone(c.hosts)
	c.mu.Unlock()

	var wg sync.WaitGroup
	for _, p := range slices.Backward(procs) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = p.Stop()
		}()
	}
	wg.Wait()

	var errs []error
	for _, h := range hosts {
		errs = append(errs, removeNS(h.NS))
	}
	errs = append(errs, removeNS(c.switchNS))
	if err := errors.Join(errs...); err != nil {
		c.t.Logf("cluster: cleanup: %v", err)
		if f, ok := c.t.(interface{ Errorf(string, ...any) }); ok {
			f.Errorf("cluster: cleanup left things behind: %v", err)
		}
	}

	if c.t.Failed() || panicking() || os.Getenv("NODEWIRE_E2E_KEEP") == "1" {
		// Straight to stderr as well: Logf output of a cleanup that runs
		// while the test panics may never be shown.
		name := ""
		if n, ok := c.t.(interface{ Name() string }); ok {
			name = n.Name() + ": "
		}
		fmt.Fprintf(os.Stderr, "%scluster: run %s: logs kept in %s\n", name, c.id, c.dir)
		for _, p := range procs {
			c.t.Logf("cluster: --- %s (%s), last lines:\n%s", p.Name, p.LogPath, p.Tail(30))
		}
		return
	}
	_ = os.RemoveAll(c.dir)
}

// panicking reports whether the calling goroutine is unwinding a panic.
// The testing package runs cleanups of a panicking test before it marks the
// test failed, so Failed alone would make cleanup delete the logs of exactly
// the runs that need them. Deferred calls run on top of the panicking frame,
// so the panic shows in the stack.
func panicking() bool {
	return bytes.Contains(debug.Stack(), []byte("\npanic("))
}

// removeNS kills every process in namespace ns, waits for them to go and
// deletes the namespace. A namespace that does not exist is not an error.
func removeNS(ns string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if !nsExists(ns) {
		return nil
	}
	err := Poll(ctx, 20*time.Millisecond, func() (bool, error) {
		pids, err := nsPIDs(ctx, ns)
		if err != nil {
			return false, err
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		return len(pids) == 0, nil
	})
	if err != nil {
		err = fmt.Errorf("namespace %s: processes left: %w", ns, err)
	}
	if out, derr := exec.CommandContext(ctx, "ip", "netns", "del", ns).CombinedOutput(); derr != nil && nsExists(ns) {
		return errors.Join(err, fmt.Errorf("ip netns del %s: %v: %s", ns, derr, bytes.TrimSpace(out)))
	}
	return err
}

func nsExists(ns string) bool {
	_, err := os.Stat("/run/netns/" + ns)
	return err == nil
}

func nsPIDs(ctx context.Context, ns string) ([]int, error) {
	out, err := exec.CommandContext(ctx, "ip", "netns", "pids", ns).Output()
	if err != nil {
		if !nsExists(ns) {
			return nil, nil
		}
		return nil, fmt.Errorf("ip netns pids %s: %v", ns, err)
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid != os.Getpid() {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// Namespaces lists the network namespaces whose names start with prefix.
func Namespaces(prefix string) ([]string, error) {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return nil, fmt.Errorf("ip netns list: %v", err)
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && strings.HasPrefix(f[0], prefix) {
			names = append(names, f[0])
		}
	}
	return names, nil
}

// Sweep removes every namespace whose name starts with prefix, killing the
// processes inside first, whoever owns them. prefix must start with [Prefix]
// so a sweep can never touch other namespaces. Beware: it also removes live
// runs of parallel test binaries; [SweepStale] does not.
func Sweep(prefix string) error {
	if !strings.HasPrefix(prefix, Prefix) {
		return fmt.Errorf("cluster: refusing to sweep prefix %q (must start with %q)", prefix, Prefix)
	}
	names, err := Namespaces(prefix)
	if err != nil {
		return err
	}
	var errs []error
	for _, ns := range names {
		errs = append(errs, removeNS(ns))
	}
	return errors.Join(errs...)
}

// SweepStale removes the namespaces of runs whose owning process (the PID in
// the run ID) is gone: leftovers of test binaries killed by -timeout or a
// signal. Live runs are left alone.
func SweepStale() error {
	names, err := Namespaces(Prefix)
	if err != nil {
		return err
	}
	var errs []error
	for _, ns := range names {
		if ownerAlive(ns) {
			continue
		}
		errs = append(errs, removeNS(ns))
	}
	return errors.Join(errs...)
}

// ownerAlive reports whether the PID encoded in a run's namespace name is a
// running process. Names it cannot parse count as alive: never sweep what we
// do not understand.
func ownerAlive(ns string) bool {
	rest := strings.TrimPrefix(ns, Prefix)
	pidStr, _, ok := strings.Cut(rest, "-")
	if !ok {
		return true
	}
	pid, err := strconv.Atoi(pidStr)
	if err != nil || pid <= 0 {
		return true
	}
	err = syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// Require checks the preconditions of e2e tests: it skips the test when
// NODEWIRE_E2E=0 and fails it, saying what is missing, when not root or a
// required tool is not installed.
func Require(t TB) {
	t.Helper()
	if os.Getenv("NODEWIRE_E2E") == "0" {
		t.Skipf("e2e disabled by NODEWIRE_E2E=0")
	}
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (network namespaces need CAP_SYS_ADMIN and CAP_NET_ADMIN)")
	}
	for _, tool := range []string{"ip", "erl", "erlc", "epmd"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool+" in PATH")
		}
	}
	if len(missing) > 0 {
		t.Fatalf("e2e preconditions missing: %s (set NODEWIRE_E2E=0 to skip e2e tests)", strings.Join(missing, ", "))
	}
}

// Poll calls cond every interval until it returns true, returns an error, or
// ctx ends. It is the harness's only way of waiting: no fixed sleeps.
func Poll(ctx context.Context, interval time.Duration, cond func() (bool, error)) error {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("condition not met: %w", context.Cause(ctx))
		case <-tick.C:
		}
	}
}

// Standalone implements [TB] for programs that are not tests (the demo,
// benchmark drivers): cleanups run on Close, on Fatalf, and on SIGINT or
// SIGTERM, so a demo interrupted with ^C leaves nothing behind.
type Standalone struct {
	logf     func(format string, args ...any)
	mu       sync.Mutex
	cleanups []func()
	failed   bool
	sigs     chan os.Signal
	once     sync.Once
}

// NewStandalone returns a Standalone that logs through logf (log.Printf, say).
func NewStandalone(logf func(format string, args ...any)) *Standalone {
	s := &Standalone{logf: logf, sigs: make(chan os.Signal, 1)}
	signal.Notify(s.sigs, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		sig, ok := <-s.sigs
		if !ok {
			return
		}
		s.logf("cluster: %v: cleaning up", sig)
		s.Close()
		os.Exit(130)
	}()
	return s
}

func (s *Standalone) Helper() {}

func (s *Standalone) Cleanup(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cleanups = append(s.cleanups, f)
}

func (s *Standalone) Logf(format string, args ...any) { s.logf(format, args...) }

// Errorf marks the run failed, so Close keeps the logs.
func (s *Standalone) Errorf(format string, args ...any) {
	s.mu.Lock()
	s.failed = true
	s.mu.Unlock()
	s.logf(format, args...)
}

// Fatalf logs, runs the cleanups and exits with status 1.
func (s *Standalone) Fatalf(format string, args ...any) {
	s.Errorf(format, args...)
	s.Close()
	os.Exit(1)
}

// Skipf logs, runs the cleanups and exits with status 0.
func (s *Standalone) Skipf(format string, args ...any) {
	s.logf(format, args...)
	s.Close()
	os.Exit(0)
}

func (s *Standalone) Failed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failed
}

// Close runs the registered cleanups, newest first, once.
func (s *Standalone) Close() {
	s.once.Do(func() {
		signal.Stop(s.sigs)
		close(s.sigs)
		s.mu.Lock()
		fs := s.cleanups
		s.cleanups = nil
		s.mu.Unlock()
		for _, f := range slices.Backward(fs) {
			f()
		}
	})
}
