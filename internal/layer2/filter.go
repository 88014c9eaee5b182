package layer2

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/mdlayher/packet"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// The responders' packet sockets carry classic BPF filters, so that the
// kernel drops garbage before it costs a system call: under a flood of
// malformed frames from a hostile neighbour, the socket's queue then holds
// only well-formed requests, and a real request does not wait behind
// thousands of bad ones (see TestFlood).
//
// The frames the filter rejects for their shape are still counted as
// malformed (Stats.Malformed): a second packet socket per responder, the
// reject counter, carries the complementary filter (it accepts exactly the
// malformed frames) and is never read. Its queue fills after a frame or
// two; the kernel then drops every further frame at once, before copying
// it, and counts it. The counter reads those counts (PACKET_STATISTICS,
// which counts queued plus dropped frames and resets on read) once a
// second and when the responder stops.
//
// A frame the filter lets through can still be rejected by the parser in
// user space (an NDP option of length zero past the first one, say), and
// is counted there: the two counts never overlap, since the reject
// counter's filter accepts only what the responder's filter drops.

// A rule is one test of a frame's shape, at an offset from the start of the
// Ethernet header.
type rule struct {
	// minLen is the frame length the rule needs: a shorter frame fails it.
	minLen uint32
	// size is the field's size in bytes (1 or 2) at off; 0 makes the rule a
	// length test only.
	off  uint32
	size int
	mask uint32 // if not 0, the field is masked with it first
	// The field must satisfy cond against val.
	cond bpf.JumpTest
	val  uint32
	// lenField, if set, makes the rule a test that the frame holds the
	// whole payload its 2-byte length field at off announces, past
	// headers bytes.
	lenField bool
	headers  uint32
	// when, if not empty, are the rules a frame must pass for this one to
	// apply; any other frame passes it.
	when []rule
}

// Verdicts of the filters: the whole frame, one byte (the reject counter
// never reads), or nothing.
const (
	acceptFrame = 0xffff
	acceptByte  = 1
	dropFrame   = 0
)

// filterSpec describes the frames of one protocol: base selects the
// frames of the protocol at all (others are neither answered nor counted),
// shape is what a well-formed one looks like, and want picks, among the
// well-formed frames, the ones the responder reads.
type filterSpec struct {
	base, shape, want []rule
}

// responderFilter accepts the well-formed frames the responder wants.
func (s filterSpec) responderFilter() []bpf.Instruction {
	p := newProgram()
	p.rules(s.base, "drop")
	p.rules(s.shape, "drop")
	p.rules(s.want, "drop")
	return p.finish(acceptFrame, acceptFrame)
}

// rejectFilter accepts (one byte of) the frames of the protocol that are
// not well-formed: what responderFilter drops for their shape.
func (s filterSpec) rejectFilter() []bpf.Instruction {
	p := newProgram()
	p.rules(s.base, "drop")
	p.rules(s.shape, "accept")
	return p.finish(dropFrame, acceptByte)
}

// program assembles a filter from rules. Its jumps go to labels: "accept",
// "drop", or the end of a rule with preconditions.
type program struct {
	ins  []bpf.Instruction
	fail []string // the label a JumpIf goes to when its test fails
	at   map[string]int
}

func newProgram() *program { return &program{at: map[string]int{}} }

func (p *program) emit(in bpf.Instruction, fail string) {
	p.ins = append(p.ins, in)
	p.fail = append(p.fail, fail)
}

// test appends r's own tests (not its preconditions), which go to fail
// when one does not hold.
func (p *program) test(r rule, fail string) {
	if r.minLen > 0 {
		p.emit(bpf.LoadExtension{Num: bpf.ExtLen}, "")
		p.emit(bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: r.minLen}, fail)
	}
	if r.lenField {
		p.emit(bpf.LoadAbsolute{Off: r.off, Size: 2}, "")
		p.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: r.headers}, "")
		p.emit(bpf.TAX{}, "")
		p.emit(bpf.LoadExtension{Num: bpf.ExtLen}, "")
		p.emit(bpf.JumpIfX{Cond: bpf.JumpGreaterOrEqual}, fail)
		return
	}
	if r.size > 0 {
		p.emit(bpf.LoadAbsolute{Off: r.off, Size: r.size}, "")
		if r.mask != 0 {
			p.emit(bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: r.mask}, "")
		}
		p.emit(bpf.JumpIf{Cond: r.cond, Val: r.val}, fail)
	}
}

// rules appends rules that go to fail when one does not hold.
func (p *program) rules(rs []rule, fail string) {
	for _, r := range rs {
		skip := ""
		if len(r.when) > 0 {
			skip = fmt.Sprintf("skip%d", len(p.ins))
			for _, w := range r.when {
				p.test(w, skip)
			}
		}
		p.test(r, fail)
		if skip != "" {
			p.at[skip] = len(p.ins)
		}
	}
}

