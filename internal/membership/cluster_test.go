package membership

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var testSecret = []byte("test-secret-0123456789-abcdefghij")

// watcher records a cluster's events.
type watcher struct {
	mu     sync.Mutex
	events []Event
	ch     chan struct{} // closed and replaced on every event
}

func watch(t *testing.T, c *Cluster) *watcher {
	w := &watcher{ch: make(chan struct{})}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range c.Events() {
			w.mu.Lock()
			w.events = append(w.events, ev)
			close(w.ch)
			w.ch = make(chan struct{})
			w.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		c.Shutdown()
		<-done
	})
	return w
}

// waitFor waits until an event of type typ for member name arrives and
// returns it.
func (w *watcher) waitFor(t *testing.T, typ EventType, name string, timeout time.Duration) Event {
	t.Helper()
	deadline := time.After(timeout)
	for {
		w.mu.Lock()
		for _, ev := range w.events {
			if ev.Type == typ && ev.Member.Name == name {
				w.mu.Unlock()
				return ev
			}
		}
		ch := w.ch
		w.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("no %s event for %s within %v", typ, name, timeout)
		}
	}
}

func testLogger(t *testing.T) *slog.Logger {
	level := slog.LevelWarn
	if testing.Verbose() && os.Getenv("MEMBERLIST_DEBUG") != "" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("test", t.Name())
}

func newMember(t *testing.T, name string, secret []byte, mod func(*Config)) (*Cluster, *watcher) {
	t.Helper()
	cfg := Config{Name: name, BindAddr: "127.0.0.1", Secret: secret, Logger: testLogger(t)}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%s): %v", name, err)
	}
	return c, watch(t, c)
}

func names(ms []Member) []string {
	var n []string
	for _, m := range ms {
		n = append(n, m.Name)
	}
	return n
}

// threeMembers starts a, b, c and joins b and c to a.
func threeMembers(t *testing.T) ([]*Cluster, []*watcher) {
	t.Helper()
	var cs []*Cluster
	var ws []*watcher
	for _, n := range []string{"a", "b", "c"} {
		c, w := newMember(t, n, testSecret, func(cfg *Config) { cfg.Meta = []byte("meta-" + n) })
		cs = append(cs, c)
		ws = append(ws, w)
	}
	for _, c := range cs[1:] {
		if _, err := c.Join([]string{cs[0].LocalAddr().String()}); err != nil {
			t.Fatalf("join: %v", err)
		}
	}
	for _, w := range ws {
		for _, n := range []string{"a", "b", "c"} {
			w.waitFor(t, EventJoin, n, 5*time.Second)
		}
	}
	return cs, ws
}

func TestThreeMembersJoin(t *testing.T) {
	cs, ws := threeMembers(t)
	for _, c := range cs {
		ms := c.Members()
		if got := names(ms); !slices.Equal(got, []string{"a", "b", "c"}) {
			t.Fatalf("%s sees members %v", c.name, got)
		}
		for _, m := range ms {
			if string(m.Meta) != "meta-"+m.Name || !m.Addr.IsValid() {
				t.Fatalf("%s sees member %+v", c.name, m)
			}
		}
	}
	// A metadata change reaches the others as an update.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if err := cs[2].SetMeta(ctx, []byte("eth0,eth1")); err != nil {
		t.Fatal(err)
	}
	ev := ws[0].waitFor(t, EventUpdate, "c", 3*time.Second)
	if string(ev.Member.Meta) != "eth0,eth1" {
		t.Fatalf("update event carries meta %q", ev.Member.Meta)
	}
}

func TestDeadMemberDetected(t *testing.T) {
	cs, ws := threeMembers(t)
	start := time.Now()
	if err := cs[2].Shutdown(); err != nil { // no Leave: a crash
		t.Fatal(err)
	}
	for i, w := range ws[:2] {
		ev := w.waitFor(t, EventLeave, "c", 10*time.Second)
		d := ev.Time.Sub(start)
		t.Logf("%s saw c dead after %v", cs[i].name, d.Round(time.Millisecond))
		// A generous bound: the defaults aim at about 0.5s.
		if d > 3*time.Second {
			t.Errorf("dead member detected after %v, want well under 3s", d)
		}
	}
}

func TestGracefulLeave(t *testing.T) {
	cs, ws := threeMembers(t)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	start := time.Now()
	if err := cs[2].Leave(ctx); err != nil {
		t.Fatal(err)
	}
	left := time.Since(start)
	for i, w := range ws[:2] {
		ev := w.waitFor(t, EventLeave, "c", 2*time.Second)
		t.Logf("%s saw c leave after %v (Leave returned after %v)", cs[i].name, ev.Time.Sub(start).Round(time.Millisecond), left.Round(time.Millisecond))
		if d := ev.Time.Sub(start); d > time.Second {
			t.Errorf("graceful leave took %v to be seen", d)
		}
	}
}

