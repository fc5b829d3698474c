package overlay

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// The control socket speaks one JSON request line and one JSON response line
// per connection. It is a unix socket with mode 0600 in a 0700 directory:
// whoever can reload the daemon can change who reaches this host.

type controlRequest struct {
	Op string `json:"op"` // "reload", "status", "explain" or "ping"

	From string `json:"from,omitempty"` // explain
	To   string `json:"to,omitempty"`   // explain, ping
	Port uint16 `json:"port,omitempty"`

	Seq     uint16        `json:"seq,omitempty"` // ping
	Timeout time.Duration `json:"timeout_ns,omitempty"`
}

type controlResponse struct {
	OK      bool         `json:"ok"`
	Error   string       `json:"error,omitempty"`
	Status  *Status      `json:"status,omitempty"`
	Explain *Explanation `json:"explain,omitempty"`
	Ping    *PingReply   `json:"ping,omitempty"`
}

// DefaultControlPath is where overlayd listens and overlayctl dials when no
// --control is given: $XDG_RUNTIME_DIR/nodewire for a user without /run
// write access, else /run/nodewire.
func DefaultControlPath() string {
	if os.Geteuid() != 0 {
		if dir := os.Getenv("XDG_RUNTIME_DIR"); dir != "" {
			return filepath.Join(dir, "nodewire", "overlayd.sock")
		}
	}
	return "/run/nodewire/overlayd.sock"
}

// listenControl makes the control socket, never world-accessible: the
// directory is created 0700 if missing and the socket is created under a
// umask that leaves it 0600 from its first moment.
func listenControl(path string) (net.Listener, error) {
	dir := filepath.Dir(path)
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("control socket: %w", err)
		}
	}
	if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		c.Close()
		return nil, fmt.Errorf("control socket %s: another overlayd is listening there", path)
	}
	_ = os.Remove(path) // a stale socket of a daemon that died
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return ln, nil
}

// serveControl answers requests until ln is closed.
func (d *Daemon) serveControl(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		if !d.reqs.add(c) {
			continue // closing: the next Accept fails
		}
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			defer d.reqs.remove(c)
			defer c.Close()
			d.handleControl(c)
		}()
	}
}

func (d *Daemon) handleControl(c net.Conn) {
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	var req controlRequest
	line, err := bufio.NewReader(io.LimitReader(c, 4096)).ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &req)
	}
	var resp controlResponse
	switch {
	case err != nil:
		resp.Error = "bad request: " + err.Error()
	case req.Op == "reload":
		d.log.Info("reload requested over the control socket")
		if err := d.Reload(d.ctx); err != nil {
			resp.Error = err.Error()
		} else {
			resp.OK = true
		}
	case req.Op == "status":
		st := d.Status()
		resp.OK, resp.Status = true, &st
	case req.Op == "explain":
		ctx, cancel := context.WithTimeout(d.ctx, 10*time.Second)
		ex, err := d.Explain(ctx, req.From, req.To, req.Port)
		cancel()
		if err != nil {
			resp.Error = err.Error()
		} else {
			resp.OK, resp.Explain = true, ex
		}
	case req.Op == "ping":
		r, err := d.Ping(d.ctx, req.To, req.Seq, req.Timeout)
		if err != nil {
			resp.Error = err.Error()
		} else {
			resp.OK, resp.Ping = true, r
		}
	default:
		resp.Error = fmt.Sprintf("unknown op %q", req.Op)
	}
	if err := json.NewEncoder(c).Encode(resp); err != nil {
		d.log.Debug("control reply", slog.Any("err", err))
	}
}

// ControlClient talks to a running overlayd.
type ControlClient struct {
	Path string // empty: DefaultControlPath()
}

func (cc ControlClient) call(ctx context.Context, op string) (*controlResponse, error) {
	return cc.do(ctx, controlRequest{Op: op})
}

func (cc ControlClient) do(ctx context.Context, req controlRequest) (*controlResponse, error) {
	op := req.Op
	path := cc.Path
	if path == "" {
		path = DefaultControlPath()
	}
	var dialer net.Dialer
	c, err := dialer.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("connect to overlayd at %s: %w", path, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return nil, fmt.Errorf("overlayd %s: %w", op, err)
	}
	var resp controlResponse
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		return nil, fmt.Errorf("overlayd %s: %w", op, err)
	}
	if !resp.OK {
		return &resp, fmt.Errorf("overlayd %s: %s", op, resp.Error)
	}
	return &resp, nil
}

// Reload asks the daemon to reload its peer file. The error carries the
// daemon's reason when it kept the last good file.
func (cc ControlClient) Reload(ctx context.Context) error {
	_, err := cc.call(ctx, "reload")
	return err
}

// Status fetches the daemon's view of itself and its peers.
func (cc ControlClient) Status(ctx context.Context) (*Status, error) {
	resp, err := cc.call(ctx, "status")
	if err != nil {
		return nil, err
	}
	if resp.Status == nil {
		return nil, errors.New("overlayd status: empty reply")
	}
	return resp.Status, nil
}

// Explain asks the daemon whether from may open port (0: 4369) on to, with
// the distribution ports it resolves now.
func (cc ControlClient) Explain(ctx context.Context, from, to string, port uint16) (*Explanation, error) {
	resp, err := cc.do(ctx, controlRequest{Op: "explain", From: from, To: to, Port: port})
	if err != nil {
		return nil, err
	}
	if resp.Explain == nil {
		return nil, errors.New("overlayd explain: empty reply")
	}
	return resp.Explain, nil
}

// Ping asks the daemon to send one echo request to peer to and wait up to
// timeout (0: DefaultPingTimeout) for the reply. A reply that does not
// come is no error: the PingReply says Replied false.
func (cc ControlClient) Ping(ctx context.Context, to string, seq uint16, timeout time.Duration) (*PingReply, error) {
	resp, err := cc.do(ctx, controlRequest{Op: "ping", To: to, Seq: seq, Timeout: timeout})
	if err != nil {
		return nil, err
	}
	if resp.Ping == nil {
		return nil, errors.New("overlayd ping: empty reply")
	}
	return resp.Ping, nil
}
