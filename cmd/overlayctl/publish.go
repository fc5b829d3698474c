package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/nodewire/nodewire/overlay/etcdsource"
	"github.com/nodewire/nodewire/peers"
	"github.com/nodewire/nodewire/peers/sshsig"
)

// Publishing to etcd: the key holds one sshsig.Bundle (the peer file and
// its armored signature). Every write is a compare-and-swap on the key's
// mod revision (etcdsource.Update), so an admin whose read is stale loses
// the race and, for add-peer --publish, redoes the read-modify-sign.

// publishTimeout bounds one publish, retries included.
const publishTimeout = 30 * time.Second

// etcdFlags are the flags that say how to reach etcd and whom to trust.
type etcdFlags struct {
	tls     etcdsource.TLSFiles
	signKey *string
	trust   *string
}

func (c *cmdFlags) etcdFlags() *etcdFlags {
	f := &etcdFlags{}
	c.StringVar(&f.tls.CA, "etcd-ca", "", "PEM file of the CA that signed etcd's certificate (etcds:// URLs; default: the system's roots)")
	c.StringVar(&f.tls.Cert, "etcd-cert", "", "PEM client certificate for etcd (etcds:// URLs)")
	c.StringVar(&f.tls.Key, "etcd-key", "", "PEM key of --etcd-cert")
	f.signKey = c.String("sign-key", "", "SSH private key (unencrypted OpenSSH/PEM) to sign the file with, as ssh-keygen -Y sign -n nodewire would")
	f.trust = c.String("trust", "", "trust file (authorized_keys or allowed_signers lines): the stored file must be signed by one of its keys (default: by --sign-key)")
	return f
}

// trusted is the keys a stored file must be signed by: --trust, else the
// public half of --sign-key.
func (f *etcdFlags) trusted(signer ssh.Signer) ([]ssh.PublicKey, error) {
	if *f.trust != "" {
		return sshsig.LoadTrust(*f.trust, sshsig.Namespace)
	}
	if signer != nil {
		return []ssh.PublicKey{signer.PublicKey()}, nil
	}
	return nil, nil
}

// storedFile checks the bundle read from key: signed by a trusted key (if
// any are known) and a valid peer file; it returns the file. An empty key
// is (nil, nil).
func storedFile(key string, cur []byte, trusted []ssh.PublicKey) (*peers.File, []byte, error) {
	if len(cur) == 0 {
		return nil, nil, nil
	}
	data, sig, err := sshsig.SplitBundle(cur)
	if err != nil {
		return nil, nil, fmt.Errorf("the file stored at %s: %w", key, err)
	}
	if len(trusted) > 0 {
		if _, err := sshsig.Verify(data, sig, trusted, sshsig.Namespace); err != nil {
			return nil, nil, fmt.Errorf("the file stored at %s: %w", key, err)
		}
	}
	f, err := peers.Parse(key, data)
	if err != nil {
		return nil, nil, fmt.Errorf("the file stored at %s is invalid: %w", key, err)
	}
	return f, data, nil
}

