package main

// genkey and pubkey, interchangeable with `wg genkey` and `wg pubkey`, so a
// host needs no wireguard-tools to join an overlay.

import (
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"strings"
)

// genPrivateKey returns a new private key from r, clamped as `wg genkey`
// clamps it, so that the file holds exactly what wg would print.
func genPrivateKey(r io.Reader) ([32]byte, error) {
	var k [32]byte
	if _, err := io.ReadFull(r, k[:]); err != nil {
		return k, fmt.Errorf("read random bytes: %w", err)
	}
	k[0] &= 248
	k[31] = k[31]&127 | 64
	return k, nil
}

// publicKey is the X25519 public key of a base64 private key. X25519 clamps
// the scalar itself, so an unclamped key gives what `wg pubkey` gives.
func publicKey(private string) (string, error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(private))
	if err != nil || len(raw) != 32 {
		return "", fmt.Errorf("not a private key: want 32 bytes in base64 (44 characters), as wg genkey prints")
	}
	priv, err := ecdh.X25519().NewPrivateKey(raw)
	if err != nil {
		return "", fmt.Errorf("not a private key: %w", err)
	}
	return base64.StdEncoding.EncodeToString(priv.PublicKey().Bytes()), nil
}

func cmdGenkey(e *env, args []string) error {
	fs := newFlags(e, "genkey", "> private.key",
		`Prints a new base64 Curve25519 private key, like wg genkey. Keep it
readable by its owner only (chmod 600); give the public key (overlayctl
pubkey) to whoever edits the peer file.`)
	if _, err := fs.parse(args, 0, 0); err != nil {
		return err
	}
	k, err := genPrivateKey(rand.Reader)
	if err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, base64.StdEncoding.EncodeToString(k[:]))
	return nil
}

func cmdPubkey(e *env, args []string) error {
	fs := newFlags(e, "pubkey", "< private.key",
		`Reads a base64 private key on stdin and prints its public key, like
wg pubkey. The public key goes in the peer file.`)
	if _, err := fs.parse(args, 0, 0); err != nil {
		return err
	}
	// A key is 44 characters; read a little more to tell a key from junk.
	in, err := io.ReadAll(io.LimitReader(e.stdin, 4096))
	if err != nil {
		return fmt.Errorf("read stdin: %v", err)
	}
	pub, err := publicKey(string(in))
	if err != nil {
		return fmt.Errorf("stdin: %v", err)
	}
	fmt.Fprintln(e.stdout, pub)
	return nil
}
