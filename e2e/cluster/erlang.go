package cluster

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/base64"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// driverSrc is compiled with erlc into each run's temp dir: embedding it
// keeps the harness usable from any working directory (the demo, benchmarks).
//
//go:embed erlang/nwdriver.erl
var driverSrc []byte

// DefaultCookie is the cookie of nodes whose NodeOptions leave it empty.
const DefaultCookie = "nodewire-e2e"

// StartEPMD starts epmd in the foreground inside the host with env added
// (ERL_EPMD_ADDRESS, ERL_EPMD_PORT) and returns once `epmd -names` with the
// same env answers. Starting it explicitly, rather than letting erl spawn a
// daemon, keeps it a tracked process with a log that cleanup stops.
func (h *Host) StartEPMD(env []string) (*Process, error) {
	p, err := h.Start("epmd", []string{"epmd"}, env)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var last []byte
	err = Poll(ctx, 20*time.Millisecond, func() (bool, error) {
		if p.Exited() {
			return false, fmt.Errorf("epmd exited: %v", p.waitErr)
		}
		cmd := h.Command(ctx, "epmd", "-names")
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		last = out
		return err == nil, nil
	})
	if err != nil {
		_ = p.Stop()
		return nil, fmt.Errorf("%s: epmd not ready: %v (epmd -names: %s)\n%s", h.Name, err, bytes.TrimSpace(last), p.Tail(20))
	}
	return p, nil
}

// NodeOptions describes an Erlang node for [Host.StartNode].
type NodeOptions struct {
	// Name is the full node name, e.g. app@127.77.1.1; started with -name.
	Name string
	// Cookie is passed with -setcookie; empty means DefaultCookie.
	Cookie string
	// Env is added to the environment (ERL_EPMD_PORT, ERL_INETRC, ...).
	Env []string
	// Args are extra erl arguments, one argv element each, no shell:
	// e.g. "-kernel", "inet_dist_use_interface", "{127,77,1,1}".
	Args []string
	// AutoEPMD lets erl start an epmd daemon itself when none is running.
	// By default nodes get -start_epmd false, so a test that forgot
	// StartEPMD fails clearly instead of running an untracked epmd.
	AutoEPMD bool
	// StartTimeout bounds the wait for the node to answer; default 60 s
	// (generous: a loaded CI machine can take many seconds to boot erl).
	StartTimeout time.Duration
}

// Node is a running Erlang node driven over its stdin and stdout by the
// nwdriver module (e2e/cluster/erlang/nwdriver.erl).
type Node struct {
	Name    string
	Host    *Host
	Process *Process

	stdinMu sync.Mutex
	stdin   io.WriteCloser
	nextID  atomic.Uint64
	mu      sync.Mutex
	pending map[uint64]chan evalResult
}

type evalResult struct {
	ok   bool
	text string
}

// EvalError is the error of an expression that raised in the node.
type EvalError struct {
	Node string
	Expr string
	// Text is "Class:Reason at [Frames]" as printed by the driver.
	Text string
}

func (e *EvalError) Error() string {
	return fmt.Sprintf("%s: %s: %s", e.Node, oneLine(e.Expr, 200), e.Text)
}

// driverDir compiles the driver into the run's temp dir, once per run.
func (c *Cluster) driverDir() (string, error) {
	c.driverM.Lock()
	defer c.driverM.Unlock()
	if c.driver != "" {
		return c.driver, nil
	}
	dir := filepath.Join(c.dir, "ebin")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	src := filepath.Join(dir, "nwdriver.erl")
	if err := os.WriteFile(src, driverSrc, 0o644); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "erlc", "-o", dir, src).CombinedOutput(); err != nil {
		return "", fmt.Errorf("erlc nwdriver.erl: %v: %s", err, out)
	}
	c.driver = dir
	return dir, nil
}

