package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/nodewire/nodewire/overlay/etcdsource/etcdtest"
	"github.com/nodewire/nodewire/peers"
	"github.com/nodewire/nodewire/peers/sshsig"
)

// writeSignKey writes a new unencrypted OpenSSH ed25519 key and returns
// its path and a trust file naming its public half.
func writeSignKey(t *testing.T) (keyPath, trustPath string) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	blk, err := ssh.MarshalPrivateKey(priv, "admin")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keyPath, trustPath = filepath.Join(dir, "admin"), filepath.Join(dir, "trust")
	if err := os.WriteFile(keyPath, pem.EncodeToMemory(blk), 0o600); err != nil {
		t.Fatal(err)
	}
	sp, _ := ssh.NewPublicKey(pub)
	if err := os.WriteFile(trustPath, ssh.MarshalAuthorizedKey(sp), 0o644); err != nil {
		t.Fatal(err)
	}
	return keyPath, trustPath
}

// stored returns the peer file at key, checking its signature with trust.
func stored(t *testing.T, e *etcdtest.Server, key, trust string) *peers.File {
	t.Helper()
	cli := e.Client()
	defer cli.Close()
	r, err := cli.Get(context.Background(), key)
	if err != nil || len(r.Kvs) != 1 {
		t.Fatalf("get %s: %v, %d values", key, err, len(r.Kvs))
	}
	file, sig, err := sshsig.SplitBundle(r.Kvs[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := sshsig.LoadTrust(trust, sshsig.Namespace)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sshsig.Verify(file, sig, keys, sshsig.Namespace); err != nil {
		t.Fatalf("stored file: %v", err)
	}
	f, err := peers.Parse(key, file)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestPublish(t *testing.T) {
	e := etcdtest.Start(t)
	key, trust := writeSignKey(t)
	otherKey, _ := writeSignKey(t)
	url := "etcd://" + e.Addr + "/nw/peers"
	path := writeFixture(t, "serial: 5\n"+fixture)

	r := runCmd("", "publish", "--to", url, "--sign-key", key, path)
	if r.code != 0 || !strings.Contains(r.stdout, "serial 5") {
		t.Fatalf("publish: %+v", r)
	}
	if f := stored(t, e, "/nw/peers", trust); f.Serial != 5 {
		t.Fatalf("stored serial %d", f.Serial)
	}
	// The same serial again is refused: the stored file stays.
	r = runCmd("", "publish", "--to", url, "--sign-key", otherKey, path)
	if r.code != 1 || !strings.Contains(r.stderr, "serial 5, not above the stored file's 5") {
		t.Fatalf("publish of the same serial: %+v", r)
	}
	// FILE.sig from ssh-keygen's format, checked against --trust.
	data := []byte(strings.Replace(readFile(t, path), "serial: 5", "serial: 6", 1))
	os.WriteFile(path, data, 0o644)
	signer, _ := loadSigner(otherKey)
	sig, _ := sshsig.Sign(data, signer, sshsig.Namespace)
	os.WriteFile(path+".sig", sig, 0o644)
	r = runCmd("", "publish", "--to", url, "--trust", trust, path)
	if r.code != 1 || !strings.Contains(r.stderr, "not trusted") {
		t.Fatalf("publish signed by an untrusted key: %+v", r)
	}
	signer, _ = loadSigner(key)
	sig, _ = sshsig.Sign(data, signer, sshsig.Namespace)
	os.WriteFile(path+".sig", sig, 0o644)
	if r = runCmd("", "publish", "--to", url, "--trust", trust, path); r.code != 0 {
		t.Fatalf("publish with FILE.sig: %+v", r)
	}
	if f := stored(t, e, "/nw/peers", trust); f.Serial != 6 {
		t.Fatalf("stored serial %d", f.Serial)
	}
}

// Two admins adding a peer each at the same time: both peers land, each
// publish a serial above the last.
func TestAddPeerPublishConcurrent(t *testing.T) {
	e := etcdtest.Start(t)
	key, trust := writeSignKey(t)
	url := "etcd://" + e.Addr + "/nw/peers"
	if r := runCmd("", "publish", "--to", url, "--sign-key", key, writeFixture(t, "serial: 1\n"+fixture)); r.code != 0 {
		t.Fatalf("publish: %+v", r)
	}
	names := []string{"pay-3", "pay-4", "pay-5", "pay-6"}
	var wg sync.WaitGroup
	results := make([]result, len(names))
	for i, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pub := make([]byte, 32)
			pub[0] = byte(i + 1)
			k := base64.StdEncoding.EncodeToString(pub)
			results[i] = runCmd("", "add-peer", "--publish", url, "--sign-key", key, "--trust", trust,
				"--name", n, "--network", "payments", "--public-key", k)
		}()
	}
	wg.Wait()
	for i, r := range results {
		if r.code != 0 {
			t.Fatalf("add-peer %s: %+v", names[i], r)
		}
	}
	f := stored(t, e, "/nw/peers", trust)
	for _, n := range names {
		if f.Peer(n) == nil {
			t.Errorf("peer %s lost", n)
		}
	}
	if f.Serial != uint64(1+len(names)) {
		t.Errorf("serial %d, want %d", f.Serial, 1+len(names))
	}
	// A stored file signed by a key outside --trust is not edited.
	otherKey, otherTrust := writeSignKey(t)
	r := runCmd("", "add-peer", "--publish", url, "--sign-key", otherKey, "--trust", otherTrust,
		"--name", "pay-9", "--network", "payments", "--public-key", keyNew)
	if r.code != 1 || !strings.Contains(r.stderr, "not trusted") {
		t.Fatalf("add-peer over an untrusted file: %+v", r)
	}
}

// An admin whose write loses the race (another add-peer landed between its
// read and its compare-and-swap) reads again and redoes its edit: both
// peers land. The race is made deterministic: the first edit of admin A
// runs admin B's whole add-peer before returning.
func TestAddPeerPublishLosesRaceAndRedoes(t *testing.T) {
	e := etcdtest.Start(t)
	key, trust := writeSignKey(t)
	url := "etcd://" + e.Addr + "/nw/peers"
	if r := runCmd("", "publish", "--to", url, "--sign-key", key, writeFixture(t, "serial: 1\n"+fixture)); r.code != 0 {
		t.Fatalf("publish: %+v", r)
	}
	signKey, trustFile := key, trust
	ef := &etcdFlags{signKey: &signKey, trust: &trustFile}
	edits := 0
	f, _, conflicts, err := publishEdit(url, ef, func(data []byte, orig *peers.File, _ error) ([]byte, error) {
		edits++
		if edits == 1 {
			if r := runCmd("", "add-peer", "--publish", url, "--sign-key", key, "--trust", trust,
				"--name", "pay-b", "--network", "payments", "--public-key", keyNew); r.code != 0 {
				t.Fatalf("admin B: %+v", r)
			}
		}
		a, err := orig.NextAddress("payments")
		if err != nil {
			return nil, err
		}
		return peers.AddPeer(data, peers.PeerEntry{Name: "pay-a", Network: "payments", PublicKey: base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32)), Address: a})
	})
	if err != nil {
		t.Fatal(err)
	}
	if conflicts != 1 || edits != 2 {
		t.Errorf("%d conflicts, %d edits; want 1 and 2", conflicts, edits)
	}
	st := stored(t, e, "/nw/peers", trust)
	if st.Peer("pay-a") == nil || st.Peer("pay-b") == nil || st.Serial != 3 {
		t.Fatalf("stored: pay-a %v, pay-b %v, serial %d; want both and serial 3", st.Peer("pay-a") != nil, st.Peer("pay-b") != nil, st.Serial)
	}
	if f.Peer("pay-a").Address == st.Peer("pay-b").Address {
		t.Errorf("pay-a and pay-b share %s", f.Peer("pay-a").Address)
	}
}
