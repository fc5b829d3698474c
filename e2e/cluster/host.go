package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"
)

// StopTimeout is how long [Process.Stop] waits after SIGTERM before it
// sends SIGKILL.
var StopTimeout = 5 * time.Second

// Host is one network namespace on the run's bridge.
type Host struct {
	c *Cluster

	Name       string       // short name given to AddHost
	NS         string       // namespace name, <run ID>-<Name>
	Veth       string       // host end of the veth, inside NS (for tc netem, captures)
	SwitchPort string       // bridge end of the veth, inside the switch namespace
	Addr       netip.Addr   // underlay address on Veth
	Prefix     netip.Prefix // Addr with the underlay mask
}

// Cluster returns the run the host belongs to.
func (h *Host) Cluster() *Cluster { return h.c }

// Command returns a command that runs argv inside the host's namespace
// (through `ip netns exec`, which execs argv, so the command's PID is
// argv's PID). Like exec.CommandContext, ctx kills it.
func (h *Host) Command(ctx context.Context, argv ...string) *exec.Cmd {
	args := append([]string{"netns", "exec", h.NS}, argv...)
	cmd := exec.CommandContext(ctx, "ip", args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

// Exec runs argv inside the host and returns its combined output. The error,
// if any, includes the command and its output.
func (h *Host) Exec(ctx context.Context, argv ...string) ([]byte, error) {
	if len(argv) == 0 {
		return nil, errors.New("cluster: Exec: empty argv")
	}
	out, err := h.Command(ctx, argv...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s: %s: %v: %s", h.Name, strings.Join(argv, " "), err, bytes.TrimSpace(out))
	}
	return out, nil
}

// PIDs lists the processes running in the host's network namespace, so
// tests can check that nothing stray (an auto-started epmd, say) is left.
// The PID namespace is shared, so pgrep and the like would see every host's
// processes.
func (h *Host) PIDs(ctx context.Context) ([]int, error) {
	return nsPIDs(ctx, h.NS)
}

// Process is a long-running process started on a host by [Host.Start].
// Its stdout and stderr go to LogPath.
type Process struct {
	Name    string // host/name, for messages
	LogPath string

	cmd     *exec.Cmd
	done    chan struct{} // closed when the process has been reaped
	waitErr error
	log     *os.File
	stopMu  sync.Mutex
	// onStop, if set, asks the process to exit in its own way before Stop
	// resorts to signals (a node's driver halts when its stdin closes,
	// much faster than erl's SIGTERM shutdown).
	onStop func()
}

var logNameRE = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// Start starts argv as a long-running process inside the host, with env
// (KEY=VALUE) added to the harness's environment. Its stdout and stderr are
// appended to <run dir>/<host>-<name>.log. The process is stopped by the
// run's cleanup if nobody stops it before, and killed if the harness dies.
func (h *Host) Start(name string, argv []string, env []string) (*Process, error) {
	return h.start(name, argv, env, nil, nil)
}

// start is Start with optional hooks: prep may attach pipes to cmd before it
// starts (the Erlang driver uses stdin and stdout), onStop becomes
// Process.onStop.
func (h *Host) start(name string, argv []string, env []string, prep func(*exec.Cmd, io.Writer) error, onStop func()) (*Process, error) {
	if len(argv) == 0 {
		return nil, errors.New("cluster: Start: empty argv")
	}
	c := h.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errors.New("cluster: Start after cleanup")
	}
	name = logNameRE.ReplaceAllString(name, "_")
	logPath := filepath.Join(c.dir, h.Name+"-"+name+".log")
	for i := 2; ; i++ {
		if _, err := os.Stat(logPath); errors.Is(err, os.ErrNotExist) {
			break
		}
		logPath = filepath.Join(c.dir, fmt.Sprintf("%s-%s.%d.log", h.Name, name, i))
	}
	// O_APPEND: the child writes stderr here directly while the harness may
	// copy its stdout here too; appends never overwrite each other.
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "# %s: ip netns exec %s %s\n# env: %s\n", time.Now().Format(time.RFC3339Nano), h.NS, strings.Join(argv, " "), strings.Join(env, " "))

	args := append([]string{"netns", "exec", h.NS}, argv...)
	cmd := exec.Command("ip", args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout = log
	cmd.Stderr = log
	// Own process group: Stop signals children too (erl's helpers).
	// Pdeathsig: if the test binary dies without cleanup, so does this.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// If a grandchild keeps a piped stdout open after the process exits,
	// do not let Wait hang on it.
	cmd.WaitDelay = 2 * time.Second
	if prep != nil {
		if err := prep(cmd, log); err != nil {
			log.Close()
			return nil, err
		}
	}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("%s: start %s: %w", h.Name, name, err)
	}
	p := &Process{Name: h.Name + "/" + name, LogPath: logPath, cmd: cmd, done: make(chan struct{}), log: log, onStop: onStop}
	go func() {
		p.waitErr = cmd.Wait()
		fmt.Fprintf(log, "# %s: exited: %v\n", time.Now().Format(time.RFC3339Nano), p.waitErr)
		// Kill whatever is left in the group (the leader is gone).
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		log.Close()
		close(p.done)
	}()
	c.procs = append(c.procs, p)
	return p, nil
}

// Pid is the process's PID (argv's, since ip netns exec execs it).
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Wait waits until the process exits or ctx ends and returns its exit error.
func (p *Process) Wait(ctx context.Context) error {
	select {
	case <-p.done:
		return p.waitErr
	case <-ctx.Done():
		return fmt.Errorf("%s: still running: %w", p.Name, context.Cause(ctx))
	}
}

// Signal sends sig to the process group.
func (p *Process) Signal(sig syscall.Signal) error {
	if p.Exited() {
		return nil
	}
	err := syscall.Kill(-p.cmd.Process.Pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return nil
	}
	return err
}

// Stop sends SIGTERM to the process group, waits up to [StopTimeout], then
// sends SIGKILL, and waits for the exit. (Nodes are first asked to halt
// through their driver.) It returns nil once the process is
// gone, whatever its exit status (use Wait for that); stopping a process that
// already exited is fine.
func (p *Process) Stop() error {
	p.stopMu.Lock()
	defer p.stopMu.Unlock()
	if p.Exited() {
		return nil
	}
	if p.onStop != nil {
		p.onStop()
		select {
		case <-p.done:
			return nil
		case <-time.After(StopTimeout):
		}
	}
	_ = p.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(StopTimeout):
	}
	fmt.Fprintf(p.log, "# %s: no exit %v after SIGTERM, sending SIGKILL\n", time.Now().Format(time.RFC3339Nano), StopTimeout)
	_ = p.Signal(syscall.SIGKILL)
	select {
	case <-p.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s (pid %d): survived SIGKILL", p.Name, p.Pid())
	}
}

// Log returns the process's log so far.
func (p *Process) Log() string {
	b, _ := os.ReadFile(p.LogPath)
	return string(b)
}

// Tail returns the last n lines of the process's log.
func (p *Process) Tail(n int) string {
	lines := strings.Split(strings.TrimRight(p.Log(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
