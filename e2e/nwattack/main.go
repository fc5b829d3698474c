// Command nwattack is the e2e suite's adversary: run inside a host's
// namespace, it sends what a hostile or broken peer would send to an
// overlayd and reports what came back, as key=value words on one line.
//
//	nwattack junk    -to ADDR:PORT -n N             junk and truncated datagrams at a WireGuard port
//	nwattack hsflood -to ADDR:PORT -pub KEY -for D  handshake initiations with a valid mac1; counts cookie replies
//	nwattack syn     -src IP -dst IP -ports LO-HI -per N -wait D
//	                                                raw TCP SYNs (any source address); counts SYN-ACKs and resets
//	nwattack link    -a ADDR:PORT -b ADDR:PORT -to-a ADDR:PORT -to-b ADDR:PORT -delay D -loss P
//	                                                a lossy, slow UDP link (netem in userspace): what arrives
//	                                                on a goes to to-b from b, and back
//	nwattack wire    -a IFACE -b IFACE -delay D -jitter J -reorder P -gap G
//	                                                a slow layer-2 wire between two interfaces (any protocol):
//	                                                frames from a leave through b and back, delayed, some
//	                                                reordered; loss is nftables' job (see e2e/bench/wan.go)
//
// It is a test tool: it needs root (raw sockets) and is never installed.
package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.zx2c4.com/wireguard/device"
)