func TestKeyMismatch(t *testing.T) {
	tests := []struct {
		desc   string
		secret []byte
	}{
		{desc: "other secret", secret: []byte("another-secret-0123456789-abcdefg")},
		{desc: "no encryption", secret: nil},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			reported := make(chan KeyMismatch, 16)
			onMismatch := func(cfg *Config) {
				cfg.OnKeyMismatch = func(m KeyMismatch) {
					select {
					case reported <- m:
					default:
					}
				}
			}
			a, _ := newMember(t, "a", testSecret, onMismatch)
			b, _ := newMember(t, "b", testSecret, onMismatch)
			if _, err := b.Join([]string{a.LocalAddr().String()}); err != nil {
				t.Fatal(err)
			}
			x, _ := newMember(t, "x", tc.secret, onMismatch)
			_, err := x.Join([]string{a.LocalAddr().String()})
			if !errors.Is(err, ErrKeyMismatch) {
				t.Errorf("join error = %v, want ErrKeyMismatch", err)
			}
			select {
			case m := <-reported:
				t.Logf("reported: %+v", m)
			case <-time.After(3 * time.Second):
				t.Fatalf("no key mismatch reported")
			}
			if a.KeyMismatches()+x.KeyMismatches() == 0 {
				t.Errorf("mismatch counters are zero")
			}
			time.Sleep(500 * time.Millisecond)
			for _, c := range []*Cluster{a, b} {
				if got := names(c.Members()); !slices.Equal(got, []string{"a", "b"}) {
					t.Errorf("%s sees %v; the mismatched member must not join", c.name, got)
				}
			}
			if got := names(x.Members()); !slices.Equal(got, []string{"x"}) {
				t.Errorf("x sees %v", got)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	tests := []struct {
		desc string
		cfg  Config
	}{
		{desc: "no name", cfg: Config{BindAddr: "127.0.0.1"}},
		{desc: "short secret", cfg: Config{Name: "a", BindAddr: "127.0.0.1", Secret: []byte("x")}},
		{desc: "timeout not below interval", cfg: Config{Name: "a", BindAddr: "127.0.0.1", Timings: Timings{ProbeInterval: time.Second, ProbeTimeout: time.Second}}},
		{desc: "meta too big", cfg: Config{Name: "a", BindAddr: "127.0.0.1", Meta: make([]byte, 513)}},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			c, err := New(tc.cfg)
			if err == nil {
				c.Shutdown()
				t.Fatalf("New succeeded")
			}
			t.Log(err)
		})
	}
}

func ExampleDefaultTimings() {
	t := DefaultTimings()
	fmt.Println(t.ProbeInterval, t.ProbeTimeout, t.SuspicionMult, t.GossipInterval)
	// Output: 80ms 50ms 2 20ms
}

// TestPacketsAreNotCompressed checks that members do not run memberlist's
// LZW compression: it allocates a fresh 64 KiB table for every packet sent
// (and a 20 KiB reader for every packet received), even for the probes and
// acks it then sends uncompressed because they did not shrink, and that
// garbage made the collector most of an idle speaker's CPU. It counts the
// bytes the process allocates per datagram while 3 members probe each other.
func TestPacketsAreNotCompressed(t *testing.T) {
	var sent atomic.Int64
	sn := &simNet{onSend: func([]byte) { sent.Add(1) }}
	var first string
	for i := range 3 {
		tr := sn.newTransport(fmt.Sprint("n", i))
		c, err := New(Config{Name: fmt.Sprint("n", i), Secret: testSecret, Transport: tr})
		if err != nil {
			t.Fatal(err)
		}
		w := watch(t, c)
		if i == 0 {
			first = tr.addr.String()
			continue
		}
		if _, err := c.Join([]string{first}); err != nil {
			t.Fatal(err)
		}
		w.waitFor(t, EventJoin, "n0", 5*time.Second)
	}
	time.Sleep(300 * time.Millisecond) // the joins' gossip
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	n0 := sent.Load()
	time.Sleep(time.Second)
	runtime.ReadMemStats(&after)
	n := sent.Load() - n0
	perPacket := int64(after.TotalAlloc-before.TotalAlloc) / max(1, n)
	t.Logf("%d datagrams in 1 s, %d bytes allocated per datagram", n, perPacket)
	if n < 20 || perPacket > 16<<10 {
		t.Errorf("%d datagrams in 1 s, %d bytes allocated per datagram (LZW allocates 64 KiB)", n, perPacket)
	}
}
