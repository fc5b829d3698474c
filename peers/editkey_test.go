package peers

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

func TestSetPublicKey(t *testing.T) {
	newKey, err := ParseKey("FyIvtONJzytbBHkgxKd3V7C9QKZbqesS9zYDJdwX/GQ=")
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"testdata/valid/example.yaml", "testdata/valid/nodes.yaml"} {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		f, err := Parse(path, data)
		if err != nil {
			t.Fatal(err)
		}
		old := f.Peer("pay-1").PublicKey.String()
		out, err := SetPublicKey(data, "pay-1", newKey)
		if err != nil {
			t.Fatal(err)
		}
		if want := bytes.Replace(data, []byte(old), []byte(newKey.String()), 1); !bytes.Equal(out, want) {
			t.Errorf("%s: more than the key changed:\n%s", path, out)
		}
		g, err := Parse(path, out)
		if err != nil {
			t.Fatal(err)
		}
		if g.Peer("pay-1").PublicKey != newKey {
			t.Errorf("%s: key not replaced", path)
		}
	}
	flow := "overlay: {prefix: 10.77.0.0/16}\nnetworks: {n: {prefix: 10.77.1.0/24}}\npeers:\n  a: {network: n, public_key: \"CBSFIqw2PIWKZNCUOSOWqKFJBIQs+G9L14LzdA5PT2I=\", address: 10.77.1.1} # keep\n"
	out, err := SetPublicKey([]byte(flow), "a", newKey)
	if err != nil || !strings.Contains(string(out), `public_key: "`+newKey.String()+`", address`) || !strings.HasSuffix(string(out), "# keep\n") {
		t.Errorf("flow style: %v\n%s", err, out)
	}
	if _, err := SetPublicKey([]byte(flow), "zz", newKey); err == nil || !strings.Contains(err.Error(), "no peer zz") {
		t.Errorf("unknown peer: %v", err)
	}
}