func main() {
	if len(os.Args) < 2 {
		fail(errors.New("usage: nwattack junk|hsflood|syn|link|wire [flags]"))
	}
	var err error
	switch os.Args[1] {
	case "junk":
		err = junk(os.Args[2:])
	case "hsflood":
		err = hsflood(os.Args[2:])
	case "syn":
		err = syn(os.Args[2:])
	case "link":
		err = link(os.Args[2:])
	case "wire":
		err = wire(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "nwattack:", err)
	os.Exit(1)
}

// junk sends n datagrams: empty, one byte, every WireGuard message type
// cut at every few bytes, type fields out of range, and random sizes up
// to 64 KiB.
func junk(args []string) error {
	fs := flag.NewFlagSet("junk", flag.ExitOnError)
	to := fs.String("to", "", "WireGuard endpoint")
	n := fs.Int("n", 5000, "datagrams")
	fs.Parse(args)
	c, err := net.Dial("udp4", *to)
	if err != nil {
		return err
	}
	defer c.Close()
	sizes := []int{148, 92, 64, 32} // initiation, response, cookie reply, transport header
	sent := 0
	send := func(b []byte) {
		if _, err := c.Write(b); err == nil {
			sent++
		}
	}
	send(nil)
	send([]byte{1})
	for typ := byte(0); typ <= 6; typ++ {
		for _, size := range sizes {
			for cut := 0; cut <= size+8; cut += 3 {
				b := make([]byte, cut)
				rand.Read(b)
				if cut > 0 {
					b[0] = typ
				}
				if cut > 3 {
					b[1], b[2], b[3] = 0, 0, 0
				}
				send(b)
			}
		}
	}
	for sent < *n {
		var sz [2]byte
		rand.Read(sz[:])
		b := make([]byte, int(binary.BigEndian.Uint16(sz[:]))%65000)
		rand.Read(b)
		if len(b) > 4 && sz[0]&1 == 0 { // half of them look like WireGuard
			b[0], b[1], b[2], b[3] = 1+sz[1]%4, 0, 0, 0
		}
		send(b)
	}
	fmt.Printf("sent=%d\n", sent)
	return nil
}

// hsflood sends handshake initiations that pass the mac1 check (so they
// reach the handshake queue) but carry garbage, from workers goroutines,
// for d; it counts the cookie replies (message type 3) that come back.
func hsflood(args []string) error {
	fs := flag.NewFlagSet("hsflood", flag.ExitOnError)
	to := fs.String("to", "", "WireGuard endpoint")
	pub := fs.String("pub", "", "the target's public key (base64)")
	d := fs.Duration("for", 5*time.Second, "duration")
	workers := fs.Int("workers", 4, "sending goroutines, one socket each")
	fs.Parse(args)
	raw, err := base64.StdEncoding.DecodeString(*pub)
	if err != nil || len(raw) != device.NoisePublicKeySize {
		return fmt.Errorf("-pub: not a base64 public key")
	}
	var pk device.NoisePublicKey
	copy(pk[:], raw)
	var sent, cookies, other atomic.Uint64
	deadline := time.Now().Add(*d)
	var wg sync.WaitGroup
	for range *workers {
		c, err := net.Dial("udp4", *to)
		if err != nil {
			return err
		}
		defer c.Close()
		wg.Add(2)
		go func() { // replies
			defer wg.Done()
			buf := make([]byte, 2048)
			for {
				c.SetReadDeadline(deadline.Add(time.Second))
				n, err := c.Read(buf)
				if err != nil {
					var ne net.Error
					if errors.As(err, &ne) && ne.Timeout() {
						return
					}
					if time.Now().After(deadline.Add(time.Second)) {
						return
					}
					continue // ICMP unreachable and the like
				}
				if n == device.MessageCookieReplySize && buf[0] == device.MessageCookieReplyType {
					cookies.Add(1)
				} else {
					other.Add(1)
				}
			}
		}()
		go func() {
			defer wg.Done()
			var gen device.CookieGenerator
			gen.Init(pk)
			msg := make([]byte, device.MessageInitiationSize)
			for time.Now().Before(deadline) {
				for range 64 {
					rand.Read(msg[4:116])
					binary.LittleEndian.PutUint32(msg[0:4], device.MessageInitiationType)
					gen.AddMacs(msg)
					if _, err := c.Write(msg); err == nil {
						sent.Add(1)
					}
				}
			}
		}()
	}
	wg.Wait()
	fmt.Printf("sent=%d cookies=%d other=%d\n", sent.Load(), cookies.Load(), other.Load())
	return nil
}

// syn sends per raw SYNs to each port in lo..hi from src (which may be any
// address: raw sockets let a host forge it) to dst, each from its own
// source port, and for wait afterwards counts what dst answers to src:
// SYN-ACKs (distinct connections) and resets.
func syn(args []string) error {
	fs := flag.NewFlagSet("syn", flag.ExitOnError)
	srcS := fs.String("src", "", "source address written in the packets")
	dstS := fs.String("dst", "", "destination address")
	ports := fs.String("ports", "4369", "LO-HI or one port")
	per := fs.Int("per", 1, "SYNs per port, each from a new source port")
	wait := fs.Duration("wait", 3*time.Second, "how long to listen for answers after the last SYN")
	fs.Parse(args)
	src, err := netip.ParseAddr(*srcS)
	if err != nil {
		return fmt.Errorf("-src: %w", err)
	}
	dst, err := netip.ParseAddr(*dstS)
	if err != nil {
		return fmt.Errorf("-dst: %w", err)
	}
	lo, hi, err := portRange(*ports)
	if err != nil {
		return err
	}

	rx, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_TCP)
	if err != nil {
		return fmt.Errorf("raw receive socket: %w", err)
	}
	defer syscall.Close(rx)
	tv := syscall.NsecToTimeval(int64(200 * time.Millisecond))
	syscall.SetsockoptTimeval(rx, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv)
	var (
		mu      sync.Mutex
		synacks = map[uint32]bool{} // dst port<<16 | src port (ours)
		rsts    int
		done    atomic.Bool
	)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 65536)
		for !done.Load() {
			n, _, err := syscall.Recvfrom(rx, buf, 0)
			if err != nil || n < 40 {
				continue
			}
			ihl := int(buf[0]&0x0f) * 4
			if n < ihl+20 || netip.AddrFrom4([4]byte(buf[12:16])) != dst || netip.AddrFrom4([4]byte(buf[16:20])) != src {
				continue
			}
			t := buf[ihl:]
			flags := t[13]
			key := uint32(binary.BigEndian.Uint16(t[0:2]))<<16 | uint32(binary.BigEndian.Uint16(t[2:4]))
			mu.Lock()
			switch {
			case flags&0x12 == 0x12:
				synacks[key] = true
			case flags&0x04 != 0:
				rsts++
			}
			mu.Unlock()
		}
	}()

	tx, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, syscall.IPPROTO_RAW)
	if err != nil {
		return fmt.Errorf("raw send socket: %w", err)
	}
	defer syscall.Close(tx)
	to := &syscall.SockaddrInet4{Addr: dst.As4()}
	sport := uint16(20000)
	sent := 0
	pkt := make([]byte, 40)
	for port := lo; ; port++ {
		for range *per {
			sport++
			if sport < 20000 {
				sport = 20000
			}
			buildSYN(pkt, src, dst, sport, uint16(port))
			for {
				err := syscall.Sendto(tx, pkt, 0, to)
				if err == syscall.ENOBUFS || err == syscall.EAGAIN {
					time.Sleep(time.Millisecond) // the TUN queue is full: let wireguard-go drain it
					continue
				}
				if err != nil {
					return fmt.Errorf("send SYN: %w", err)
				}
				break
			}
			sent++
		}
		if port == hi {
			break
		}
	}
	time.Sleep(*wait) // answers still in flight; the count is the measurement
	done.Store(true)
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	open := map[uint16]bool{}
	for k := range synacks {
		open[uint16(k>>16)] = true
	}
	var openList []string
	for p := range open {
		openList = append(openList, strconv.Itoa(int(p)))
	}
	fmt.Printf("sent=%d synack=%d rst=%d open_ports=%d ports=%s\n", sent, len(synacks), rsts, len(open), strings.Join(openList, ","))
	return nil
}

