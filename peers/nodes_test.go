package peers

import (
	"os"
	"strings"
	"testing"
)

func TestDecideNode(t *testing.T) {
	f, err := Load("testdata/valid/nodes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// A later rule that names the node wins over an earlier one that does not.
	g, err := Parse("later.yaml", []byte(strings.Replace(strings.Replace(string(mustRead(t, "testdata/valid/nodes.yaml")),
		"  - between: [billing, payments]\n    nodes: [\"*\"]\n",
		"  - between: [billing, payments]\n    nodes: [\"*\"]\n  - from: mon-1\n    to: payments\n    ports: [erlang]\n    nodes: [app]\n", 1),
		"  - {from: mon-1, to: pay-1, port: 4369, node: app, expect: deny}\n", "", 1)))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		f          *File
		from, to   string
		port       uint16
		node       string
		allow      bool
		reason     Reason
		line       int
		wantString string
	}{
		{f, "mon-1", "pay-1", 4369, "metrics", true, ReasonRule, 11, "allow rule testdata/valid/nodes.yaml:11 (monitoring -> payments ports [erlang, 9100] nodes [metrics, web*])"},
		{f, "mon-1", "pay-1", 4369, "web-1", true, ReasonRule, 11, ""},
		{f, "mon-1", "pay-1", 4369, "Metrics", false, ReasonNode, 11, ""},
		{f, "mon-1", "pay-1", 4369, "app", false, ReasonNode, 11,
			"deny node app (rule testdata/valid/nodes.yaml:11 (monitoring -> payments ports [erlang, 9100] nodes [metrics, web*]) allows the port but not this node)"},
		{f, "mon-1", "pay-1", 40000, "app", false, ReasonNode, 11, ""},
		{f, "mon-1", "pay-1", 40000, "", true, ReasonRule, 11, ""}, // name not known yet
		{f, "pay-1", "mon-1", 4369, "metrics", false, ReasonDefault, 0,
			"deny default (no rule allows payments -> monitoring port 4369 node metrics)"},
		{f, "bill-1", "pay-1", 4369, "app", true, ReasonRule, 15, ""},
		{f, "pay-1", "bill-1", 41000, "anything", true, ReasonRule, 15, ""},
		{f, "pay-1", "pay-1", 41000, "app", true, ReasonSelf, 0, ""},
		{g, "mon-1", "pay-1", 4369, "app", true, ReasonRule, 17, ""},
		{g, "mon-1", "pay-1", 4369, "secret", false, ReasonNode, 11, ""},
	}
	for _, tc := range tests {
		from, to := tc.f.Peer(tc.from), tc.f.Peer(tc.to)
		d := tc.f.DecideNode(from, to, tc.port, tc.node)
		line := 0
		if d.Rule != nil {
			line = d.Rule.Line
		}
		if d.Allow != tc.allow || d.Reason != tc.reason || line != tc.line {
			t.Errorf("%s -> %s %d node %q: %v (reason %v, line %d), want allow=%v reason %v line %d",
				tc.from, tc.to, tc.port, tc.node, d.Allow, d.Reason, line, tc.allow, tc.reason, tc.line)
		}
		if tc.wantString != "" && d.String() != tc.wantString {
			t.Errorf("String:\n got %s\nwant %s", d, tc.wantString)
		}
	}
}

func TestAllowsNode(t *testing.T) {
	r := &Rule{Nodes: []string{"metrics", "web*", "db?"}}
	for name, want := range map[string]bool{
		"metrics": true, "web": true, "web-eu-1": true, "db1": true, "db": false, "db12": false,
		"metrics2": false, "app": false, "": false,
	} {
		if got := r.AllowsNode(name); got != want {
			t.Errorf("AllowsNode(%q) = %v, want %v", name, got, want)
		}
	}
	if !(&Rule{}).AllowsNode("anything") {
		t.Error("a rule without nodes must allow every node")
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
