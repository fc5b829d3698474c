package etcdsource

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Update is a read-modify-write of key with a compare-and-swap on its mod
// revision: it reads the value (nil and revision 0 when the key is absent),
// calls edit, and writes the result only if nobody wrote the key in
// between; otherwise it reads again and calls edit again, so two admins
// publishing at once never lose an edit. It returns the revision written
// and how many attempts lost the race.
func Update(ctx context.Context, cli *clientv3.Client, key string, edit func(cur []byte, modRev int64) ([]byte, error)) (rev int64, conflicts int, err error) {
	for {
		resp, err := cli.Get(ctx, key)
		if err != nil {
			return 0, conflicts, fmt.Errorf("read %s: %w", key, err)
		}
		var cur []byte
		var modRev int64
		if len(resp.Kvs) == 1 {
			cur, modRev = resp.Kvs[0].Value, resp.Kvs[0].ModRevision
		}
		next, err := edit(cur, modRev)
		if err != nil {
			return 0, conflicts, err
		}
		// ModRevision 0 compares equal to an absent key: a first publish
		// races like any other.
		tr, err := cli.Txn(ctx).
			If(clientv3.Compare(clientv3.ModRevision(key), "=", modRev)).
			Then(clientv3.OpPut(key, string(next))).
			Commit()
		if err != nil {
			return 0, conflicts, fmt.Errorf("write %s: %w", key, err)
		}
		if tr.Succeeded {
			return tr.Header.Revision, conflicts, nil
		}
		conflicts++
		if ctx.Err() != nil {
			return 0, conflicts, ctx.Err()
		}
	}
}