func cmdPublish(e *env, args []string) error {
	fs := newFlags(e, "publish", "--to etcd://HOST:PORT[,HOST:PORT]/KEY FILE [--sign-key K] [--trust T] [--etcd-ca F --etcd-cert F --etcd-key F]",
		`Writes a signed peer file to the etcd key that every overlayd started with
--peers etcd://.../KEY watches. The signature is FILE.sig (ssh-keygen -Y sign
-n nodewire -f KEY FILE) unless --sign-key signs it here. The write is a
compare-and-swap on the key's revision and is refused unless FILE's serial is
above the stored file's: two admins publishing at once never silently
overwrite each other.`)
	to := fs.String("to", "", "etcd://HOST:PORT[,HOST:PORT]/KEY, or etcds://... for TLS (required)")
	ef := fs.etcdFlags()
	pos, err := fs.parse(args, 1, 1)
	if err != nil {
		return err
	}
	if err := fs.required("to"); err != nil {
		return err
	}
	target, err := etcdsource.ParseTarget(*to)
	if err != nil {
		return fs.usageError("--to: %v", err)
	}
	path := pos[0]
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	f, err := peers.Parse(path, data)
	if err != nil {
		return fmt.Errorf("%w\n%s not published: it is invalid", err, path)
	}
	var signer ssh.Signer
	var sig []byte
	if *ef.signKey != "" {
		if signer, err = loadSigner(*ef.signKey); err != nil {
			return err
		}
		if sig, err = sshsig.Sign(data, signer, sshsig.Namespace); err != nil {
			return err
		}
	} else if sig, err = os.ReadFile(path + sshsig.SigExt); err != nil {
		return fmt.Errorf("%w (sign it with ssh-keygen -Y sign -n nodewire, or pass --sign-key)", err)
	}
	trusted, err := ef.trusted(signer)
	if err != nil {
		return err
	}
	if len(trusted) > 0 {
		if _, err := sshsig.Verify(data, sig, trusted, sshsig.Namespace); err != nil {
			return fmt.Errorf("%s: %w", path+sshsig.SigExt, err)
		}
	}
	bundle := sshsig.Bundle(data, sig)
	rev, conflicts, err := publishUpdate(target, ef, func(cur []byte) ([]byte, error) {
		stored, _, err := storedFile(target.Key, cur, nil) // publish replaces it whoever signed it
		if err != nil {
			return nil, err
		}
		if stored != nil && f.Serial <= stored.Serial {
			return nil, fmt.Errorf("%s has serial %d, not above the stored file's %d: edit it from the stored file (or bump serial:)", path, f.Serial, stored.Serial)
		}
		return bundle, nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "published %s serial %d to %s at revision %d (%d concurrent writes retried)\n", path, f.Serial, target, rev, conflicts)
	return nil
}

// publishUpdate runs etcdsource.Update on target's key.
func publishUpdate(target etcdsource.Target, ef *etcdFlags, edit func(cur []byte) ([]byte, error)) (int64, int, error) {
	cli, err := etcdsource.Dial(target, ef.tls)
	if err != nil {
		return 0, 0, err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	defer cancel()
	rev, conflicts, err := etcdsource.Update(ctx, cli, target.Key, func(cur []byte, _ int64) ([]byte, error) { return edit(cur) })
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("%s: no answer within %s: %w", target, publishTimeout, err)
	}
	return rev, conflicts, err
}

// publishEdit is the read-verify-modify-bump-sign-CAS of an editing command
// with --publish: edit gets the stored file's text and parse, as
// editPeerFile's edit does; the result is validated, its serial bumped,
// signed with --sign-key and written only if the key did not change since
// the read (else all of it again).
func publishEdit(url string, ef *etcdFlags, edit func(data []byte, orig *peers.File, origErr error) ([]byte, error)) (_ *peers.File, rev int64, conflicts int, _ error) {
	target, err := etcdsource.ParseTarget(url)
	if err != nil {
		return nil, 0, 0, &usageError{fmt.Sprintf("--publish: %v", err)}
	}
	if *ef.signKey == "" {
		return nil, 0, 0, &usageError{"--publish needs --sign-key"}
	}
	signer, err := loadSigner(*ef.signKey)
	if err != nil {
		return nil, 0, 0, err
	}
	trusted, err := ef.trusted(signer)
	if err != nil {
		return nil, 0, 0, err
	}
	var result *peers.File
	rev, conflicts, err = publishUpdate(target, ef, func(cur []byte) ([]byte, error) {
		orig, data, err := storedFile(target.Key, cur, trusted)
		if err != nil {
			return nil, err
		}
		if orig == nil {
			return nil, fmt.Errorf("%s is empty: publish a first file with overlayctl publish", target)
		}
		out, err := edit(data, orig, nil)
		if err != nil {
			return nil, err
		}
		if _, err := peers.Parse(target.Key, out); err != nil {
			return nil, &errInvalid{errs: err}
		}
		if out, _, err = peers.BumpSerial(out); err != nil {
			return nil, err
		}
		if result, err = peers.Parse(target.Key, out); err != nil {
			return nil, fmt.Errorf("after bumping the serial: %w", err)
		}
		sig, err := sshsig.Sign(out, signer, sshsig.Namespace)
		if err != nil {
			return nil, err
		}
		return sshsig.Bundle(out, sig), nil
	})
	if err != nil {
		return nil, 0, conflicts, err
	}
	return result, rev, conflicts, nil
}
