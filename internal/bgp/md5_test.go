package bgp

import (
	"testing"
	"time"

	api "github.com/osrg/gobgp/v4/api"
)

func TestTCPMD5(t *testing.T) {
	withPassword := func(pw string) func(*api.Peer) {
		return func(p *api.Peer) { p.Conf.AuthPassword = pw }
	}
	good := newRouter(t, "127.0.0.1", ebgpASN)
	good.neighbor(speakerIP, speakerASN, withPassword("s3cret"))
	bad := newRouter(t, "127.0.0.2", ebgpASN)
	bad.neighbor(speakerIP, speakerASN, withPassword("other"))

	s := newSpeaker(t, speakerASN)
	pg, pb := good.peerFor("good", 0), bad.peerFor("bad", 0)
	pg.Password, pb.Password = "s3cret", "wrong"
	if err := s.SetPeers(ctx, []Peer{pg, pb}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "session with the right password", func() bool { return good.established(speakerIP) })
	never(t, 3*time.Second, "session with the wrong password established", func() bool { return bad.established(speakerIP) })
	st, err := s.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range st {
		if p.Name == "bad" && p.State == StateEstablished {
			t.Errorf("speaker reports the mismatched session as %v", p.State)
		}
		t.Logf("%s: %v %s", p.Name, p.State, p.LastError)
	}

	// Fixing the password brings it up, and leaves the good one alone.
	pb.Password = "other"
	if err := s.SetPeers(ctx, []Peer{pg, pb}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 15*time.Second, "session after the password fix", func() bool { return bad.established(speakerIP) })
	if good.ups() != 1 {
		t.Errorf("the good session went down while the other peer changed")
	}
}
