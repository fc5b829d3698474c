// Package udpbind is a WireGuard conn.Bind for Linux that allocates nothing
// per packet in steady state. It reads with recvmmsg into arrays owned by
// each ReceiveFunc, parses the source from the raw sockaddr, and hands out one
// cached Endpoint per source; it writes with sendmmsg, coalescing runs of
// equal-size packets with UDP_SEGMENT, and splits UDP_GRO messages on
// receive. It keeps StdNetBind's sticky source (IP_PKTINFO/IPV6_PKTINFO).
// On other systems New returns wireguard-go's default Bind.
//
// Why not wireguard-go's conn.StdNetBind, which batches with GSO/GRO too:
// measured against it in the same runs (2 vCPUs shared with other jobs,
// load 15-21, so ranges are wide; ratios are udpbind/StdNetBind per
// interleaved round, median [min-max]):
//
//   - The binds alone (BenchmarkBind, 4 rounds): 128 x 1452-byte batches
//     0.61x the time per packet over IPv4 [0.59-0.72] (212-260 ns against
//     351-418 ns), one 148-byte packet 0.39x [0.33-0.48] (1.9-3.6 µs
//     against 5.3-11 µs); 0 allocations per batch against 134.
//   - overlayd end to end (e2e/bench -std-bind, two runs of 5 and 8
//     rounds, Erlang distribution between two netns hosts): round trips
//     shorter in userspace mode, ping-pong p50 0.82x [0.61-1.52] and 0.80x
//     [0.56-3.90], erpc:call p50 0.76x [0.57-0.95] and 0.82x [0.43-3.20];
//     in TUN mode erpc p50 0.52x [0.43-1.16] and 0.81x [0.49-18.6]. Bulk
//     is within the noise: 1 sender 1.09x [1.00-1.88] and 0.96x
//     [0.58-1.45] userspace, 1.18x and 1.15x TUN. A userspace daemon's peak
//     VmRSS under bulk is 31-53 MiB against 79-109 MiB.
//   - netstack's OverlayStream and OverlayPingPong (two stacks over
//     loopback WireGuard, 6 interleaved rounds, GOMAXPROCS 1): ns/op 0.64x
//     [0.36-3.08] and 0.65x [0.24-1.39]; allocations per MiB streamed
//     100-365 against 1,521-2,261.
//
// So the gain is per-packet CPU and garbage, which shows end to end as
// shorter round trips and a smaller heap rather than as bulk throughput
// (gVisor and ChaCha20 dominate that). To measure again: overlayd runs
// StdNetBind when NODEWIRE_BIND=std (a hidden knob), and `go run
// ./e2e/bench -std-bind` adds the rows stduser and stdtun.
package udpbind
