// Package sshsig signs and verifies data in OpenSSH's SSHSIG format, the
// format of `ssh-keygen -Y sign` and `ssh-keygen -Y verify`, so that an
// operator can produce and check a peer file's signature with the standard
// tool as well as with overlayctl.
//
// The format (PROTOCOL.sshsig in OpenSSH) is a blob
//
//	"SSHSIG" uint32(1) string(publickey) string(namespace)
//	string(reserved) string(hash_algorithm) string(signature)
//
// armored between "-----BEGIN SSH SIGNATURE-----" lines, where signature is
// an SSH signature over
//
//	"SSHSIG" string(namespace) string(reserved) string(hash_algorithm)
//	string(H(message))
//
// It is built on golang.org/x/crypto/ssh, which knows every key type
// (ed25519, ECDSA, RSA, security keys) and how to verify each.
package sshsig

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"

	"golang.org/x/crypto/ssh"
)

// Namespace is the namespace nodewire signs peer files in: a signature made
// for another purpose (git commits, files) with the same key does not
// verify as a peer file signature.
const Namespace = "nodewire"

// SigExt is what a detached signature's file name adds to the signed file's,
// as `ssh-keygen -Y sign -f KEY FILE` writes FILE.sig.
const SigExt = ".sig"

const (
	magic      = "SSHSIG"
	version    = 1
	beginArmor = "-----BEGIN SSH SIGNATURE-----"
	endArmor   = "-----END SSH SIGNATURE-----"
	// hashAlg is what Sign uses; ssh-keygen's default too.
	hashAlg = "sha512"
)

// Errors that Verify wraps, for callers that must tell refusals apart
// (errors.Is).
var (
	// ErrMalformed: the signature is not a well-formed SSHSIG block.
	ErrMalformed = errors.New("malformed signature")
	// ErrNamespace: the signature was made for another namespace.
	ErrNamespace = errors.New("signature namespace mismatch")
	// ErrUntrusted: the signing key is not among the trusted keys.
	ErrUntrusted = errors.New("signing key is not trusted")
	// ErrBadSignature: the key is trusted but the signature does not match
	// the data (tampered data or signature).
	ErrBadSignature = errors.New("signature does not match the data")
)

// Sign signs data with signer in namespace and returns the armored
// signature, byte for byte what `ssh-keygen -Y sign -n namespace` writes.
// RSA keys sign with rsa-sha2-512, as ssh-keygen does.
func Sign(data []byte, signer ssh.Signer, namespace string) ([]byte, error) {
	if namespace == "" {
		return nil, errors.New("sshsig: empty namespace")
	}
	h := sha512.Sum512(data)
	toSign := signedData(namespace, hashAlg, h[:])
	var sig *ssh.Signature
	var err error
	if signer.PublicKey().Type() == ssh.KeyAlgoRSA {
		as, ok := signer.(ssh.AlgorithmSigner)
		if !ok {
			return nil, errors.New("sshsig: RSA signer cannot sign with rsa-sha2-512")
		}
		sig, err = as.SignWithAlgorithm(rand.Reader, toSign, ssh.KeyAlgoRSASHA512)
	} else {
		sig, err = signer.Sign(rand.Reader, toSign)
	}
	if err != nil {
		return nil, fmt.Errorf("sshsig: sign: %w", err)
	}
	var blob []byte
	blob = append(blob, magic...)
	blob = binary.BigEndian.AppendUint32(blob, version)
	blob = appendString(blob, signer.PublicKey().Marshal())
	blob = appendString(blob, []byte(namespace))
	blob = appendString(blob, nil) // reserved
	blob = appendString(blob, []byte(hashAlg))
	blob = appendString(blob, ssh.Marshal(sig))
	return armor(blob), nil
}

// Signature is a parsed SSHSIG block.
type Signature struct {
	PublicKey ssh.PublicKey // the key that claims to have signed
	Namespace string
	HashAlg   string // "sha256" or "sha512"
	Sig       *ssh.Signature
}

// Parse decodes an armored signature without verifying it.
func Parse(armored []byte) (*Signature, error) {
	blob, err := dearmor(armored)
	if err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(blob, []byte(magic)) {
		return nil, fmt.Errorf("%w: no %s magic", ErrMalformed, magic)
	}
	rest := blob[len(magic):]
	if len(rest) < 4 {
		return nil, fmt.Errorf("%w: truncated", ErrMalformed)
	}
	if v := binary.BigEndian.Uint32(rest); v != version {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrMalformed, v, version)
	}
	rest = rest[4:]
	var fields [5][]byte
	for i := range fields {
		var ok bool
		fields[i], rest, ok = parseString(rest)
		if !ok {
			return nil, fmt.Errorf("%w: truncated", ErrMalformed)
		}
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(rest))
	}
	pub, err := ssh.ParsePublicKey(fields[0])
	if err != nil {
		return nil, fmt.Errorf("%w: public key: %v", ErrMalformed, err)
	}
	if _, ok := pub.(*ssh.Certificate); ok {
		return nil, fmt.Errorf("%w: certificate signatures are not supported", ErrMalformed)
	}
	s := &Signature{PublicKey: pub, Namespace: string(fields[1]), HashAlg: string(fields[3])}
	// fields[2] is reserved; OpenSSH ignores its contents.
	if s.HashAlg != "sha256" && s.HashAlg != "sha512" {
		return nil, fmt.Errorf("%w: hash algorithm %q", ErrMalformed, s.HashAlg)
	}
	s.Sig = new(ssh.Signature)
	if err := ssh.Unmarshal(fields[4], s.Sig); err != nil {
		return nil, fmt.Errorf("%w: signature: %v", ErrMalformed, err)
	}
	// As OpenSSH: RSA signatures must use SHA-2, never SHA-1 ssh-rsa.
	if s.Sig.Format == ssh.KeyAlgoRSA {
		return nil, fmt.Errorf("%w: ssh-rsa (SHA-1) signatures are not accepted", ErrMalformed)
	}
	return s, nil
}