// StartNode starts `erl -noshell -name ...` inside the host and returns once
// the node answers node(). epmd must already run on the host (see
// [Host.StartEPMD]) unless opts.AutoEPMD is set.
func (h *Host) StartNode(opts NodeOptions) (*Node, error) {
	if opts.Name == "" || !strings.Contains(opts.Name, "@") {
		return nil, fmt.Errorf("cluster: StartNode: need a full node name like app@127.77.1.1, got %q", opts.Name)
	}
	if opts.Cookie == "" {
		opts.Cookie = DefaultCookie
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 60 * time.Second
	}
	ebin, err := h.c.driverDir()
	if err != nil {
		return nil, err
	}
	argv := []string{"erl", "-noshell", "-name", opts.Name, "-setcookie", opts.Cookie, "-pa", ebin}
	if !opts.AutoEPMD {
		argv = append(argv, "-start_epmd", "false")
	}
	argv = append(argv, "-s", "nwdriver", "main")
	argv = append(argv, opts.Args...)

	n := &Node{Name: opts.Name, Host: h, pending: map[uint64]chan evalResult{}}
	alive, _, _ := strings.Cut(opts.Name, "@")
	p, err := h.start("node-"+alive, argv, opts.Env, func(cmd *exec.Cmd, log io.Writer) error {
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return err
		}
		n.stdin = stdin
		// Not StdoutPipe: with a plain Writer, Wait returns only after
		// every line has been dispatched, so no result is lost at exit.
		cmd.Stdout = &lineWriter{log: log, line: n.dispatch}
		return nil
	}, n.closeStdin)
	if err != nil {
		return nil, err
	}
	n.Process = p

	ctx, cancel := context.WithTimeout(context.Background(), opts.StartTimeout)
	defer cancel()
	got, err := n.Eval(ctx, "node() =:= "+Atom(opts.Name)+".")
	if err == nil && got != "true" {
		got, _ = n.Eval(ctx, "node().")
		err = fmt.Errorf("node calls itself %s", got)
	}
	if err != nil {
		_ = n.Stop()
		return nil, fmt.Errorf("%s: node %s did not start: %v\n%s", h.Name, opts.Name, err, p.Tail(30))
	}
	return n, nil
}

// lineWriter splits the node's stdout into lines, copies each to the log and
// hands it to line.
type lineWriter struct {
	log  io.Writer
	line func(string)
	buf  []byte
}

