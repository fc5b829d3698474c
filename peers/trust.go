package peers

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/nodewire/nodewire/peers/sshsig"
)

// A host given admin keys (overlayd --trust) applies a peer file only if
// CheckUpdate accepts it: signed by one of the keys, not older than what
// the host runs, not a different file under the serial it runs, and not
// expired. A signature says who wrote a file; the serial and expiry say it
// is not an old one replayed by whoever can write where the file comes
// from (a disk, an etcd key).

// RefusalReason names why a peer file was refused. Its values are short and
// stable: they are metric labels.
type RefusalReason string

const (
	ReasonUnsigned     RefusalReason = "unsigned"        // no signature
	ReasonBadSignature RefusalReason = "bad_signature"   // malformed, or does not match the file (tampered)
	ReasonWrongNS      RefusalReason = "wrong_namespace" // signed for another purpose than nodewire peer files
	ReasonUntrustedKey RefusalReason = "untrusted_key"   // signed by a key not in the trust file
	ReasonInvalid      RefusalReason = "invalid"         // signed, but not a valid peer file
	ReasonRollback     RefusalReason = "rollback"        // serial lower than the one running
	ReasonSerialReused RefusalReason = "serial_reused"   // serial of the running file, different content
	ReasonExpired      RefusalReason = "expired"         // expires: has passed
)

// RefusalReasons is every RefusalReason, for metrics that show each label from the start.
var RefusalReasons = []RefusalReason{ReasonUnsigned, ReasonBadSignature, ReasonWrongNS, ReasonUntrustedKey, ReasonInvalid, ReasonRollback, ReasonSerialReused, ReasonExpired}

// RefusedError is CheckUpdate's refusal: why, and the serials involved, so
// that one log line says it all.
type RefusedError struct {
	Source  string // the file name or store key the candidate came from
	Reason  RefusalReason
	Serial  uint64 // the candidate's serial; 0 when it could not be read
	Running uint64 // the serial the host runs
	Err     error  // the details
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("%s: refused (%s): %v", e.Source, e.Reason, e.Err)
}

func (e *RefusedError) Unwrap() error { return e.Err }

// Version identifies an applied peer file: its serial and the SHA-256 of
// its bytes. The zero Version is "nothing applied yet".
type Version struct {
	Serial uint64
	Sum    [sha256.Size]byte
}

// IsZero reports whether v is "nothing applied yet".
func (v Version) IsZero() bool { return v == Version{} }

// String is "serial 12 sha256 HEX", the form a host persists (ParseVersion).
func (v Version) String() string {
	return "serial " + strconv.FormatUint(v.Serial, 10) + " sha256 " + hex.EncodeToString(v.Sum[:])
}

// ParseVersion reads what Version.String wrote.
func ParseVersion(s string) (Version, error) {
	var v Version
	f := strings.Fields(s)
	if len(f) != 4 || f[0] != "serial" || f[2] != "sha256" {
		return v, fmt.Errorf("%q is not \"serial N sha256 HEX\"", strings.TrimSpace(s))
	}
	n, err := parseSerial(f[1])
	if err != nil {
		return v, fmt.Errorf("serial: %v", err)
	}
	sum, err := hex.DecodeString(f[3])
	if err != nil || len(sum) != sha256.Size {
		return v, fmt.Errorf("sha256: %q is not %d hex bytes", f[3], sha256.Size)
	}
	v.Serial = n
	copy(v.Sum[:], sum)
	return v, nil
}

// Verified is a peer file CheckUpdate accepted.
type Verified struct {
	File    *File
	Key     ssh.PublicKey // the admin key that signed it
	Version Version
}

// CheckUpdate decides whether a host running version running may apply
// file (named source in messages), whose armored SSH signature is sig, at
// time now, trusting trusted. It parses the file; every refusal is a
// *RefusedError. Accepting the running file again (same serial, same bytes)
// is not a refusal: a reload of an unchanged file is harmless.
func CheckUpdate(trusted []ssh.PublicKey, running Version, source string, file, sig []byte, now time.Time) (*Verified, error) {
	return checkUpdate(Parse, trusted, running, source, file, sig, now)
}

// checkUpdate is CheckUpdate parsing with parse.
func checkUpdate(parse func(name string, data []byte) (*File, error), trusted []ssh.PublicKey, running Version, source string, file, sig []byte, now time.Time) (*Verified, error) {
	refuse := func(r RefusalReason, serial uint64, err error) (*Verified, error) {
		return nil, &RefusedError{Source: source, Reason: r, Serial: serial, Running: running.Serial, Err: err}
	}
	// A file refused before Parse reports the serial it claims, for the
	// log; read only then, as it costs a YAML decode.
	if len(bytes.TrimSpace(sig)) == 0 {
		return refuse(ReasonUnsigned, claimedSerial(file), errors.New("no signature"))
	}
	key, err := sshsig.Verify(file, sig, trusted, sshsig.Namespace)
	switch {
	case errors.Is(err, sshsig.ErrUntrusted):
		return refuse(ReasonUntrustedKey, claimedSerial(file), err)
	case errors.Is(err, sshsig.ErrNamespace):
		return refuse(ReasonWrongNS, claimedSerial(file), err)
	case err != nil:
		return refuse(ReasonBadSignature, claimedSerial(file), err)
	}
	f, err := parse(source, file)
	if err != nil {
		return refuse(ReasonInvalid, claimedSerial(file), err)
	}
	v := Version{Serial: f.Serial, Sum: sha256.Sum256(file)}
	switch {
	case f.Serial < running.Serial:
		return refuse(ReasonRollback, f.Serial, fmt.Errorf("serial %d is lower than the running %d", f.Serial, running.Serial))
	case f.Serial == running.Serial && v.Sum != running.Sum && !running.IsZero():
		return refuse(ReasonSerialReused, f.Serial, fmt.Errorf("serial %d is the running one's but the content differs (sha256 %x, running %x): bump the serial", f.Serial, v.Sum[:6], running.Sum[:6]))
	case !f.Expires.IsZero() && !now.Before(f.Expires):
		return refuse(ReasonExpired, f.Serial, fmt.Errorf("expired at %s", f.Expires.UTC().Format(time.RFC3339)))
	}
	return &Verified{File: f, Key: key, Version: v}, nil
}

// claimedSerial is the serial a file says it has, or 0 when it does not
// parse.
func claimedSerial(file []byte) uint64 {
	d, err := newEditDoc(file)
	if err != nil {
		return 0
	}
	if v := mapValue(d.root, "serial"); v != nil {
		n, _ := parseSerial(v.Value)
		return n
	}
	return 0
}
