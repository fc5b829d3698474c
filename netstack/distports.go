package netstack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"
)

const (
	// learnedTTL is how long a port seen in a relayed PORT2_RESP counts as
	// registered without asking epmd: long enough for the dial that follows
	// the lookup, short enough that a dead node's port is re-checked.
	learnedTTL = time.Minute
	// namesTTL is how long one NAMES answer of the local epmd is reused, so
	// a port scan costs at most one query per namesTTL.
	namesTTL = time.Second
	// maxNamesReply caps a NAMES reply read from the local epmd.
	maxNamesReply = 1 << 20
)

// localPorts knows which TCP ports are distribution ports of nodes
// registered with the local epmd: the only ports (besides exposed ones) an
// inbound connection may reach.
type localPorts struct {
	query func(ctx context.Context) ([]NameEntry, error) // asks the local epmd

	mu      sync.Mutex
	learned map[uint16]time.Time // from relayed PORT2_RESPs
	names   map[uint16]struct{}  // from the last NAMES answer
	namesAt time.Time

	queryMu sync.Mutex // one NAMES query at a time; others wait and share it
}

func newLocalPorts(query func(ctx context.Context) ([]NameEntry, error)) *localPorts {
	return &localPorts{query: query, learned: make(map[uint16]time.Time)}
}

// note records port from an ok PORT2_RESP the relay passed on.
func (l *localPorts) note(port uint16) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for p, at := range l.learned {
		if now.Sub(at) > learnedTTL {
			delete(l.learned, p)
		}
	}
	l.learned[port] = now
}

// has reports whether port is a registered distribution port here. It asks
// the local epmd (NAMES) when neither a recent PORT2_RESP nor a fresh NAMES
// answer knows the port. An unreachable epmd means no (and the error, which
// is cached like an answer so a scan does not hammer a dead epmd).
func (l *localPorts) has(ctx context.Context, port uint16) (bool, error) {
	if known, fresh := l.cached(port, time.Now()); known || fresh {
		return known, nil
	}
	l.queryMu.Lock()
	defer l.queryMu.Unlock()
	if known, fresh := l.cached(port, time.Now()); known || fresh {
		return known, nil // answered while we waited
	}
	entries, err := l.query(ctx)
	names := make(map[uint16]struct{}, len(entries))
	for _, e := range entries {
		names[e.Port] = struct{}{}
	}
	l.mu.Lock()
	l.names, l.namesAt = names, time.Now()
	l.mu.Unlock()
	_, ok := names[port]
	return ok, err
}

// cached answers from memory: known says port is registered; fresh says the
// NAMES answer is recent enough to trust a no.
func (l *localPorts) cached(port uint16, now time.Time) (known, fresh bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if at, ok := l.learned[port]; ok && now.Sub(at) <= learnedTTL {
		return true, true
	}
	if l.namesAt.IsZero() || now.Sub(l.namesAt) > namesTTL {
		return false, false
	}
	_, known = l.names[port]
	return known, true
}

// queryLocalNames asks the epmd on this host's face for its NAMES list.
func (s *Stack) queryLocalNames(ctx context.Context) ([]NameEntry, error) {
	face := s.snap.Load().Self.Face
	return queryNames(ctx, netip.AddrPortFrom(face, s.epmdPort))
}

// queryNames sends NAMES_REQ to the epmd at addr and parses the reply.
func queryNames(ctx context.Context, addr netip.AddrPort) ([]NameEntry, error) {
	ctx, cancel := context.WithTimeout(ctx, localDialTimeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp4", addr.String())
	if err != nil {
		return nil, fmt.Errorf("ask epmd at %v for names: %w", addr, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if _, err := c.Write([]byte{0, 1, TagNamesReq}); err != nil {
		return nil, fmt.Errorf("ask epmd at %v for names: %w", addr, err)
	}
	reply, err := io.ReadAll(io.LimitReader(c, maxNamesReply+1))
	if err != nil {
		return nil, fmt.Errorf("read names from epmd at %v: %w", addr, err)
	}
	if len(reply) > maxNamesReply {
		return nil, fmt.Errorf("read names from epmd at %v: %w", addr, errors.New("reply too large"))
	}
	_, names, err := ParseNames(reply)
	if err != nil {
		return nil, fmt.Errorf("names from epmd at %v: %w", addr, err)
	}
	return names, nil
}