func (w *lineWriter) Write(b []byte) (int, error) {
	_, _ = w.log.Write(b)
	w.buf = append(w.buf, b...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.line(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	return len(b), nil
}

var resRE = regexp.MustCompile(`^nwres ([0-9]+) (ok|error) (.*)$`)

func (n *Node) dispatch(line string) {
	m := resRE.FindStringSubmatch(strings.TrimRight(line, "\r"))
	if m == nil {
		return // not ours: logger output and the like, already in the log
	}
	id, err := strconv.ParseUint(m[1], 10, 64)
	if err != nil {
		return
	}
	n.mu.Lock()
	ch := n.pending[id]
	delete(n.pending, id)
	n.mu.Unlock()
	if ch != nil {
		ch <- evalResult{ok: m[2] == "ok", text: m[3]}
	}
}

// Eval evaluates Erlang expressions (a trailing '.' is added if missing) in a
// fresh process on the node and returns the value printed with ~w (atoms
// quoted as needed, strings as lists of integers). An exception comes back
// as an *EvalError; ctx bounds the wait (the evaluation itself goes on in the
// node). Eval is safe for concurrent use, and concurrent evaluations run in
// parallel.
func (n *Node) Eval(ctx context.Context, expr string) (string, error) {
	src := strings.TrimSpace(expr)
	if !strings.HasSuffix(src, ".") {
		src += "."
	}
	id := n.nextID.Add(1)
	ch := make(chan evalResult, 1)
	n.mu.Lock()
	n.pending[id] = ch
	n.mu.Unlock()
	defer func() {
		n.mu.Lock()
		delete(n.pending, id)
		n.mu.Unlock()
	}()

	req := fmt.Sprintf("nweval %d %s\n", id, base64.StdEncoding.EncodeToString([]byte(src)))
	n.stdinMu.Lock()
	_, err := io.WriteString(n.stdin, req)
	n.stdinMu.Unlock()
	if err != nil {
		return "", fmt.Errorf("%s: send %s: %w (%s)", n.Name, oneLine(src, 80), err, n.exitStatus())
	}

	result := func(r evalResult) (string, error) {
		if !r.ok {
			return "", &EvalError{Node: n.Name, Expr: src, Text: r.text}
		}
		return r.text, nil
	}
	select {
	case r := <-ch:
		return result(r)
	case <-n.Process.Done():
		select {
		case r := <-ch: // answered just before exiting
			return result(r)
		default:
		}
		return "", fmt.Errorf("%s: %s: node %s", n.Name, oneLine(src, 80), n.exitStatus())
	case <-ctx.Done():
		return "", fmt.Errorf("%s: %s: no answer: %w", n.Name, oneLine(src, 80), context.Cause(ctx))
	}
}

func (n *Node) exitStatus() string {
	if !n.Process.Exited() {
		return "running"
	}
	return fmt.Sprintf("exited (%v); log %s", n.Process.waitErr, n.Process.LogPath)
}

// Ping runs net_adm:ping(other) on the node: true for pong.
func (n *Node) Ping(ctx context.Context, other string) (bool, error) {
	out, err := n.Eval(ctx, "net_adm:ping("+Atom(other)+").")
	if err != nil {
		return false, err
	}
	switch out {
	case "pong":
		return true, nil
	case "pang":
		return false, nil
	}
	return false, fmt.Errorf("%s: net_adm:ping(%s) = %s", n.Name, other, out)
}

// NodeDowns returns how many nodedown messages the node has seen since it
// started (net_kernel:monitor_nodes, set up before the driver answers its
// first request, so nothing is missed).
func (n *Node) NodeDowns(ctx context.Context) (int, error) {
	out, err := n.Eval(ctx, "nwdriver:nodedowns().")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(out)
}

// Stop closes the node's stdin, on which the driver halts the node at once
// (erlang:halt, like a crash as far as its peers can tell), and waits for it
// to exit; after [StopTimeout] it falls back to SIGTERM and SIGKILL. The
// run's cleanup stops nodes the same way. For a graceful shutdown evaluate
// init:stop(); for an abrupt death use n.Process.Signal(syscall.SIGKILL).
func (n *Node) Stop() error {
	return n.Process.Stop()
}

func (n *Node) closeStdin() {
	n.stdinMu.Lock()
	_ = n.stdin.Close()
	n.stdinMu.Unlock()
}

// Atom returns s as an Erlang atom literal, quoted when needed: Atom("b@10.0.0.2")
// is 'b@10.0.0.2'. It prints atoms the way ~w does, so results can be compared
// with it.
func Atom(s string) string {
	if unquotedAtomRE.MatchString(s) && !reservedWords[s] {
		return s
	}
	var b strings.Builder
	b.WriteByte('\'')
	for _, r := range s {
		switch r {
		case '\'', '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case '\n':
			b.WriteString(`\n`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('\'')
	return b.String()
}

var unquotedAtomRE = regexp.MustCompile(`^[a-z][a-zA-Z0-9_@]*$`)

var reservedWords = map[string]bool{
	"after": true, "and": true, "andalso": true, "band": true, "begin": true, "bnot": true,
	"bor": true, "bsl": true, "bsr": true, "bxor": true, "case": true, "catch": true,
	"cond": true, "div": true, "end": true, "fun": true, "if": true, "let": true, "maybe": true,
	"not": true, "of": true, "or": true, "orelse": true, "receive": true, "rem": true,
	"try": true, "when": true, "xor": true,
}

func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		s = s[:max] + "..."
	}
	return s
}
