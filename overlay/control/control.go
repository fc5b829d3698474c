// Package control is overlayd's control protocol: the socket's path, its
// requests and replies, and the client overlayctl uses. A request is one
// JSON line and its reply one JSON line, one exchange per connection, over
// a unix socket of mode 0600 in a 0700 directory: whoever can reload the
// daemon can change who reaches this host.
//
// The package imports neither the data plane nor WireGuard (a test holds
// it to that), so a client that only talks to a daemon stays small.
package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Ops a Request may name.
const (
	OpReload  = "reload"
	OpStatus  = "status"
	OpExplain = "explain"
	OpPing    = "ping"
)

// MaxRequest caps a request line; the daemon reads no more.
const MaxRequest = 4096

// Request is one line a client sends.
type Request struct {
	Op string `json:"op"` // OpReload, OpStatus, OpExplain or OpPing

	From string `json:"from,omitempty"` // explain
	To   string `json:"to,omitempty"`   // explain, ping
	Port uint16 `json:"port,omitempty"`

	Seq     uint16        `json:"seq,omitempty"` // ping
	Timeout time.Duration `json:"timeout_ns,omitempty"`
}

// Response is the daemon's one-line answer: OK with the op's result, or
// the reason it failed in Error.
type Response struct {
	OK      bool         `json:"ok"`
	Error   string       `json:"error,omitempty"`
	Status  *Status      `json:"status,omitempty"`
	Explain *Explanation `json:"explain,omitempty"`
	Ping    *PingReply   `json:"ping,omitempty"`
}

// DefaultPath is where overlayd listens and overlayctl dials when no
// --control is given: $XDG_RUNTIME_DIR/nodewire for a user without /run
// write access, else /run/nodewire.
func DefaultPath() string {
	if os.Geteuid() != 0 {
		if dir := os.Getenv("XDG_RUNTIME_DIR"); dir != "" {
			return filepath.Join(dir, "nodewire", "overlayd.sock")
		}
	}
	return "/run/nodewire/overlayd.sock"
}

// Client talks to a running overlayd.
type Client struct {
	Path string // empty: DefaultPath()
}

func (c Client) do(ctx context.Context, req Request) (*Response, error) {
	op := req.Op
	path := c.Path
	if path == "" {
		path = DefaultPath()
	}
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("connect to overlayd at %s: %w", path, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return nil, fmt.Errorf("overlayd %s: %w", op, err)
	}
	var resp Response
	if err := json.NewDecoder(conn).Decode(&resp); err != nil {
		return nil, fmt.Errorf("overlayd %s: %w", op, err)
	}
	if !resp.OK {
		return &resp, fmt.Errorf("overlayd %s: %s", op, resp.Error)
	}
	return &resp, nil
}

// Reload asks the daemon to reload its peer file. The error carries the
// daemon's reason when it kept the last good file.
func (c Client) Reload(ctx context.Context) error {
	_, err := c.do(ctx, Request{Op: OpReload})
	return err
}

// Status fetches the daemon's view of itself and its peers.
func (c Client) Status(ctx context.Context) (*Status, error) {
	resp, err := c.do(ctx, Request{Op: OpStatus})
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
func (c Client) Explain(ctx context.Context, from, to string, port uint16) (*Explanation, error) {
	resp, err := c.do(ctx, Request{Op: OpExplain, From: from, To: to, Port: port})
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
func (c Client) Ping(ctx context.Context, to string, seq uint16, timeout time.Duration) (*PingReply, error) {
	resp, err := c.do(ctx, Request{Op: OpPing, To: to, Seq: seq, Timeout: timeout})
	if err != nil {
		return nil, err
	}
	if resp.Ping == nil {
		return nil, errors.New("overlayd ping: empty reply")
	}
	return resp.Ping, nil
}
