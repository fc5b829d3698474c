package etcdsource

import (
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/nodewire/nodewire/overlay/etcdsource/etcdtest"
)

func startEtcd(t *testing.T) *etcdServer { return &etcdServer{etcdtest.Start(t)} }

type etcdServer struct{ *etcdtest.Server }

func (e *etcdServer) client() *clientv3.Client { return e.Client() }
func (e *etcdServer) stop()                    { e.Stop() }
func (e *etcdServer) start()                   { e.Restart() }
func (e *etcdServer) target(key string) Target {
	return Target{Endpoints: []string{e.Addr}, Key: key}
}

func TestParseTarget(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{in: "etcd://10.0.0.1:2379/nodewire/peers", want: "etcd://10.0.0.1:2379/nodewire/peers"},
		{in: "etcd://a:1,b:2/k", want: "etcd://a:1,b:2/k"},
		{in: "etcds://[::1]:2379/k", want: "etcds://[::1]:2379/k"},
		{in: "http://a:1/k", err: "want etcd://"},
		{in: "etcd://a:1", err: "no key"},
		{in: "etcd://a:1/", err: "no key"},
		{in: "etcd://a/k", err: `endpoint "a"`},
		{in: "etcd://a:1,/k", err: `endpoint ""`},
		{in: "etcd://a:1/k?ca=x", err: "may not contain"},
	} {
		got, err := ParseTarget(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseTarget(%q) = %v, %v; want error containing %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || got.String() != tc.want {
			t.Errorf("ParseTarget(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
	if tg, _ := ParseTarget("etcds://a:1/k"); !tg.TLS {
		t.Error("etcds:// is not TLS")
	}
}
