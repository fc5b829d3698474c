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

	"github.com/nodewire/nodewire/overlay/control"
)

// The control socket: the protocol and the client are package control;
// this is the daemon's end of it.

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
	var req control.Request
	line, err := bufio.NewReader(io.LimitReader(c, control.MaxRequest)).ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &req)
	}
	var resp control.Response
	switch {
	case err != nil:
		resp.Error = "bad request: " + err.Error()
	case req.Op == control.OpReload:
		d.log.Info("reload requested over the control socket")
		if err := d.Reload(d.ctx); err != nil {
			resp.Error = err.Error()
		} else {
			resp.OK = true
		}
	case req.Op == control.OpStatus:
		st := d.Status()
		resp.OK, resp.Status = true, &st
	case req.Op == control.OpExplain:
		ctx, cancel := context.WithTimeout(d.ctx, 10*time.Second)
		ex, err := d.Explain(ctx, req.From, req.To, req.Port)
		cancel()
		if err != nil {
			resp.Error = err.Error()
		} else {
			resp.OK, resp.Explain = true, ex
		}
	case req.Op == control.OpPing:
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
