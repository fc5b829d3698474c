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

	"github.com/nodewire/nodewire/netstack/erldist"
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
	query func(ctx context.Context) ([]erldist.NameEntry, error) // asks the local epmd

	mu       sync.Mutex
	learned  map[uint16]learnedPort // from relayed PORT2_RESPs
	names    map[uint16]string      // port -> node name, from the last NAMES answer
	namesErr error                  // why the last NAMES query failed (names then empty)
	namesAt  time.Time

	queryMu sync.Mutex // one NAMES query at a time; others wait and share it
}

func newLocalPorts(query func(ctx context.Context) ([]erldist.NameEntry, error)) *localPorts {
	return &localPorts{query: query, learned: make(map[uint16]learnedPort)}
}

// learnedPort is a port seen in a relayed PORT2_RESP: whose, and when.
type learnedPort struct {
	name string
	at   time.Time
}

// note records port and its node name from an ok PORT2_RESP the relay
// passed on.
func (l *localPorts) note(port uint16, name string) {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	for p, lp := range l.learned {
		if now.Sub(lp.at) > learnedTTL {
			delete(l.learned, p)
		}
	}
	l.learned[port] = learnedPort{name, now}
}

// noteNames records a NAMES answer from the local epmd, or the error that
// stood for one: either is reused for namesTTL.
func (l *localPorts) noteNames(entries []erldist.NameEntry, err error) {
	names := make(map[uint16]string, len(entries))
	for _, e := range entries {
		names[e.Port] = e.Name
	}
	l.mu.Lock()
	l.names, l.namesErr, l.namesAt = names, err, time.Now()
	l.mu.Unlock()
}

// lookup reports whether port is a registered distribution port here, and
// the name of the node epmd registered it to. It asks the local epmd
// (NAMES) when neither a recent PORT2_RESP nor a fresh NAMES answer knows
// the port. An unreachable epmd means no (and the error, which is cached
// like an answer so a scan does not hammer a dead epmd).
func (l *localPorts) lookup(ctx context.Context, port uint16) (name string, ok bool, err error) {
	if name, known, fresh := l.cached(port, time.Now()); known || fresh {
		return name, known, nil
	}
	l.queryMu.Lock()
	defer l.queryMu.Unlock()
	if name, known, fresh := l.cached(port, time.Now()); known || fresh {
		return name, known, nil // answered while we waited
	}
	entries, err := l.query(ctx)
	l.noteNames(entries, err)
	for _, e := range entries {
		if e.Port == port {
			return e.Name, true, err
		}
	}
	return "", false, err
}

// cached answers from memory: known says port is registered (to name);
// fresh says the NAMES answer is recent enough to trust a no.
func (l *localPorts) cached(port uint16, now time.Time) (name string, known, fresh bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if lp, ok := l.learned[port]; ok && now.Sub(lp.at) <= learnedTTL {
		return lp.name, true, true
	}
	if l.namesAt.IsZero() || now.Sub(l.namesAt) > namesTTL {
		return "", false, false
	}
	name, known = l.names[port]
	return name, known, true
}

// current asks the local epmd for its names now (at most once per
// namesTTL) and returns them, for explain and status. A query that failed
// within namesTTL returns its error again: "unknown", not "none".
func (l *localPorts) current(ctx context.Context) ([]erldist.NameEntry, error) {
	l.queryMu.Lock()
	defer l.queryMu.Unlock()
	l.mu.Lock()
	if !l.namesAt.IsZero() && time.Since(l.namesAt) <= namesTTL {
		out := make([]erldist.NameEntry, 0, len(l.names))
		for p, n := range l.names {
			out = append(out, erldist.NameEntry{Name: n, Port: p})
		}
		err := l.namesErr
		l.mu.Unlock()
		return out, err
	}
	l.mu.Unlock()
	entries, err := l.query(ctx)
	l.noteNames(entries, err)
	return entries, err
}

// queryLocalNames asks the epmd on this host's face for its NAMES list.
func (s *Stack) queryLocalNames(ctx context.Context) ([]erldist.NameEntry, error) {
	face := s.snap.Load().Self.Face
	return queryNames(ctx, netip.AddrPortFrom(face, s.epmdPort))
}

// queryNames sends NAMES_REQ to the epmd at addr and parses the reply.
func queryNames(ctx context.Context, addr netip.AddrPort) ([]erldist.NameEntry, error) {
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
	if _, err := c.Write([]byte{0, 1, erldist.TagNamesReq}); err != nil {
		return nil, fmt.Errorf("ask epmd at %v for names: %w", addr, err)
	}
	reply, err := io.ReadAll(io.LimitReader(c, maxNamesReply+1))
	if err != nil {
		return nil, fmt.Errorf("read names from epmd at %v: %w", addr, err)
	}
	if len(reply) > maxNamesReply {
		return nil, fmt.Errorf("read names from epmd at %v: %w", addr, errors.New("reply too large"))
	}
	_, names, err := erldist.ParseNames(reply)
	if err != nil {
		return nil, fmt.Errorf("names from epmd at %v: %w", addr, err)
	}
	return names, nil
}
