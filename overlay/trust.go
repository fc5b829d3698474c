package overlay

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/nodewire/nodewire/peers"
	"github.com/nodewire/nodewire/peers/sshsig"
)

// Signed peer files. With Config.Trust set, every peer file the daemon
// applies (at start, on reload, or from another source through
// ApplyPeerFile) must pass peers.CheckUpdate against the version running;
// a refused file is logged on one line, counted by reason
// (nodewire_peerfile_refused_total) and changes nothing. The running
// version is kept in Config.TrustState so that a restart refuses a rollback
// too. The trust file itself is read again on every apply. Without
// Config.Trust, files are applied as they are, unsigned.

// trust is the daemon's trust state; guarded by Daemon.mu.
type trust struct {
	keys    []ssh.PublicKey
	state   string        // the file keeping running; "": none
	running peers.Version // of the last applied file; zero before the first
	refused map[peers.RefusalReason]uint64
	now     func() time.Time
}

// newTrust reads the trust file and the persisted version; nil without
// cfg.Trust. A state file that cannot be read refuses the start: dropping
// it silently would open the door to the rollback it guards against.
func newTrust(cfg Config) (*trust, error) {
	if cfg.Trust == "" {
		return nil, nil
	}
	keys, err := sshsig.LoadTrust(cfg.Trust, sshsig.Namespace)
	if err != nil {
		return nil, err
	}
	t := &trust{keys: keys, state: cfg.TrustState, refused: map[peers.RefusalReason]uint64{}, now: time.Now}
	if t.state == "" {
		return t, nil
	}
	data, err := os.ReadFile(t.state)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("trust state: %w", err)
	default:
		if t.running, err = peers.ParseVersion(string(data)); err != nil {
			return nil, fmt.Errorf("%s: %v (the version of the last applied peer file; remove the file to accept any serial)", t.state, err)
		}
	}
	return t, nil
}

// refreshKeys reads the trust file again, so that adding or retiring an
// admin key takes a reload, not a restart. A trust file that no longer
// reads is logged and the keys in use are kept: an operator's typo must
// not leave the host unable to follow (or able to follow anyone's) files.
// Called with d.mu held.
func (d *Daemon) refreshKeys() {
	t := d.trust
	if t == nil {
		return
	}
	keys, err := sshsig.LoadTrust(d.cfg.Trust, sshsig.Namespace)
	if err != nil {
		d.log.Error("trust file not reloaded; still checking with the keys read before", slog.String("trust", d.cfg.Trust),
			slog.Int("keys", len(t.keys)), slog.Any("err", err))
		return
	}
	if !sameKeys(keys, t.keys) {
		d.log.Info("trust file reloaded", slog.String("trust", d.cfg.Trust), slog.Int("keys", len(keys)), slog.Int("before", len(t.keys)))
	}
	t.keys = keys
}

func sameKeys(a, b []ssh.PublicKey) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i].Marshal(), b[i].Marshal()) {
			return false
		}
	}
	return true
}

// readPeerFile reads Config.PeerFile and, with trust, its detached
// signature PEERFILE.sig; a missing signature is an empty one, which the
// policy refuses as unsigned.
func (d *Daemon) readPeerFile() (file, sig []byte, err error) {
	if file, err = os.ReadFile(d.cfg.PeerFile); err != nil {
		return nil, nil, err
	}
	if d.trust == nil {
		return file, nil, nil
	}
	sig, err = os.ReadFile(d.cfg.PeerFile + sshsig.SigExt)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, nil, err
	}
	return file, sig, nil
}

// checkPeerFile parses file and, with trust, applies the policy. On a
// refusal it counts it and returns the *peers.RefusedError. The version is
// nil without trust.
func (d *Daemon) checkPeerFile(source string, file, sig []byte) (*peers.File, *peers.Version, error) {
	if d.trust == nil {
		f, err := peers.Parse(source, file)
		return f, nil, err
	}
	t := d.trust
	v, err := peers.CheckUpdate(t.keys, t.running, source, file, sig, t.now())
	if err != nil {
		var r *peers.RefusedError
		if errors.As(err, &r) {
			t.refused[r.Reason]++
		}
		return nil, nil, err
	}
	d.log.Debug("peer file signature verified", slog.String("file", source), slog.Uint64("serial", v.Version.Serial),
		slog.String("key", ssh.FingerprintSHA256(v.Key)))
	return v.File, &v.Version, nil
}

// logRefusal logs err on one line if it is a policy refusal, and says
// whether it was.
func (d *Daemon) logRefusal(err error) bool {
	var r *peers.RefusedError
	if !errors.As(err, &r) {
		return false
	}
	d.log.Error("peer file refused; still running on the last good one", slog.String("file", r.Source),
		slog.String("reason", string(r.Reason)), slog.Uint64("serial", r.Serial), slog.Uint64("running_serial", r.Running),
		slog.Any("err", r.Err))
	return true
}

// appliedLocked records the version of a file just applied, and persists
// it. A state file that cannot be written is logged, not fatal: the
// overlay keeps running; only a restart's rollback check is weaker.
func (d *Daemon) appliedLocked(v *peers.Version) {
	t := d.trust
	if t == nil || v == nil || *v == t.running {
		return
	}
	t.running = *v
	if t.state == "" {
		return
	}
	if err := peers.WriteFileAtomic(t.state, []byte(v.String()+"\n"), 0o600); err != nil {
		d.log.Warn("applied peer file version not saved: a restart will not know it", slog.String("state", t.state), slog.Uint64("serial", v.Serial), slog.Any("err", err))
	}
}

// refusedCounts is a copy of the refusal counters; nil without trust.
func (d *Daemon) refusedCounts() map[peers.RefusalReason]uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.trust == nil {
		return nil
	}
	m := make(map[peers.RefusalReason]uint64, len(d.trust.refused))
	for k, v := range d.trust.refused {
		m[k] = v
	}
	return m
}
