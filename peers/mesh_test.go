package peers

import (
	"reflect"
	"strings"
	"testing"
)

// meshFile is a file with networks a, b, c (one or two peers each) and the
// given interconnect section.
func meshFile(t *testing.T, interconnect string) *File {
	t.Helper()
	src := `overlay: {prefix: 10.77.0.0/16}
networks:
  a: {prefix: 10.77.1.0/24}
  b: {prefix: 10.77.2.0/24}
  c: {prefix: 10.77.3.0/24}
interconnect:
` + interconnect + `
peers:
  a-1: {network: a, address: 10.77.1.1, public_key: CBSFIqw2PIWKZNCUOSOWqKFJBIQs+G9L14LzdA5PT2I=}
  a-2: {network: a, address: 10.77.1.2, public_key: FyIvtONJzytbBHkgxKd3V7C9QKZbqesS9zYDJdwX/GQ=}
  b-1: {network: b, address: 10.77.2.1, public_key: eZ9K16lzsksfqtQ9DbOywwA4ImxEaCWdfoHt/kkAXDg=}
  c-1: {network: c, address: 10.77.3.1, public_key: jU0KhdVaPqbfkaIeGi7zeLYxOAQ3dEgHZbTV3kdTY0o=}
`
	f, err := Parse("mesh.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestMeshGaps(t *testing.T) {
	tests := []struct {
		name, rules string
		want        []Gap
	}{
		{"no rules: islands, no gap", "", nil},
		{"one bridge", "  - {from: b, to: a, ports: [erlang]}\n  - {from: b, to: c}", []Gap{{"a", "b", "c"}}},
		{"direction does not matter", "  - {from: a, to: b, ports: [erlang]}\n  - {from: c, to: b}", []Gap{{"a", "b", "c"}}},
		{"full mesh", "  - {between: [a, b]}\n  - {between: [b, c]}\n  - {from: c, to: a, ports: [erlang]}", nil},
		{"epmd alone is no reach", "  - {from: b, to: a, ports: [4369]}\n  - {from: b, to: c}", nil},
		{"a non-erlang port is no reach", "  - {from: b, to: a, ports: [9100]}\n  - {from: b, to: c}", nil},
		{"a peer named on its own", "  - {from: a-1, to: b}\n  - {from: b, to: c}",
			[]Gap{{"c", "b", "a-1"}, {"a", "a-1", "b"}}},
		{"two bridges", "  - {from: a, to: b}\n  - {from: a, to: c}",
			[]Gap{{"b", "a", "c"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := meshFile(t, tc.rules).MeshGaps()
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("MeshGaps() = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestMeshGapsNamedPeerWithFullNetwork(t *testing.T) {
	// a-1 is named (reaches b); a-2 is not: a-2 reaches neither. a-1 and a
	// share a network, so a <-> a-1, a-1 <-> b, not a <-> b: a gap.
	f := meshFile(t, "  - {from: a-1, to: b}")
	got := f.MeshGaps()
	want := []Gap{{"a", "a-1", "b"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("MeshGaps() = %v, want %v", got, want)
	}
	if !strings.Contains(f.Peers[0].Name, "a-1") {
		t.Fatal("fixture order changed")
	}
}
