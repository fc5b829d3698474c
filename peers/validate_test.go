package peers

import (
	"strings"
	"testing"
)

// base is a valid head of five lines; cases append to it, so the line
// numbers in their expectations count from 6.
const base = `overlay:
  prefix: 10.77.0.0/16
networks:
  payments: {prefix: 10.77.1.0/24}
  monitoring: {prefix: 10.77.2.0/24}
`

// pay1 is a valid peer of four lines.
const pay1 = `  pay-1:
    network: payments
    public_key: $K1
    address: 10.77.1.1
`

// TestValidation checks every validation rule by its exact message.
func TestValidation(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want string // every error, one per line
	}{
		// The file as a whole.
		{"syntax error", "overlay: [\n", `peers.yaml:1: did not find expected node content`},
		{"syntax error later", base + "peers:\n  a: b: c\n", `peers.yaml:7: mapping values are not allowed in this context`},
		{"empty", "", `peers.yaml: the file is empty`},
		{"only comments", "# nothing yet\n", `peers.yaml: the file is empty`},
		{"null document", "---\n", `peers.yaml: the file is empty`},
		{"two documents", base + "---\n" + base, `peers.yaml:6: a second YAML document; a peer file holds exactly one`},
		{"not a mapping", "- overlay\n", `peers.yaml:1: expected a mapping with overlay, networks, interconnect, tests, peers, serial and expires, got a list`},
		{"unknown section", base + "peer:\n" + pay1,
			`peers.yaml:6: peer: unknown field (expected overlay, networks, interconnect, tests, peers, serial or expires)`},
		{"duplicate section", base + "networks: {}\n", `peers.yaml:6: networks: defined twice (first at line 3)`},
		{"overlay missing", "networks: {}\n", `peers.yaml:1: overlay: missing`},
		{"merge key", base + "peers:\n  <<: {}\n", `peers.yaml:7: peers.<<: merge keys are not supported; write the fields out`},

		// serial: and expires:
		{"serial not a number", base + "serial: seven\n", `peers.yaml:6: serial: "seven" is not a whole number`},
		{"serial negative", base + "serial: -1\n", `peers.yaml:6: serial: "-1" is not a whole number`},
		{"serial too large", base + "serial: 18446744073709551616\n", `peers.yaml:6: serial: 18446744073709551616 is too large (at most 18446744073709551615)`},
		{"serial empty", base + "serial:\n", `peers.yaml:6: serial: has no value`},
		{"serial list", base + "serial: [1]\n", `peers.yaml:6: serial: expected a single value, got a list`},
		{"expires not a time", base + "expires: tomorrow\n",
			`peers.yaml:6: expires: "tomorrow" is not an RFC 3339 time like 2027-01-31T00:00:00Z`},
		{"expires without zone", base + "expires: 2027-01-31T00:00:00\n",
			`peers.yaml:6: expires: "2027-01-31T00:00:00" is not an RFC 3339 time like 2027-01-31T00:00:00Z`},

		// overlay:
		{"overlay not a mapping", "overlay: 10.77.0.0/16\n",
			`peers.yaml:1: overlay: expected a mapping with prefix, faces and port, got "10.77.0.0/16"`},
		{"overlay prefix missing", "overlay:\n  port: 51820\n", `peers.yaml:1: overlay.prefix: missing`},
		{"overlay prefix empty", "overlay:\n  prefix:\n", `peers.yaml:2: overlay.prefix: has no value`},
		{"overlay prefix not a prefix", "overlay:\n  prefix: 10.77.0.0\n",
			`peers.yaml:2: overlay.prefix: "10.77.0.0" is not a prefix like 10.77.0.0/16`},
		{"overlay prefix list", "overlay:\n  prefix: [10.77.0.0/16]\n",
			`peers.yaml:2: overlay.prefix: expected a single value, got a list`},
		{"overlay prefix IPv6", "overlay:\n  prefix: fd00:77::/64\n",
			`peers.yaml:2: overlay.prefix: fd00:77::/64 is IPv6; only IPv4 is supported`},
		{"overlay prefix not canonical", "overlay:\n  prefix: 10.77.1.5/16\n",
			`peers.yaml:2: overlay.prefix: 10.77.1.5/16 is not canonical; use 10.77.0.0/16`},
		{"overlay prefix loopback", "overlay:\n  prefix: 127.0.0.0/16\n",
			`peers.yaml:2: overlay.prefix: 127.0.0.0/16 overlaps 127.0.0.0/8; overlay addresses must not be loopback addresses`},
		{"overlay prefix too short", "overlay:\n  prefix: 8.0.0.0/7\n",
			`peers.yaml:2: overlay.prefix: 8.0.0.0/7 is too short: faces need a prefix of the same length inside 127.0.0.0/8, so use /8 or longer`},
		{"faces outside loopback", "overlay:\n  prefix: 10.77.0.0/16\n  faces: 10.78.0.0/16\n",
			`peers.yaml:3: overlay.faces: 10.78.0.0/16 is not inside 127.0.0.0/8`},
		{"faces wider than loopback", "overlay:\n  prefix: 10.77.0.0/16\n  faces: 96.0.0.0/3\n",
			`peers.yaml:3: overlay.faces: 96.0.0.0/3 is not inside 127.0.0.0/8`},
		{"faces other length", "overlay:\n  prefix: 10.77.0.0/16\n  faces: 127.77.0.0/24\n",
			`peers.yaml:3: overlay.faces: 127.77.0.0/24 must have the same length as overlay.prefix (/16)`},
		{"faces not canonical", "overlay:\n  prefix: 10.77.0.0/16\n  faces: 127.77.0.1/16\n",
			`peers.yaml:3: overlay.faces: 127.77.0.1/16 is not canonical; use 127.77.0.0/16`},
		{"faces IPv6", "overlay:\n  prefix: 10.77.0.0/16\n  faces: ::1/128\n",
			`peers.yaml:3: overlay.faces: ::1/128 is IPv6; only IPv4 is supported`},
		{"port zero", "overlay:\n  prefix: 10.77.0.0/16\n  port: 0\n", `peers.yaml:3: overlay.port: 0 is not a port (1-65535)`},
		{"port too big", "overlay:\n  prefix: 10.77.0.0/16\n  port: 65536\n", `peers.yaml:3: overlay.port: 65536 is not a port (1-65535)`},
		{"port negative", "overlay:\n  prefix: 10.77.0.0/16\n  port: -1\n", `peers.yaml:3: overlay.port: "-1" is not a port number`},
		{"port word", "overlay:\n  prefix: 10.77.0.0/16\n  port: wg\n", `peers.yaml:3: overlay.port: "wg" is not a port number`},
		{"port hex", "overlay:\n  prefix: 10.77.0.0/16\n  port: 0xCAFE\n", `peers.yaml:3: overlay.port: "0xCAFE" is not a port number`},
		{"port mapping", "overlay:\n  prefix: 10.77.0.0/16\n  port: {udp: 1}\n",
			`peers.yaml:3: overlay.port: expected a single value, got a mapping`},
		{"overlay unknown field", "overlay:\n  prefix: 10.77.0.0/16\n  mtu: 1420\n",
			`peers.yaml:3: overlay.mtu: unknown field (expected prefix, faces or port)`},
		{"overlay duplicate field", "overlay:\n  prefix: 10.77.0.0/16\n  prefix: 10.78.0.0/16\n",
			`peers.yaml:3: overlay.prefix: defined twice (first at line 2)`},

		// networks:
		{"networks a list", "overlay:\n  prefix: 10.77.0.0/16\nnetworks:\n  - payments\n",
			`peers.yaml:4: networks: expected a mapping, got a list`},
		{"network name", base + "  pay_ments: {prefix: 10.77.3.0/24}\n",
			`peers.yaml:6: networks.pay_ments: "pay_ments" contains '_'; names use letters, digits and '-'`},
		{"network name dash", base + "  -billing: {prefix: 10.77.3.0/24}\n",
			`peers.yaml:6: networks.-billing: "-billing" starts or ends with '-'`},
		{"network name long", base + "  " + strings.Repeat("n", 64) + ": {prefix: 10.77.3.0/24}\n",
			`peers.yaml:6: networks.` + strings.Repeat("n", 64) + `: "` + strings.Repeat("n", 64) + `" is longer than 63 characters`},
		{"network defined twice", base + "  payments: {prefix: 10.77.3.0/24}\n",
			`peers.yaml:6: networks.payments: defined twice (first at line 4)`},
		{"network names differ in case", base + "  Payments: {prefix: 10.77.3.0/24}\n",
			`peers.yaml:6: networks.Payments: name differs only in case from network payments (line 4); names are host names, which ignore case`},
		{"network not a mapping", base + "  billing: 10.77.3.0/24\n",
			`peers.yaml:6: networks.billing: expected a mapping with prefix, got "10.77.3.0/24"`},
		{"network prefix missing", base + "  billing: {}\n", `peers.yaml:6: networks.billing.prefix: missing`},
		{"network unknown field", base + "  billing: {prefix: 10.77.3.0/24, mtu: 1400}\n",
			`peers.yaml:6: networks.billing.mtu: unknown field (expected prefix)`},
		{"network prefix not canonical", base + "  billing: {prefix: 10.77.3.5/24}\n",
			`peers.yaml:6: networks.billing.prefix: 10.77.3.5/24 is not canonical; use 10.77.3.0/24`},
		{"network prefix outside overlay", base + "  billing: {prefix: 10.78.3.0/24}\n",
			`peers.yaml:6: networks.billing.prefix: 10.78.3.0/24 is outside overlay.prefix 10.77.0.0/16`},
		{"network prefix wider than overlay", base + "  billing: {prefix: 10.0.0.0/8}\n",
			`peers.yaml:6: networks.billing.prefix: 10.0.0.0/8 is outside overlay.prefix 10.77.0.0/16`},
		{"network prefix IPv6", base + "  billing: {prefix: \"fd00::/64\"}\n",
			`peers.yaml:6: networks.billing.prefix: fd00::/64 is IPv6; only IPv4 is supported`},
		{"networks overlap", base + "  billing: {prefix: 10.77.1.128/25}\n",
			`peers.yaml:6: networks.billing.prefix: 10.77.1.128/25 overlaps network payments (10.77.1.0/24, line 4)`},
		{"networks equal", base + "  billing: {prefix: 10.77.2.0/24}\n",
			`peers.yaml:6: networks.billing.prefix: 10.77.2.0/24 overlaps network monitoring (10.77.2.0/24, line 5)`},
		{"network contains earlier ones", base + "  billing: {prefix: 10.77.0.0/22}\n",
			`peers.yaml:6: networks.billing.prefix: 10.77.0.0/22 overlaps network payments (10.77.1.0/24, line 4)` + "\n" +
				`peers.yaml:6: networks.billing.prefix: 10.77.0.0/22 overlaps network monitoring (10.77.2.0/24, line 5)`},

		// peers:
		{"peers a list", base + "peers:\n  - pay-1\n", `peers.yaml:7: peers: expected a mapping, got a list`},
		{"peer not a mapping", base + "peers:\n  pay-1: 10.77.1.1\n",
			`peers.yaml:7: peers.pay-1: expected a mapping with network, public_key, address, endpoint, keepalive, expose, mode, tcp_endpoint and transport, got "10.77.1.1"`},
		{"peer empty", base + "peers:\n  pay-1:\n",
			"peers.yaml:7: peers.pay-1.network: missing\n" +
				"peers.yaml:7: peers.pay-1.public_key: missing\n" +
				"peers.yaml:7: peers.pay-1.address: missing"},
		{"peer name", base + "peers:\n  pay.1: {network: payments, public_key: $K1, address: 10.77.1.1}\n",
			`peers.yaml:7: peers.pay.1: "pay.1" contains '.'; names use letters, digits and '-'`},
		{"peer defined twice", base + "peers:\n" + pay1 + "  pay-1: {network: payments, public_key: $K2, address: 10.77.1.2}\n",
			`peers.yaml:11: peers.pay-1: defined twice (first at line 7)`},
		{"peer named like a network", base + "peers:\n  payments: {network: payments, public_key: $K1, address: 10.77.1.1}\n",
			`peers.yaml:7: peers.payments: name already used by network payments (line 4)`},
		{"network named like an earlier peer", "peers:\n  billing: {network: payments, public_key: $K1, address: 10.77.1.1}\n" + base + "  billing: {prefix: 10.77.3.0/24}\n",
			`peers.yaml:8: networks.billing: name already used by peer billing (line 2)`},
		{"peer names differ in case", base + "peers:\n" + pay1 + "  PAY-1: {network: payments, public_key: $K2, address: 10.77.1.2}\n",
			`peers.yaml:11: peers.PAY-1: name differs only in case from peer pay-1 (line 7); names are host names, which ignore case`},
		{"peer unknown field", base + "peers:\n" + pay1 + "    adress: 10.77.1.1\n",
			`peers.yaml:11: peers.pay-1.adress: unknown field (expected network, public_key, address, endpoint, keepalive, expose, mode, tcp_endpoint or transport)`},
		{"peer field twice", base + "peers:\n" + pay1 + "    address: 10.77.1.2\n",
			`peers.yaml:11: peers.pay-1.address: defined twice (first at line 10)`},
		{"peer network unknown", base + "peers:\n  pay-1: {network: paymentz, public_key: $K1, address: 10.77.1.1}\n",
			`peers.yaml:7: peers.pay-1.network: unknown network "paymentz"`},
		{"peer network case", base + "peers:\n  pay-1: {network: Payments, public_key: $K1, address: 10.77.1.1}\n",
			`peers.yaml:7: peers.pay-1.network: unknown network "Payments" (did you mean payments?)`},
		{"peer network a list", base + "peers:\n  pay-1: {network: [payments], public_key: $K1, address: 10.77.1.1}\n",
			`peers.yaml:7: peers.pay-1.network: expected a single value, got a list`},
		{"key not base64", base + "peers:\n  pay-1: {network: payments, public_key: not-a-key, address: 10.77.1.1}\n",
			"peers.yaml:7: peers.pay-1.public_key: \"not-a-key\" is not base64 (want 44 characters as `wg pubkey` prints)"},
		{"key short", base + "peers:\n  pay-1: {network: payments, public_key: AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==, address: 10.77.1.1}\n",
			`peers.yaml:7: peers.pay-1.public_key: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==" is 31 bytes, want 32`},
		{"key zero", base + "peers:\n  pay-1: {network: payments, public_key: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=, address: 10.77.1.1}\n",
			`peers.yaml:7: peers.pay-1.public_key: the all-zero key is not a valid key`},
		{"key used twice", base + "peers:\n" + pay1 + "  pay-2: {network: payments, public_key: $K1, address: 10.77.1.2}\n",
			`peers.yaml:11: peers.pay-2.public_key: same key as peer pay-1 (line 7)`},
		{"address not an address", base + "peers:\n  pay-1: {network: payments, public_key: $K1, address: 10.77.1}\n",
			`peers.yaml:7: peers.pay-1.address: "10.77.1" is not an IPv4 address`},
		{"address a prefix", base + "peers:\n  pay-1: {network: payments, public_key: $K1, address: 10.77.1.1/32}\n",
			`peers.yaml:7: peers.pay-1.address: "10.77.1.1/32" is not an IPv4 address`},
		{"address IPv6", base + "peers:\n  pay-1: {network: payments, public_key: $K1, address: \"fd00::1\"}\n",
			`peers.yaml:7: peers.pay-1.address: fd00::1 is IPv6; only IPv4 is supported`},
		{"address outside network", base + "peers:\n" + pay1 + "  pay-2:\n    network: payments\n    public_key: $K2\n    address: 10.77.2.9\n",
			`peers.yaml:14: peers.pay-2.address: 10.77.2.9 is outside network payments (10.77.1.0/24)`},
		{"address is network address", base + "peers:\n  pay-1: {network: payments, public_key: $K1, address: 10.77.1.0}\n",
			`peers.yaml:7: peers.pay-1.address: 10.77.1.0 is the network address of payments (10.77.1.0/24)`},
		{"address used twice", base + "peers:\n" + pay1 + "  pay-2: {network: payments, public_key: $K2, address: 10.77.1.1}\n",
			`peers.yaml:11: peers.pay-2.address: 10.77.1.1 is already the address of peer pay-1 (line 7)`},
		{"face is 127.0.0.1", "overlay: {prefix: 10.0.0.0/16}\nnetworks:\n  a: {prefix: 10.0.0.0/24}\npeers:\n  a-1: {network: a, public_key: $K1, address: 10.0.0.1}\n",
			`peers.yaml:5: peers.a-1.address: 10.0.0.1 would have face 127.0.0.1, the host's own loopback address; pick another address`},
		{"face is 127.255.255.255", "overlay: {prefix: 10.0.0.0/8}\nnetworks:\n  a: {prefix: 10.255.255.0/24}\npeers:\n  a-1: {network: a, public_key: $K1, address: 10.255.255.255}\n",
			`peers.yaml:5: peers.a-1.address: 10.255.255.255 would have face 127.255.255.255, the broadcast address of 127.0.0.0/8; pick another address`},
		{"tcp_endpoint bad port", base + "peers:\n" + pay1 + "    tcp_endpoint: \"host:99999\"\n",
			`peers.yaml:11: peers.pay-1.tcp_endpoint: "host:99999": port must be 1-65535`},
		{"transport unknown", base + "peers:\n" + pay1 + "    tcp_endpoint: host\n    transport: quic\n",
			`peers.yaml:12: peers.pay-1.transport: "quic" is not a transport: want auto or tcp`},
		{"transport tcp without tcp_endpoint", base + "peers:\n" + pay1 + "    transport: tcp\n",
			`peers.yaml:11: peers.pay-1.transport: tcp needs a tcp_endpoint to dial`},
		{"endpoint empty", base + "peers:\n" + pay1 + "    endpoint: \"\"\n",
			`peers.yaml:11: peers.pay-1.endpoint: empty endpoint; leave it out if the peer has none`},
		{"endpoint null", base + "peers:\n" + pay1 + "    endpoint:\n",
			`peers.yaml:11: peers.pay-1.endpoint: has no value`},
		{"endpoint empty host", base + "peers:\n" + pay1 + "    endpoint: \":51820\"\n",
			`peers.yaml:11: peers.pay-1.endpoint: ":51820" has an empty host`},
		{"endpoint empty port", base + "peers:\n" + pay1 + "    endpoint: \"pay-1.example.net:\"\n",
			`peers.yaml:11: peers.pay-1.endpoint: "pay-1.example.net:" has an empty port; leave out the colon to use overlay.port`},
		{"endpoint port zero", base + "peers:\n" + pay1 + "    endpoint: pay-1.example.net:0\n",
			`peers.yaml:11: peers.pay-1.endpoint: "pay-1.example.net:0": port must be 1-65535`},
		{"endpoint port too big", base + "peers:\n" + pay1 + "    endpoint: 192.0.2.1:65536\n",
			`peers.yaml:11: peers.pay-1.endpoint: "192.0.2.1:65536": port must be 1-65535`},
		{"endpoint port word", base + "peers:\n" + pay1 + "    endpoint: pay-1.example.net:wireguard\n",
			`peers.yaml:11: peers.pay-1.endpoint: "pay-1.example.net:wireguard": port must be 1-65535`},
		{"endpoint two colons", base + "peers:\n" + pay1 + "    endpoint: a:1:2\n",
			`peers.yaml:11: peers.pay-1.endpoint: "a:1:2" is not host:port`},
		{"endpoint spaces", base + "peers:\n" + pay1 + "    endpoint: pay 1.example.net\n",
			`peers.yaml:11: peers.pay-1.endpoint: "pay 1.example.net" contains spaces`},
		{"endpoint bad host", base + "peers:\n" + pay1 + "    endpoint: pay/1.example.net\n",
			`peers.yaml:11: peers.pay-1.endpoint: "pay/1.example.net": "pay/1.example.net" is not a host name or IP address`},
		{"endpoint bad IPv4", base + "peers:\n" + pay1 + "    endpoint: 192.0.2.300:51820\n",
			`peers.yaml:11: peers.pay-1.endpoint: "192.0.2.300:51820": "192.0.2.300" is not a valid IP address`},
		{"endpoint name in brackets", base + "peers:\n" + pay1 + "    endpoint: \"[pay-1.example.net]:51820\"\n",
			`peers.yaml:11: peers.pay-1.endpoint: "[pay-1.example.net]:51820": only IPv6 addresses go in brackets`},
		{"keepalive negative", base + "peers:\n" + pay1 + "    keepalive: -5s\n",
			`peers.yaml:11: peers.pay-1.keepalive: -5s is negative`},
		{"keepalive no unit", base + "peers:\n" + pay1 + "    keepalive: 25\n",
			`peers.yaml:11: peers.pay-1.keepalive: "25" is not a duration like 25s`},
		{"keepalive word", base + "peers:\n" + pay1 + "    keepalive: often\n",
			`peers.yaml:11: peers.pay-1.keepalive: "often" is not a duration like 25s`},
		{"keepalive fraction", base + "peers:\n" + pay1 + "    keepalive: 1500ms\n",
			`peers.yaml:11: peers.pay-1.keepalive: 1500ms is not a whole number of seconds, which WireGuard needs`},
		{"keepalive too long", base + "peers:\n" + pay1 + "    keepalive: 24h\n",
			`peers.yaml:11: peers.pay-1.keepalive: 24h is longer than WireGuard's limit of 65535s`},
		{"expose not a list", base + "peers:\n" + pay1 + "    expose: 9100\n",
			`peers.yaml:11: peers.pay-1.expose: expected a list, got "9100"`},
		{"expose zero", base + "peers:\n" + pay1 + "    expose: [0]\n",
			`peers.yaml:11: peers.pay-1.expose[0]: 0 is not a port (1-65535)`},
		{"expose too big", base + "peers:\n" + pay1 + "    expose: [8080, 65536]\n",
			`peers.yaml:11: peers.pay-1.expose[1]: 65536 is not a port (1-65535)`},
		{"expose reversed", base + "peers:\n" + pay1 + "    expose: [8090-8080]\n",
			`peers.yaml:11: peers.pay-1.expose[0]: range 8090-8080 is reversed; write 8080-8090`},
		{"expose half range", base + "peers:\n" + pay1 + "    expose: [8080-]\n",
			`peers.yaml:11: peers.pay-1.expose[0]: "8080-" is not a port range like 9100-9199`},
		{"expose word", base + "peers:\n" + pay1 + "    expose: [http]\n",
			`peers.yaml:11: peers.pay-1.expose[0]: unknown port "http" (use a number or a range like 9100-9199)`},
		{"expose erlang", base + "peers:\n" + pay1 + "    expose: [erlang]\n",
			`peers.yaml:11: peers.pay-1.expose[0]: erlang is not needed here: Erlang's ports are always offered`},
		{"expose nested list", base + "peers:\n" + pay1 + "    expose: [[80]]\n",
			`peers.yaml:11: peers.pay-1.expose[0]: expected a single value, got a list`},

		// interconnect:
		{"interconnect a mapping", base + "interconnect:\n  from: monitoring\n",
			`peers.yaml:7: interconnect: expected a list, got a mapping`},
		{"rule not a mapping", base + "interconnect:\n  - monitoring -> payments\n",
			`peers.yaml:7: interconnect[0]: expected a mapping with from, to, between, ports and nodes, got "monitoring -> payments"`},
		{"rule empty", base + "interconnect:\n  - {}\n", `peers.yaml:7: interconnect[0]: needs from and to, or between`},
		{"rule both forms", base + "interconnect:\n  - {from: monitoring, to: payments, between: [monitoring, payments]}\n",
			`peers.yaml:7: interconnect[0]: use either from and to, or between, not both`},
		{"rule without to", base + "interconnect:\n  - from: monitoring\n", `peers.yaml:7: interconnect[0].to: missing`},
		{"rule without from", base + "interconnect:\n  - to: monitoring\n", `peers.yaml:7: interconnect[0].from: missing`},
		{"rule unknown from", base + "interconnect:\n  - from: monitorin\n    to: payments\n",
			`peers.yaml:7: interconnect[0].from: unknown network or peer "monitorin"`},
		{"rule unknown to", base + "interconnect:\n  - from: monitoring\n    to: Payments\n",
			`peers.yaml:8: interconnect[0].to: unknown network or peer "Payments" (did you mean payments?)`},
		{"rule to a list", base + "interconnect:\n  - from: monitoring\n    to: [payments]\n",
			`peers.yaml:8: interconnect[0].to: expected a single value, got a list`},
		{"between one name", base + "interconnect:\n  - between: [payments]\n",
			`peers.yaml:7: interconnect[0].between: expected two names, got 1`},
		{"between three names", base + "interconnect:\n  - between: [payments, monitoring, payments]\n",
			`peers.yaml:7: interconnect[0].between: expected two names, got 3`},
		{"between a name", base + "interconnect:\n  - between: payments\n",
			`peers.yaml:7: interconnect[0].between: expected a list, got "payments"`},
		{"between unknown", base + "interconnect:\n  - between: [payments, billing]\n",
			`peers.yaml:7: interconnect[0].between[1]: unknown network or peer "billing"`},
		{"rule unknown field", base + "interconnect:\n  - {from: monitoring, to: payments, port: 4369}\n",
			`peers.yaml:7: interconnect[0].port: unknown field (expected from, to, between, ports or nodes)`},
		{"ports empty", base + "interconnect:\n  - {from: monitoring, to: payments, ports: []}\n",
			`peers.yaml:7: interconnect[0].ports: empty list allows nothing; leave ports out to allow every port`},
		{"ports not a list", base + "interconnect:\n  - {from: monitoring, to: payments, ports: 4369}\n",
			`peers.yaml:7: interconnect[0].ports: expected a list, got "4369"`},
		{"ports bad", base + "interconnect:\n  - from: monitoring\n    to: payments\n    ports: [erlang, 0, 9199-9100, epmd, 70000, 1-2-3]\n",
			"peers.yaml:9: interconnect[0].ports[1]: 0 is not a port (1-65535)\n" +
				"peers.yaml:9: interconnect[0].ports[2]: range 9199-9100 is reversed; write 9100-9199\n" +
				"peers.yaml:9: interconnect[0].ports[3]: unknown port \"epmd\" (use a number, a range like 9100-9199, or erlang)\n" +
				"peers.yaml:9: interconnect[0].ports[4]: 70000 is not a port (1-65535)\n" +
				"peers.yaml:9: interconnect[0].ports[5]: \"1-2-3\" is not a port range like 9100-9199"},

		// tests:
		{"tests a mapping", base + "tests:\n  from: a\n", `peers.yaml:7: tests: expected a list, got a mapping`},
		{"test empty", base + "peers:\n" + pay1 + "tests:\n  - {}\n",
			"peers.yaml:12: tests[0].from: missing\n" +
				"peers.yaml:12: tests[0].to: missing\n" +
				"peers.yaml:12: tests[0].port: missing\n" +
				"peers.yaml:12: tests[0].expect: missing"},
		{"test unknown field", base + "peers:\n" + pay1 + "tests:\n  - {from: pay-1, to: pay-1, port: 1, expect: allow, erlang: true}\n",
			`peers.yaml:12: tests[0].erlang: unknown field (expected from, to, port, expect or node)`},
		{"test unknown peer", base + "peers:\n" + pay1 + "tests:\n  - {from: pay-2, to: pay-1, port: 4369, expect: allow}\n",
			`peers.yaml:12: tests[0].from: unknown peer "pay-2"`},
		{"test names a network", base + "peers:\n" + pay1 + "tests:\n  - {from: pay-1, to: monitoring, port: 4369, expect: deny}\n",
			`peers.yaml:12: tests[0].to: "monitoring" is a network; tests name peers`},
		{"test port", base + "peers:\n" + pay1 + "tests:\n  - {from: pay-1, to: pay-1, port: 9100-9199, expect: allow}\n",
			`peers.yaml:12: tests[0].port: "9100-9199" is not a port number`},
		{"test expect", base + "peers:\n" + pay1 + "tests:\n  - {from: pay-1, to: pay-1, port: 4369, expect: maybe}\n",
			`peers.yaml:12: tests[0].expect: "maybe" must be allow or deny`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseErr(t, tt.src); got != tt.want {
				t.Errorf("errors:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

// twoNets is a valid file with a peer in each of two networks and a rule;
// tests are appended at line 20.
const twoNets = `overlay:
  prefix: 10.77.0.0/16
networks:
  payments: {prefix: 10.77.1.0/24}
  monitoring: {prefix: 10.77.2.0/24}
interconnect:
  - from: monitoring
    to: payments
    ports: [erlang]
peers:
  pay-1:
    network: payments
    public_key: $K1
    address: 10.77.1.1
  mon-1:
    network: monitoring
    public_key: $K2
    address: 10.77.2.1
tests:
`

func TestFileTests(t *testing.T) {
	tests := []struct {
		name, tests, want string
	}{
		{"passing", "  - {from: mon-1, to: pay-1, port: 4369, expect: allow}\n  - {from: pay-1, to: mon-1, port: 4369, expect: deny}\n", ""},
		{"rule allows", "  - {from: mon-1, to: pay-1, port: 4369, expect: allow}\n  - {from: pay-1, to: mon-1, port: 4369, expect: allow}\n",
			`peers.yaml:21: tests[1]: pay-1 -> mon-1 port 4369: expected allow, got deny (default)`},
		{"rule denies", "  - {from: mon-1, to: pay-1, port: 4369, expect: deny}\n",
			`peers.yaml:20: tests[0]: mon-1 -> pay-1 port 4369: expected deny, got allow (rule peers.yaml:7)`},
		{"dist ports are not known at load", "  - {from: mon-1, to: pay-1, port: 9100, expect: allow}\n",
			`peers.yaml:20: tests[0]: mon-1 -> pay-1 port 9100: expected allow, got deny (default)`},
		{"self", "  - {from: pay-1, to: pay-1, port: 22, expect: deny}\n",
			`peers.yaml:20: tests[0]: pay-1 -> pay-1 port 22: expected deny, got allow (self)`},
		{"every failure", "  - {from: mon-1, to: pay-1, port: 4369, expect: deny}\n  - from: pay-1\n    to: mon-1\n    port: 4369\n    expect: allow\n",
			"peers.yaml:20: tests[0]: mon-1 -> pay-1 port 4369: expected deny, got allow (rule peers.yaml:7)\n" +
				"peers.yaml:21: tests[1]: pay-1 -> mon-1 port 4369: expected allow, got deny (default)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := Parse("peers.yaml", []byte(keys.Replace(twoNets+tt.tests)))
			got := ""
			if err != nil {
				got = err.Error()
			}
			if got != tt.want {
				t.Errorf("errors:\n%s\nwant:\n%s", got, tt.want)
			}
			if (f == nil) == (tt.want == "") {
				t.Errorf("File = %v with errors %q", f, got)
			}
		})
	}
}

// TestFileTestsSameNetwork checks the reason a same-network failure gives.
func TestFileTestsSameNetwork(t *testing.T) {
	src := base + "peers:\n" + pay1 + "  pay-2: {network: payments, public_key: $K2, address: 10.77.1.2}\ntests:\n  - {from: pay-1, to: pay-2, port: 22, expect: deny}\n"
	want := `peers.yaml:13: tests[0]: pay-1 -> pay-2 port 22: expected deny, got allow (same network payments)`
	if got := parseErr(t, src); got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
}

// TestTestsSkippedWhenPolicyBroken: with a rule dropped, test failures
// would be noise, so only the rule's error is reported.
func TestTestsSkippedWhenPolicyBroken(t *testing.T) {
	src := strings.Replace(twoNets, "to: payments", "to: paymentz", 1) + "  - {from: mon-1, to: pay-1, port: 4369, expect: allow}\n"
	want := `peers.yaml:8: interconnect[0].to: unknown network or peer "paymentz"`
	if got := parseErr(t, src); got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
}

// TestEveryError: problems in every section are all reported, in line order.
func TestEveryError(t *testing.T) {
	src := `overlay:
  prefix: 10.77.0.0/16
  port: 0
peers:
  pay-1: {network: payments, public_key: $K1, address: 10.77.2.1}
  pay-2: {network: payments, public_key: $K1, address: 10.77.1.2, keepalive: 1y}
networks:
  payments: {prefix: 10.77.1.0/24}
interconnect:
  - from: nobody
    to: payments
`
	want := `peers.yaml:3: overlay.port: 0 is not a port (1-65535)
peers.yaml:5: peers.pay-1.address: 10.77.2.1 is outside network payments (10.77.1.0/24)
peers.yaml:6: peers.pay-2.public_key: same key as peer pay-1 (line 5)
peers.yaml:6: peers.pay-2.keepalive: "1y" is not a duration like 25s
peers.yaml:10: interconnect[0].from: unknown network or peer "nobody"`
	if got := parseErr(t, src); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestErrorFormat(t *testing.T) {
	tests := []struct {
		e    Error
		want string
	}{
		{Error{"peers.yaml", 14, "peers.pay-2.address", "10.77.2.9 is outside network payments (10.77.1.0/24)"},
			"peers.yaml:14: peers.pay-2.address: 10.77.2.9 is outside network payments (10.77.1.0/24)"},
		{Error{"peers.yaml", 3, "", "did not find expected key"}, "peers.yaml:3: did not find expected key"},
		{Error{"peers.yaml", 0, "", "the file is empty"}, "peers.yaml: the file is empty"},
	}
	for _, tt := range tests {
		if got := tt.e.Error(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
	es := Errors{&tests[0].e, &tests[1].e}
	if got, want := es.Error(), tests[0].want+"\n"+tests[1].want; got != want {
		t.Errorf("Errors.Error() = %q, want %q", got, want)
	}
}

func TestCheckName(t *testing.T) {
	for _, ok := range []string{"a", "pay-1", "PAY-1", "1", "a-b-c", strings.Repeat("x", 63)} {
		if err := CheckName(ok); err != nil {
			t.Errorf("CheckName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "-a", "a-", "a_b", "a.b", "a b", "ä", strings.Repeat("x", 64)} {
		if err := CheckName(bad); err == nil {
			t.Errorf("CheckName(%q) = nil", bad)
		}
	}
}

func TestPeerMode(t *testing.T) {
	tests := []struct {
		mode, want, err string
	}{
		{"", "userspace", ""},
		{"mode: tun", "tun", ""},
		{"mode: wireguard", "wireguard", ""},
		{"mode: userspace", "userspace", ""},
		{"mode: kernel", "", `peers.yaml:11: peers.pay-1.mode: "kernel" is not a mode: want userspace, tun or wireguard`},
	}
	for _, tt := range tests {
		text := "overlay: {prefix: 10.77.0.0/16}\nnetworks:\n  payments: {prefix: 10.77.1.0/24}\n\n\n\n\npeers:\n  pay-1:\n    network: payments\n    " +
			tt.mode + "\n    public_key: PC47v7lOMJUMJjDA+Xn1V2QIT6eNV7rL7IRihBgjBDQ=\n    address: 10.77.1.1\n"
		f, err := Parse("peers.yaml", []byte(text))
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("%q: error %v, want %s", tt.mode, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v", tt.mode, err)
		}
		if got := f.Peer("pay-1").Mode.String(); got != tt.want {
			t.Errorf("%q: mode %s, want %s", tt.mode, got, tt.want)
		}
	}
}
