package bgp

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/osrg/gobgp/v4/pkg/packet/bgp"
)

// TestMalformedUpdateResetsOnlyItsSession: a router that sends an UPDATE
// whose attribute list overruns the message gets a NOTIFICATION (UPDATE
// message error) and its session reset, with a down event; the other
// sessions stay up, untouched.
func TestMalformedUpdateResetsOnlyItsSession(t *testing.T) {
	const rawASN = 65099
	var log eventLog
	s, ibgp, ebgp := twoRouters(t, func(c *Config) { c.OnSessionEvent = log.add })
	eventually(t, 5*time.Second, "the routers log both sessions up", func() bool { return ibgp.ups() == 1 && ebgp.ups() == 1 })
	ibgpUps, ebgpUps := ibgp.ups(), ebgp.ups()

	// A hand-written router on 127.0.0.4: it answers the speaker's OPEN,
	// waits for its KEEPALIVE, then sends the malformed UPDATE.
	raw := netip.MustParseAddr("127.0.0.4")
	port := freePort(t, raw)
	l, err := net.Listen("tcp", netip.AddrPortFrom(raw, port).String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	type result struct {
		n   *bgp.BGPNotification
		err error
	}
	got := make(chan result, 1)
	go func() {
		conn, err := l.Accept()
		if err != nil {
			got <- result{err: err}
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(30 * time.Second))
		read := func() (*bgp.BGPMessage, error) {
			hdr := make([]byte, bgp.BGP_HEADER_LENGTH)
			if _, err := io.ReadFull(conn, hdr); err != nil {
				return nil, err
			}
			body := make([]byte, int(binary.BigEndian.Uint16(hdr[16:18]))-bgp.BGP_HEADER_LENGTH)
			if _, err := io.ReadFull(conn, body); err != nil {
				return nil, err
			}
			return bgp.ParseBGPMessage(append(hdr, body...))
		}
		write := func(m *bgp.BGPMessage) error {
			b, err := m.Serialize()
			if err == nil {
				_, err = conn.Write(b)
			}
			return err
		}
		open, err := bgp.NewBGPOpenMessage(rawASN, 90, netip.MustParseAddr("10.255.255.9"), []bgp.OptionParameterInterface{
			bgp.NewOptionParameterCapability([]bgp.ParameterCapabilityInterface{
				bgp.NewCapMultiProtocol(bgp.RF_IPv4_UC), bgp.NewCapFourOctetASNumber(rawASN),
			}),
		})
		if err == nil {
			_, err = read() // the speaker's OPEN
		}
		if err == nil {
			err = write(open)
		}
		if err == nil {
			err = write(bgp.NewBGPKeepAliveMessage())
		}
		for err == nil {
			var m *bgp.BGPMessage
			if m, err = read(); err == nil && m.Header.Type == bgp.BGP_MSG_KEEPALIVE {
				break
			}
		}
		if err != nil {
			got <- result{err: err}
			return
		}
		// Withdrawn routes: none; path attributes: 200 bytes announced,
		// one 4-byte ORIGIN present.
		body := []byte{0, 0, 0, 200, 0x40, 1, 1, 0}
		msg := append(bytes.Repeat([]byte{0xff}, 16), 0, byte(bgp.BGP_HEADER_LENGTH+len(body)), bgp.BGP_MSG_UPDATE)
		if _, err := conn.Write(append(msg, body...)); err != nil {
			got <- result{err: err}
			return
		}
		for {
			m, err := read()
			if err != nil {
				got <- result{err: err}
				return
			}
			if n, ok := m.Body.(*bgp.BGPNotification); ok {
				got <- result{n: n}
				return
			}
		}
	}()

	peers := []Peer{ibgp.peerFor("ibgp", 0), ebgp.peerFor("ebgp", 0),
		{Name: "raw", PeerASN: rawASN, Address: raw, Port: port, ConnectTime: time.Second}}
	if err := s.SetPeers(ctx, peers); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-got:
		if r.err != nil {
			t.Fatalf("the hand-written router: %v", r.err)
		}
		if r.n.ErrorCode != bgp.BGP_ERROR_UPDATE_MESSAGE_ERROR {
			t.Errorf("NOTIFICATION %d/%d, want an UPDATE message error (3)", r.n.ErrorCode, r.n.ErrorSubcode)
		}
		t.Logf("the speaker answered the malformed UPDATE with NOTIFICATION %d/%d", r.n.ErrorCode, r.n.ErrorSubcode)
	case <-time.After(40 * time.Second):
		t.Fatal("no NOTIFICATION for the malformed UPDATE")
	}
	eventually(t, 5*time.Second, "a down event for raw", func() bool { return len(log.downs("raw")) >= 1 })
	t.Logf("raw down: %s", log.downs("raw")[0].Reason)
	for _, r := range []struct {
		name string
		r    *router
		ups  int
	}{{"ibgp", ibgp, ibgpUps}, {"ebgp", ebgp, ebgpUps}} {
		if !r.r.established(speakerIP) || r.r.ups() != r.ups || len(log.downs(r.name)) != 0 {
			t.Errorf("the %s session was disturbed: established %v, ups %d then %d, downs %v",
				r.name, r.r.established(speakerIP), r.ups, r.r.ups(), log.downs(r.name))
		}
	}
}