func portRange(s string) (lo, hi int, err error) {
	a, b, ok := strings.Cut(s, "-")
	if !ok {
		b = a
	}
	if lo, err = strconv.Atoi(a); err == nil {
		hi, err = strconv.Atoi(b)
	}
	if err != nil || lo < 1 || hi > 65535 || lo > hi {
		return 0, 0, fmt.Errorf("-ports %q: want LO-HI within 1-65535", s)
	}
	return lo, hi, nil
}

// buildSYN writes an IPv4 + TCP SYN (no options) into pkt (40 bytes). The
// kernel fills the IP checksum; the TCP checksum is computed here.
func buildSYN(pkt []byte, src, dst netip.Addr, sport, dport uint16) {
	s, d := src.As4(), dst.As4()
	ip := pkt[:20]
	ip[0], ip[1] = 0x45, 0
	binary.BigEndian.PutUint16(ip[2:], 40)
	binary.BigEndian.PutUint16(ip[4:], sport)
	binary.BigEndian.PutUint16(ip[6:], 0x4000)
	ip[8], ip[9] = 64, syscall.IPPROTO_TCP
	ip[10], ip[11] = 0, 0
	copy(ip[12:16], s[:])
	copy(ip[16:20], d[:])
	t := pkt[20:40]
	binary.BigEndian.PutUint16(t[0:], sport)
	binary.BigEndian.PutUint16(t[2:], dport)
	binary.BigEndian.PutUint32(t[4:], uint32(sport)<<16|uint32(dport))
	binary.BigEndian.PutUint32(t[8:], 0)
	t[12], t[13] = 5<<4, 0x02
	binary.BigEndian.PutUint16(t[14:], 65535)
	t[16], t[17], t[18], t[19] = 0, 0, 0, 0
	var sum uint32
	for i := 0; i < 4; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(s[i:])) + uint32(binary.BigEndian.Uint16(d[i:]))
	}
	sum += syscall.IPPROTO_TCP + 20
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(t[i:]))
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(t[16:], ^uint16(sum))
}

// link relays UDP between two sockets, delaying every datagram by delay
// and dropping each with probability loss, in both directions: the
// kernel here has no netem. Datagrams arriving on a go to toB (sent from
// b); those arriving on b go to toA (sent from a). It runs until killed.
func link(args []string) error {
	fs := flag.NewFlagSet("link", flag.ExitOnError)
	aS := fs.String("a", "", "listen address of the A side")
	bS := fs.String("b", "", "listen address of the B side")
	toA := fs.String("to-a", "", "where the A side's host listens")
	toB := fs.String("to-b", "", "where the B side's host listens")
	delay := fs.Duration("delay", 50*time.Millisecond, "one-way delay")
	loss := fs.Float64("loss", 0.05, "drop probability per datagram")
	fs.Parse(args)
	listen := func(s string) (*net.UDPConn, error) {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return nil, err
		}
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(ap))
		if err == nil {
			c.SetReadBuffer(8 << 20)
			c.SetWriteBuffer(8 << 20)
		}
		return c, err
	}
	a, err := listen(*aS)
	if err != nil {
		return err
	}
	b, err := listen(*bS)
	if err != nil {
		return err
	}
	dstA, err := netip.ParseAddrPort(*toA)
	if err != nil {
		return err
	}
	dstB, err := netip.ParseAddrPort(*toB)
	if err != nil {
		return err
	}
	fmt.Printf("link up a=%s b=%s delay=%v loss=%v\n", *aS, *bS, *delay, *loss)
	errc := make(chan error, 2)
	go func() { errc <- relay(a, b, dstB, *delay, *loss) }()
	go func() { errc <- relay(b, a, dstA, *delay, *loss) }()
	return <-errc
}

type delayed struct {
	due time.Time
	b   []byte
}

// relay reads from in and, after delay, writes to dst through out, in
// order, dropping with probability loss.
func relay(in, out *net.UDPConn, dst netip.AddrPort, delay time.Duration, loss float64) error {
	q := make(chan delayed, 65536)
	go func() {
		for d := range q {
			time.Sleep(time.Until(d.due))
			out.WriteToUDPAddrPort(d.b, dst)
		}
	}()
	buf := make([]byte, 65536)
	for {
		n, _, err := in.ReadFromUDPAddrPort(buf)
		if err != nil {
			return err
		}
		if mrand.Float64() < loss {
			continue
		}
		select {
		case q <- delayed{time.Now().Add(delay), append([]byte(nil), buf[:n]...)}:
		default: // queue full: a tail drop, as a router would
		}
	}
}
