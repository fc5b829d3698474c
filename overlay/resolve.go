package overlay

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/nodewire/nodewire/peers"
)

// resolver is the part of net.Resolver the daemon uses, so tests can replace DNS.
type resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// resolveEndpoints turns the endpoint of each of ps (host:port, host a name or an
// IP) into an address WireGuard can use. Names are resolved by the daemon,
// concurrently and with a deadline, because UAPI takes only IP literals. A
// peer whose name does not resolve is reported and left without an endpoint:
// it can still reach us, and the next reload tries again.
func resolveEndpoints(ctx context.Context, r resolver, ps []*peers.Peer) (map[string]netip.AddrPort, map[string]error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		out  = make(map[string]netip.AddrPort)
		errs = make(map[string]error)
	)
	for _, p := range ps {
		if p.Endpoint == "" {
			continue
		}
		host, portStr, err := net.SplitHostPort(p.Endpoint)
		if err != nil {
			errs[p.Name] = fmt.Errorf("endpoint %q: %w", p.Endpoint, err)
			continue
		}
		port, err := strconv.ParseUint(portStr, 10, 16)
		if err != nil {
			errs[p.Name] = fmt.Errorf("endpoint %q: bad port", p.Endpoint)
			continue
		}
		if ip, err := netip.ParseAddr(host); err == nil {
			out[p.Name] = netip.AddrPortFrom(ip.Unmap(), uint16(port))
			continue
		}
		wg.Add(1)
		go func(name, host string, port uint16) {
			defer wg.Done()
			ips, err := r.LookupNetIP(ctx, "ip", host)
			mu.Lock()
			defer mu.Unlock()
			if err != nil || len(ips) == 0 {
				errs[name] = fmt.Errorf("resolve %s: %v", host, err)
				return
			}
			ip := ips[0]
			for _, cand := range ips { // prefer IPv4: the common underlay
				if cand.Unmap().Is4() {
					ip = cand
					break
				}
			}
			out[name] = netip.AddrPortFrom(ip.Unmap(), port)
		}(p.Name, host, uint16(port))
	}
	wg.Wait()
	return out, errs
}
