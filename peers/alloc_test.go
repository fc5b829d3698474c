package peers

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

func TestNextAddress(t *testing.T) {
	tests := []struct {
		name, src, network, want string
	}{
		{"empty network", base, "payments", "10.77.1.1"},
		{"skips used", base + "peers:\n" + pay1, "payments", "10.77.1.2"},
		{"fills a gap", base + "peers:\n" + pay1 + "  pay-3: {network: payments, public_key: $K2, address: 10.77.1.3}\n", "payments", "10.77.1.2"},
		{"case ignored", base, "Monitoring", "10.77.2.1"},
		{"skips the face 127.0.0.1", "overlay: {prefix: 10.0.0.0/16}\nnetworks:\n  n: {prefix: 10.0.0.0/24}\n", "n", "10.0.0.2"},
		{"wide network", "overlay: {prefix: 10.0.0.0/8}\nnetworks:\n  n: {prefix: 10.1.0.0/16}\n", "n", "10.1.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mustParse(t, tt.src)
			got, err := f.NextAddress(tt.network)
			if err != nil || got.String() != tt.want {
				t.Errorf("NextAddress(%s) = %s, %v; want %s", tt.network, got, err, tt.want)
			}
		})
	}
}

func TestNextAddressFull(t *testing.T) {
	// A /30 holds two peers: .0 is the network and .3 the last address.
	src := base + "  small: {prefix: 10.77.3.0/30}\npeers:\n" +
		"  s-1: {network: small, public_key: $K1, address: 10.77.3.1}\n" +
		"  s-2: {network: small, public_key: $K2, address: 10.77.3.2}\n"
	f := mustParse(t, src)
	if a, err := f.NextAddress("small"); err == nil || err.Error() != "network small (10.77.3.0/30) has no free address" {
		t.Errorf("NextAddress(small) = %s, %v", a, err)
	}
	if a, err := f.NextAddress("nowhere"); err == nil || err.Error() != `unknown network "nowhere"` {
		t.Errorf("NextAddress(nowhere) = %s, %v", a, err)
	}
	// The last address is never handed out, though a file may use it.
	f = mustParse(t, base+"  tiny: {prefix: 10.77.3.0/31}\n")
	if a, err := f.NextAddress("tiny"); err == nil {
		t.Errorf("NextAddress(tiny) = %s", a)
	}
}

// TestNextAddressFillsNetwork allocates a whole /26 and checks that each
// address parses back into a valid file.
func TestNextAddressFillsNetwork(t *testing.T) {
	var b strings.Builder
	b.WriteString(base + "  small: {prefix: 10.77.3.64/26}\npeers:\n")
	f := mustParse(t, b.String())
	for i := 0; ; i++ {
		a, err := f.NextAddress("small")
		if err != nil {
			if i != 62 { // .65 to .126
				t.Fatalf("network full after %d peers: %v", i, err)
			}
			break
		}
		fmt.Fprintf(&b, "  p%d: {network: small, public_key: %s, address: %s}\n", i, testKey(i), a)
		f = mustParse(t, b.String())
	}
}

// testKey is a distinct valid key for each i.
func testKey(i int) Key {
	var k Key
	k[0], k[1], k[2], k[31] = byte(i), byte(i>>8), byte(i>>16), 1
	return k
}

func TestNextNetworkPrefix(t *testing.T) {
	tests := []struct {
		name, src string
		bits      int
		want      string
	}{
		{"empty overlay", "overlay: {prefix: 10.77.0.0/16}\n", 24, "10.77.0.0/24"},
		{"after existing", base, 24, "10.77.0.0/24"},
		{"skips taken", base + "  zero: {prefix: 10.77.0.0/24}\n", 24, "10.77.3.0/24"},
		{"aligned after a /23", "overlay: {prefix: 10.77.0.0/16}\nnetworks:\n  a: {prefix: 10.77.0.0/25}\n", 23, "10.77.2.0/23"},
		{"in a gap", "overlay: {prefix: 10.77.0.0/16}\nnetworks:\n  a: {prefix: 10.77.0.0/25}\n  b: {prefix: 10.77.1.0/24}\n", 25, "10.77.0.128/25"},
		{"contained", "overlay: {prefix: 10.77.0.0/16}\nnetworks:\n  a: {prefix: 10.77.0.0/20}\n", 24, "10.77.16.0/24"},
		{"whole overlay", "overlay: {prefix: 10.77.0.0/16}\n", 16, "10.77.0.0/16"},
		{"single address", "overlay: {prefix: 10.77.0.0/16}\nnetworks:\n  a: {prefix: 10.77.0.0/32}\n", 32, "10.77.0.1/32"},
		{"top of the address space", "overlay: {prefix: 255.255.255.0/24}\nnetworks:\n  a: {prefix: 255.255.255.0/25}\n", 25, "255.255.255.128/25"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := mustParse(t, tt.src)
			got, err := f.NextNetworkPrefix(tt.bits)
			if err != nil || got.String() != tt.want {
				t.Errorf("NextNetworkPrefix(%d) = %s, %v; want %s", tt.bits, got, err, tt.want)
			}
		})
	}
}

func TestNextNetworkPrefixErrors(t *testing.T) {
	f := mustParse(t, "overlay: {prefix: 10.77.0.0/16}\nnetworks:\n  a: {prefix: 10.77.0.0/17}\n  b: {prefix: 10.77.128.0/17}\n")
	for bits, want := range map[int]string{
		24: "no free /24 left in overlay 10.77.0.0/16",
		16: "no free /16 left in overlay 10.77.0.0/16",
		15: "/15 does not fit in overlay 10.77.0.0/16 (use /16 to /32)",
		33: "/33 does not fit in overlay 10.77.0.0/16 (use /16 to /32)",
	} {
		if got, err := f.NextNetworkPrefix(bits); err == nil || err.Error() != want {
			t.Errorf("NextNetworkPrefix(%d) = %s, %v; want %s", bits, got, err, want)
		}
	}
	if _, err := (&File{}).NextNetworkPrefix(24); err == nil {
		t.Error("NextNetworkPrefix on an empty File succeeded")
	}
}

// TestNextNetworkPrefixFillsOverlay allocates every /24 of a /20 and checks
// each parses back without overlaps.
func TestNextNetworkPrefixFillsOverlay(t *testing.T) {
	src := "overlay: {prefix: 10.77.0.0/20}\nnetworks:\n  odd: {prefix: 10.77.5.0/24}\n"
	f := mustParse(t, src)
	seen := map[netip.Prefix]bool{}
	for i := 0; ; i++ {
		p, err := f.NextNetworkPrefix(24)
		if err != nil {
			if i != 15 {
				t.Fatalf("overlay full after %d networks: %v", i, err)
			}
			break
		}
		if seen[p] {
			t.Fatalf("%s handed out twice", p)
		}
		seen[p] = true
		src += fmt.Sprintf("  n%d: {prefix: %s}\n", i, p)
		f = mustParse(t, src)
	}
}