// finish appends the verdict of a frame that passed every rule and the
// returns of the labels "accept" (with acceptVal) and "drop", and resolves
// the jumps.
func (p *program) finish(passed, acceptVal uint32) []bpf.Instruction {
	p.emit(bpf.RetConstant{Val: passed}, "")
	p.at["accept"] = len(p.ins)
	p.emit(bpf.RetConstant{Val: acceptVal}, "")
	p.at["drop"] = len(p.ins)
	p.emit(bpf.RetConstant{Val: dropFrame}, "")
	for i, in := range p.ins {
		if p.fail[i] == "" {
			continue
		}
		skip := uint8(p.at[p.fail[i]] - i - 1)
		switch j := in.(type) {
		case bpf.JumpIf:
			j.SkipFalse = skip
			p.ins[i] = j
		case bpf.JumpIfX:
			j.SkipFalse = skip
			p.ins[i] = j
		}
	}
	return p.ins
}

// The ARP frames the responders read: Ethernet and IPv4 address lengths,
// which is all the responder parses, in a frame long enough for them (42
// bytes), and the operation request. The socket is bound to ARP's
// EtherType.
var arpFilter = filterSpec{
	shape: []rule{
		{minLen: ethHeaderLen + 28, off: ethHeaderLen + 4, size: 1, cond: bpf.JumpEqual, val: 6},
		{off: ethHeaderLen + 5, size: 1, cond: bpf.JumpEqual, val: 4},
	},
	want: []rule{{off: ethHeaderLen + 6, size: 2, cond: bpf.JumpEqual, val: 1}},
}

// The neighbour solicitations the responders read: IPv6 carrying ICMPv6
// type 135 directly (no extension headers, which RFC 4861 messages do not
// use) is a solicitation; a well-formed one has its 24 bytes plus options
// in units of 8 bytes (in the IPv6 payload length, and in the frame), hop
// limit 255 (RFC 4861 7.1.1) and, if it has an option, a first option of
// non-zero length. The socket is bound
// to IPv6's EtherType.
var ndpFilter = filterSpec{
	base: []rule{
		{minLen: offICMPv6 + 1, off: ethHeaderLen, size: 1, mask: 0xf0, cond: bpf.JumpEqual, val: 6 << 4},
		{off: offNextHeader, size: 1, cond: bpf.JumpEqual, val: protocolICMPv6},
		{off: offICMPv6, size: 1, cond: bpf.JumpEqual, val: 135},
	},
	shape: []rule{
		{minLen: offICMPv6 + 24, off: ethHeaderLen + 4, size: 2, cond: bpf.JumpGreaterOrEqual, val: 24},
		{off: offHopLimit, size: 1, cond: bpf.JumpEqual, val: 255},
		{lenField: true, off: ethHeaderLen + 4, headers: offICMPv6},
		// 24 bytes and options of 8-byte units.
		{off: ethHeaderLen + 4, size: 2, mask: 7, cond: bpf.JumpEqual, val: 0},
		{
			when: []rule{
				{minLen: offICMPv6 + 26},
				{off: ethHeaderLen + 4, size: 2, cond: bpf.JumpGreaterOrEqual, val: 26},
			},
			off: offICMPv6 + 25, size: 1, cond: bpf.JumpNotEqual, val: 0,
		},
	},
}

// assemble assembles a filter built from the specs above, which always
// assemble.
func assemble(ins []bpf.Instruction) []bpf.RawInstruction {
	raw, err := bpf.Assemble(ins)
	if err != nil {
		panic(fmt.Sprintf("layer2: filter does not assemble: %v", err))
	}
	return raw
}

// rejectCounter counts the frames of one protocol on one interface that the
// responder's filter drops as malformed (see the top of this file).
type rejectCounter struct {
	pc *packet.Conn
}

// rejectPoll is how often a reject counter adds its count to the stats.
const rejectPoll = time.Second

// listenRejects opens the reject counter for the frames of etherType on ifi.
func listenRejects(ifi *net.Interface, etherType int, spec filterSpec) (*rejectCounter, error) {
	pc, err := packet.Listen(ifi, packet.Raw, etherType, &packet.Config{Filter: assemble(spec.rejectFilter())})
	if err != nil {
		return nil, fmt.Errorf("interface %s: open reject counter socket: %w", ifi.Name, err)
	}
	// The smallest queue the kernel allows: a frame or two, then every
	// further one is dropped (and counted) before it is copied.
	if rc, err := pc.SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) {
			_ = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 0)
		})
	}
	return &rejectCounter{pc: pc}, nil
}

// run adds the count to stats.Malformed every rejectPoll until ctx is
// done, then once more, and closes the socket. A nil counter does nothing.
func (c *rejectCounter) run(ctx context.Context, stats *Stats) {
	if c == nil {
		return
	}
	defer func() { _ = c.pc.Close() }()
	t := time.NewTicker(rejectPoll)
	defer t.Stop()
	for {
		// Packets counts every frame the filter accepted, queued or
		// dropped; reading resets it.
		if s, err := c.pc.Stats(); err == nil {
			stats.Malformed.Add(uint64(s.Packets))
		}
		select {
		case <-ctx.Done():
			if s, err := c.pc.Stats(); err == nil {
				stats.Malformed.Add(uint64(s.Packets))
			}
			return
		case <-t.C:
		}
	}
}

// start runs the counter in the background; stop ends it and waits for
// its last count.
func (c *rejectCounter) start(ctx context.Context, stats *Stats) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.run(ctx, stats)
	}()
	return func() {
		cancel()
		<-done
	}
}

// close closes a counter that will not run. A nil counter does nothing.
func (c *rejectCounter) close() {
	if c != nil {
		_ = c.pc.Close()
	}
}
