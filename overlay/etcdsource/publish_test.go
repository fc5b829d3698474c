package etcdsource

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Concurrent read-modify-writes lose nothing: each appends its own line.
func TestUpdateConcurrentEditsAllLand(t *testing.T) {
	e := startEtcd(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const n = 8
	var wg sync.WaitGroup
	conflicts := make([]int, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cli := e.client()
			defer cli.Close()
			_, conflicts[i], errs[i] = Update(ctx, cli, "/counter", func(cur []byte, _ int64) ([]byte, error) {
				v, _ := strconv.Atoi(string(cur))
				return []byte(strconv.Itoa(v + 1)), nil
			})
		}()
	}
	wg.Wait()
	total := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		total += conflicts[i]
	}
	cli := e.client()
	defer cli.Close()
	r, err := cli.Get(ctx, "/counter")
	if err != nil {
		t.Fatal(err)
	}
	if got := string(r.Kvs[0].Value); got != strconv.Itoa(n) {
		t.Fatalf("counter = %s after %d increments (%d conflicts retried)", got, n, total)
	}
	t.Logf("%d concurrent updates, %d CAS conflicts retried", n, total)
}

// An edit's error stops Update and writes nothing.
func TestUpdateEditRefuses(t *testing.T) {
	e := startEtcd(t)
	cli := e.client()
	defer cli.Close()
	ctx := context.Background()
	if _, err := cli.Put(ctx, "/k", "keep"); err != nil {
		t.Fatal(err)
	}
	_, _, err := Update(ctx, cli, "/k", func(cur []byte, rev int64) ([]byte, error) {
		return nil, fmt.Errorf("serial not above %s", cur)
	})
	if err == nil {
		t.Fatal("no error")
	}
	r, _ := cli.Get(ctx, "/k")
	if string(r.Kvs[0].Value) != "keep" {
		t.Fatalf("value = %q", r.Kvs[0].Value)
	}
}
