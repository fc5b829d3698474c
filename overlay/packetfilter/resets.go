package packetfilter

// Resets the filter writes itself, so that a refused connection fails at
// once at both ends instead of retrying into silence: to the kernel (the
// local socket) directly, to a peer through WireGuard by the next Read.

import (
	"time"

	"github.com/nodewire/nodewire/peers"
)

const (
	// injectOffset is the headroom of packets the filter writes to the
	// kernel itself (resets); the TUN device needs room for its virtio header.
	injectOffset = 16
	// maxAnswers bounds the resets waiting to go to peers; a SYN flood from
	// a peer that reaches this host costs at most this many, the rest go
	// unanswered (the peer retries its SYN, as with a full backlog).
	maxAnswers = 256
)

// aLongTimeAgo is a read deadline in the past: it wakes a blocked Read.
var aLongTimeAgo = time.Unix(1, 0)

// refuseFlow resets both ends of inbound flow fl, whose first segment p
// the filter refused: the local socket (as if the peer reset it, at the
// sequence number it expects) and the peer's (through WireGuard).
func (f *Filter) refuseFlow(fl *flow, p *packet, now int64) {
	fromPeer := packet{src: p.dst, sport: p.dport, dst: p.src, dport: p.sport}
	f.resetKernel(&fromPeer, p.seq, fl.localNext)
	if fl.haveSeq {
		b := make([]byte, 40)
		f.answer(b[:tcpReset(b, p, fl.localNext, p.seq+segLen(p))])
	}
	fl.state, fl.expires, fl.inspect = stRefused, now+int64(resetTTL), inspectNone
}

// refuse answers a refused outbound SYN with a reset, as if from the peer.
func (f *Filter) refuse(p *packet) {
	f.resetKernel(p, 0, p.seq+segLen(p))
}

// answerReset sends the peer a reset for its refused SYN p, as a kernel
// with no listener would: the dialling socket gets ECONNREFUSED at once.
func (f *Filter) answerReset(p *packet) {
	b := make([]byte, 40) // refusals only: not the steady state
	f.answer(b[:tcpReset(b, p, 0, p.seq+segLen(p))])
}

// answer queues pkt for WireGuard to carry to its peer, and wakes the
// reader. Beyond maxAnswers waiting, pkt is dropped.
func (f *Filter) answer(pkt []byte) {
	f.answerMu.Lock()
	if len(f.answers) >= maxAnswers {
		f.answerMu.Unlock()
		return
	}
	f.answers = append(f.answers, pkt)
	f.nAnswers.Add(1)
	f.answerMu.Unlock()
	if f.wake != nil {
		f.wake.SetReadDeadline(aLongTimeAgo)
	}
}

// takeAnswers moves queued answers into bufs and returns how many.
func (f *Filter) takeAnswers(bufs [][]byte, sizes []int, offset int) int {
	if f.nAnswers.Load() == 0 {
		return 0
	}
	f.answerMu.Lock()
	defer f.answerMu.Unlock()
	n := 0
	for n < len(bufs) && n < len(f.answers) {
		sizes[n] = copy(bufs[n][offset:], f.answers[n])
		n++
	}
	f.answers = append(f.answers[:0], f.answers[n:]...)
	f.nAnswers.Add(-int32(n))
	return n
}

// resetRevoked resets the local socket of flow fl, which a reload revoked,
// as if its peer had: the peer's next packet then reaches the kernel,
// which resets the peer's end too.
func (f *Filter) resetRevoked(self *peers.Peer, fl *flow) {
	local := packet{src: self.Address, sport: fl.localPort, dst: fl.remote, dport: fl.remotePort}
	f.resetKernel(&local, fl.localAck, fl.localNext)
}

// resetKernel writes the kernel the reset tcpReset builds in answer to p.
func (f *Filter) resetKernel(p *packet, seq, ack uint32) {
	buf := make([]byte, injectOffset+40) // refusals only: not the steady state
	n := tcpReset(buf[injectOffset:], p, seq, ack)
	if _, err := f.Device.Write([][]byte{buf[:injectOffset+n]}, injectOffset); err != nil {
		f.log.Debug("packetfilter: could not write a reset to the kernel", "err", err)
	}
}
