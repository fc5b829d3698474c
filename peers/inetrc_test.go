package peers

import (
	"strings"
	"testing"
)

func TestInetrc(t *testing.T) {
	text := "overlay: {prefix: 10.77.0.0/16}\nnetworks:\n  payments: {prefix: 10.77.1.0/24}\n  monitoring: {prefix: 10.77.2.0/24}\npeers:\n" +
		"  pay-1: {network: payments, public_key: PC47v7lOMJUMJjDA+Xn1V2QIT6eNV7rL7IRihBgjBDQ=, address: 10.77.1.1}\n" +
		"  mon-1: {network: monitoring, public_key: D6tQ9iI2HkwXf32P8Z7VzO2JIuNWuP4uDuWjBI2yfHY=, address: 10.77.2.1, mode: tun}\n"
	f, err := Parse("peers.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		mode   Mode
		domain string
		want   []string
	}{
		{ModeUserspace, "nodewire", []string{`{host, {127,77,1,1}, ["pay-1.nodewire"]}.`, `{host, {127,77,2,1}, ["mon-1.nodewire"]}.`}},
		{ModeTUN, "nodewire", []string{`{host, {10,77,1,1}, ["pay-1.nodewire"]}.`, `{host, {10,77,2,1}, ["mon-1.nodewire"]}.`}},
		{ModeWireGuard, "ov.example", []string{`{host, {10,77,1,1}, ["pay-1.ov.example"]}.`}},
	}
	for _, tt := range tests {
		got := string(f.Inetrc(f.Peer("pay-1"), tt.mode, tt.domain))
		lines := strings.Split(strings.TrimSpace(got), "\n")
		if !strings.HasPrefix(lines[0], "%") || lines[1] != "{lookup, [file, native]}." {
			t.Errorf("%s: header:\n%s", tt.mode, got)
		}
		for _, w := range tt.want {
			if !strings.Contains(got, w+"\n") {
				t.Errorf("%s: lacks %s:\n%s", tt.mode, w, got)
			}
		}
	}
	for _, bad := range []string{"", "Nodewire", "a..b", "-a", "a_b"} {
		if CheckDomain(bad) == nil {
			t.Errorf("domain %q accepted", bad)
		}
	}
	if err := CheckDomain("overlay.example"); err != nil {
		t.Error(err)
	}
}
