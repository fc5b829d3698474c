package main

// sign and verify: an admin signs the peer file offline with an SSH key
// only admins hold; hosts running overlayd --trust apply only files signed
// so. The signature is ssh-keygen's (SSHSIG, namespace nodewire), so
// `ssh-keygen -Y sign -n nodewire` and `ssh-keygen -Y verify` work too.

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/nodewire/nodewire/peers"
	"github.com/nodewire/nodewire/peers/sshsig"
)

func cmdSign(e *env, args []string) error {
	fs := newFlags(e, "sign", "--key ADMIN_KEY FILE",
		`Signs the peer file FILE with the admin's OpenSSH private key and
writes the signature to FILE.sig, as ssh-keygen -Y sign -n nodewire -f
ADMIN_KEY FILE would. Hosts running overlayd --trust apply the file only
with a valid signature by a key of their trust file. The file must be valid
(overlayctl check). Sign again after every edit: overlayctl's edits raise
serial:, which the signature covers.

With --expires, sign first sets the file's expires: (a duration from now,
like 720h or 30d, or an RFC 3339 time) and raises its serial, so that a
stolen or replayed copy stops being applied when it passes.

The key must not be passphrase-protected; for a protected key (or one in
ssh-agent), use ssh-keygen -Y sign -n nodewire -f ADMIN_KEY FILE, which
asks for it.`)
	key := fs.String("key", "", "the admin's OpenSSH private key (ssh-keygen -t ed25519) (required)")
	expires := fs.String("expires", "", "set expires: first: a duration from now (720h, 30d) or an RFC 3339 time")
	pos, err := fs.parse(args, 1, 1)
	if err != nil {
		return err
	}
	if err := fs.required("key"); err != nil {
		return err
	}
	path := pos[0]
	signer, err := loadSigner(*key)
	if err != nil {
		return err
	}
	now := time.Now()
	if *expires != "" {
		at, err := parseExpiry(*expires, now)
		if err != nil {
			return fmt.Errorf("--expires: %w", err)
		}
		if _, err := editPeerFile(path, func(data []byte, _ *peers.File, origErr error) ([]byte, error) {
			if origErr != nil {
				return nil, &errInvalid{errs: origErr, already: true}
			}
			return peers.SetExpires(data, at)
		}); err != nil {
			return fs.editFailed(path, err, "")
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	f, err := peers.Parse(path, data)
	if err != nil {
		return fmt.Errorf("%w\nnot signed: %s is invalid (overlayctl check --file %s)", err, path, path)
	}
	sig, err := sshsig.Sign(data, signer, sshsig.Namespace)
	if err != nil {
		return err
	}
	if err := peers.WriteFileAtomic(path+sshsig.SigExt, sig, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "signed %s (serial %d%s) with %s %s: %s\n", path, f.Serial, expiryNote(f.Expires, now),
		signer.PublicKey().Type(), ssh.FingerprintSHA256(signer.PublicKey()), path+sshsig.SigExt)
	if f.Serial == 0 {
		fmt.Fprintf(e.stderr, "overlayctl sign: note: %s has no serial:; hosts with --trust will refuse any later file without a higher one (overlayctl edits add it)\n", path)
	}
	return nil
}

// loadSigner reads an OpenSSH private key, refusing an encrypted one with
// what to do instead.
func loadSigner(path string) (ssh.Signer, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	signer, err := ssh.ParsePrivateKey(pem)
	var missing *ssh.PassphraseMissingError
	switch {
	case errors.As(err, &missing):
		return nil, fmt.Errorf("%s is passphrase-protected; overlayctl does not ask for passphrases: sign with ssh-keygen -Y sign -n %s -f %s FILE (it asks, or uses ssh-agent)", path, sshsig.Namespace, path)
	case err != nil:
		return nil, fmt.Errorf("%s: not an OpenSSH private key: %v", path, err)
	}
	return signer, nil
}

func cmdVerify(e *env, args []string) error {
	fs := newFlags(e, "verify", "--trust TRUST FILE",
		`Checks the peer file FILE and its signature FILE.sig as overlayd
--trust TRUST does before applying it: a valid signature by a key of TRUST
(authorized_keys or allowed_signers lines), a valid file, not expired.
FILE may also be a bundle as overlayctl publish stores it (the file with
its signature appended: etcdctl get KEY --print-value-only > FILE).
Prints the signing key's fingerprint, the serial and the expiry; exits 1
on refusal, saying why. (Whether the serial is higher than the one a host
runs, only that host knows: overlayctl status there, or the
nodewire_peerfile_serial metric.)`)
	trust := fs.String("trust", "", "file of trusted admin public keys (required)")
	sigPath := fs.String("sig", "", "the signature (default FILE.sig)")
	pos, err := fs.parse(args, 1, 1)
	if err != nil {
		return err
	}
	if err := fs.required("trust"); err != nil {
		return err
	}
	path := pos[0]
	sigFlag := *sigPath
	if *sigPath == "" {
		*sigPath = path + sshsig.SigExt
	}
	keys, err := sshsig.LoadTrust(*trust, sshsig.Namespace)
	if err != nil {
		return err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	sig, err := os.ReadFile(*sigPath)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if sig == nil && sigFlag == "" && sshsig.IsBundle(data) {
		// A bundle, as a store carries it (etcdctl get KEY
		// --print-value-only): the file with its signature appended.
		if data, sig, err = sshsig.SplitBundle(data); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	now := time.Now()
	v, err := peers.CheckUpdate(keys, peers.Version{}, path, data, sig, now)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s: good signature by %s %s\nserial: %d\nexpires: %s\n", path, v.Key.Type(), ssh.FingerprintSHA256(v.Key),
		v.File.Serial, expiryText(v.File.Expires, now))
	return nil
}

// parseExpiry reads --expires: a duration from now (Go's, or whole days
// as 30d) or an RFC 3339 time; it must lie in the future.
func parseExpiry(s string, now time.Time) (time.Time, error) {
	var at time.Time
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		at = t
	} else if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseUint(days, 10, 16)
		if err != nil {
			return time.Time{}, fmt.Errorf("%q is not a number of days, a duration (720h) or an RFC 3339 time", s)
		}
		at = now.AddDate(0, 0, int(n))
	} else if d, err := time.ParseDuration(s); err == nil {
		at = now.Add(d)
	} else {
		return time.Time{}, fmt.Errorf("%q is not a duration (720h, 30d) or an RFC 3339 time (2027-01-31T00:00:00Z)", s)
	}
	if !at.After(now) {
		return time.Time{}, fmt.Errorf("%s is not in the future", at.UTC().Format(time.RFC3339))
	}
	return at.Truncate(time.Second), nil
}

func expiryText(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return fmt.Sprintf("%s (in %s)", t.UTC().Format(time.RFC3339), t.Sub(now).Round(time.Minute))
}

func expiryNote(t, now time.Time) string {
	if t.IsZero() {
		return ""
	}
	return ", expires " + expiryText(t, now)
}