// Verify checks that armored is a signature of data in namespace by one of
// trusted, and returns that key. The errors wrap ErrMalformed, ErrNamespace,
// ErrUntrusted or ErrBadSignature.
func Verify(data, armored []byte, trusted []ssh.PublicKey, namespace string) (ssh.PublicKey, error) {
	s, err := Parse(armored)
	if err != nil {
		return nil, err
	}
	if s.Namespace != namespace {
		return nil, fmt.Errorf("%w: signed for %q, want %q", ErrNamespace, s.Namespace, namespace)
	}
	var key ssh.PublicKey
	want := s.PublicKey.Marshal()
	for _, k := range trusted {
		if bytes.Equal(k.Marshal(), want) {
			key = k
			break
		}
	}
	if key == nil {
		return nil, fmt.Errorf("%w: %s %s", ErrUntrusted, s.PublicKey.Type(), ssh.FingerprintSHA256(s.PublicKey))
	}
	var h hash.Hash
	if s.HashAlg == "sha256" {
		h = sha256.New()
	} else {
		h = sha512.New()
	}
	h.Write(data)
	if err := key.Verify(signedData(namespace, s.HashAlg, h.Sum(nil)), s.Sig); err != nil {
		return nil, fmt.Errorf("%w (key %s): %v", ErrBadSignature, ssh.FingerprintSHA256(key), err)
	}
	return key, nil
}

// Bundle is the one value a store (an etcd key) carries for a signed file:
// the file's bytes followed by its armored signature. SplitBundle undoes it.
func Bundle(file, sig []byte) []byte {
	b := make([]byte, 0, len(file)+len(sig))
	return append(append(b, file...), sig...)
}

// IsBundle says whether b carries an armored signature, as a Bundle does.
func IsBundle(b []byte) bool { return bytes.Contains(b, []byte(beginArmor)) }

// SplitBundle splits a Bundle into the file and its armored signature. The
// signature is the last armor block, so a file that mentions the armor line
// (in a comment, say) still splits where Bundle joined. The file is exactly
// the bytes that were signed, whether or not it ends in a newline.
func SplitBundle(b []byte) (file, sig []byte, err error) {
	i := bytes.LastIndex(b, []byte(beginArmor))
	if i < 0 {
		return nil, nil, fmt.Errorf("%w: bundle has no %s block", ErrMalformed, beginArmor)
	}
	file, sig = b[:i:i], b[i:]
	if _, err := dearmor(sig); err != nil {
		return nil, nil, err
	}
	return file, sig, nil
}

// signedData is what the SSH signature covers.
func signedData(namespace, hashAlg string, digest []byte) []byte {
	var b []byte
	b = append(b, magic...)
	b = appendString(b, []byte(namespace))
	b = appendString(b, nil) // reserved
	b = appendString(b, []byte(hashAlg))
	b = appendString(b, digest)
	return b
}

func appendString(b, s []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(s)))
	return append(b, s...)
}

func parseString(b []byte) (s, rest []byte, ok bool) {
	if len(b) < 4 {
		return nil, nil, false
	}
	n := binary.BigEndian.Uint32(b)
	if uint64(n) > uint64(len(b)-4) {
		return nil, nil, false
	}
	return b[4 : 4+n], b[4+n:], true
}

// armor wraps blob as ssh-keygen does: base64 in lines of 70 characters.
func armor(blob []byte) []byte {
	enc := base64.StdEncoding.EncodeToString(blob)
	var b bytes.Buffer
	b.WriteString(beginArmor)
	b.WriteByte('\n')
	for len(enc) > 70 {
		b.WriteString(enc[:70])
		b.WriteByte('\n')
		enc = enc[70:]
	}
	b.WriteString(enc)
	b.WriteByte('\n')
	b.WriteString(endArmor)
	b.WriteByte('\n')
	return b.Bytes()
}

// dearmor returns the blob inside one armor block; surrounding whitespace
// and CRLF line ends are allowed, anything else outside the block is not.
func dearmor(a []byte) ([]byte, error) {
	a = bytes.TrimSpace(a)
	if !bytes.HasPrefix(a, []byte(beginArmor)) {
		return nil, fmt.Errorf("%w: does not start with %s", ErrMalformed, beginArmor)
	}
	if len(a) < len(beginArmor)+len(endArmor) || !bytes.HasSuffix(a, []byte(endArmor)) {
		return nil, fmt.Errorf("%w: does not end with %s", ErrMalformed, endArmor)
	}
	body := a[len(beginArmor) : len(a)-len(endArmor)]
	var enc []byte
	for _, c := range body {
		switch c {
		case ' ', '\t', '\r', '\n':
		default:
			enc = append(enc, c)
		}
	}
	blob := make([]byte, base64.StdEncoding.DecodedLen(len(enc)))
	n, err := base64.StdEncoding.Decode(blob, enc)
	if err != nil {
		return nil, fmt.Errorf("%w: base64: %v", ErrMalformed, err)
	}
	return blob[:n], nil
}
