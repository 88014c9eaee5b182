package membership

import (
	"bufio"
	"bytes"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldlb/herald/internal/procstat"
)

// floodHelperEnv, when set, makes TestFloodHelper run one member on
// 127.0.0.1 and report on it; TestGarbageFlood starts it.
const floodHelperEnv = "HERALD_MEMBERLIST_FLOOD_HELPER"

// TestFloodHelper is not a test: it runs a member for TestGarbageFlood in
// its own process, so that the member's RSS can be measured alone. It
// prints "ADDR <addr>", then, when stdin closes, "STATS rejected=N
// mismatches=N warnings=N".
func TestFloodHelper(t *testing.T) {
	if os.Getenv(floodHelperEnv) == "" {
		t.Skip("helper process for TestGarbageFlood")
	}
	var warnings atomic.Int64
	logger := slog.New(slog.NewTextHandler(&lineCounter{n: &warnings}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c, err := New(Config{Name: "victim", BindAddr: "127.0.0.1", Secret: testSecret, Logger: logger,
		OnKeyMismatch: func(KeyMismatch) {}})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for range c.Events() {
		}
	}()
	fmt.Println("ADDR", c.LocalAddr())
	bufio.NewReader(os.Stdin).ReadString('\n') // until the parent closes stdin
	fmt.Printf("STATS rejected=%d mismatches=%d warnings=%d\n", c.RejectedPackets(), c.KeyMismatches(), warnings.Load())
	c.Shutdown()
}

// lineCounter counts the lines written to it.
type lineCounter struct{ n *atomic.Int64 }

func (l *lineCounter) Write(p []byte) (int, error) {
	l.n.Add(int64(bytes.Count(p, []byte("\n"))))
	if os.Getenv("HERALD_FLOOD_LOG") != "" {
		os.Stderr.Write(p)
	}
	return len(p), nil
}

// TestGarbageFlood sends a member garbage datagrams from many source ports
// and garbage TCP streams for a few seconds: its memory stays flat, its
// rejected counter rises, and it logs a handful of lines, not one per
// packet.
func TestGarbageFlood(t *testing.T) {
	if testing.Short() {
		t.Skip("floods for seconds")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestFloodHelper$")
	cmd.Env = append(os.Environ(), floodHelperEnv+"=1")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	var addr string
	for sc.Scan() {
		if a, ok := strings.CutPrefix(sc.Text(), "ADDR "); ok {
			addr = a
			break
		}
	}
	if addr == "" {
		cmd.Process.Kill() // by the PID we started
		cmd.Wait()
		t.Fatalf("helper gave no address\n%s", stderr.String())
	}
	stopped := false
	stop := func() string {
		stopped = true
		stdin.Close()
		var stats string
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "STATS") {
				stats = sc.Text()
			}
		}
		if err := cmd.Wait(); err != nil {
			t.Errorf("helper: %v\n%s", err, stderr.String())
		}
		return stats
	}
	t.Cleanup(func() {
		if !stopped {
			stop()
		}
	})
	time.Sleep(300 * time.Millisecond)
	rssBefore := procRSS(t, cmd.Process.Pid)

	dur := 3 * time.Second
	if os.Getenv("HERALD_LONG") != "" {
		dur = 60 * time.Second
	}
	var udpSent, tcpSent atomic.Int64
	var wg sync.WaitGroup
	deadline := time.Now().Add(dur)
	wg.Go(func() { // UDP from a new source port every 50 datagrams
		rng := rand.New(rand.NewPCG(3, 4))
		buf := make([]byte, 1400)
		for time.Now().Before(deadline) {
			conn, err := net.Dial("udp", addr)
			if err != nil {
				continue
			}
			for range 50 {
				n := 1 + rng.IntN(len(buf))
				for i := range n {
					buf[i] = byte(rng.Uint32())
				}
				if i := rng.IntN(3); i < 2 {
					buf[0] = byte(i) // a valid encryption version: "no installed keys"
				}
				if _, err := conn.Write(buf[:n]); err == nil {
					udpSent.Add(1)
				}
			}
			conn.Close()
			time.Sleep(time.Millisecond)
		}
	})
	wg.Go(func() { // TCP streams of garbage
		rng := rand.New(rand.NewPCG(5, 6))
		buf := make([]byte, 512)
		for time.Now().Before(deadline) {
			conn, err := net.DialTimeout("tcp", addr, time.Second)
			if err != nil {
				continue
			}
			for i := range buf {
				buf[i] = byte(rng.Uint32())
			}
			if _, err := conn.Write(buf); err == nil {
				tcpSent.Add(1)
			}
			conn.Close()
			time.Sleep(2 * time.Millisecond)
		}
	})
	wg.Wait()
	time.Sleep(500 * time.Millisecond)
	rssAfter := procRSS(t, cmd.Process.Pid)
	stats := stop()
	t.Logf("FIGURE memberlist garbage flood for %v: %d datagrams, %d TCP streams; member RSS %d KiB before, %d KiB after; %s",
		dur, udpSent.Load(), tcpSent.Load(), rssBefore, rssAfter, stats)
	if os.Getenv("HERALD_FLOOD_LOG") != "" {
		t.Logf("member log:\n%s", stderr.String())
	}
	fields := map[string]int{}
	for _, f := range strings.Fields(stats) {
		if k, v, ok := strings.Cut(f, "="); ok {
			fields[k], _ = strconv.Atoi(v)
		}
	}
	// The kernel drops what the member cannot read in time: count what
	// reached it, at least a fair share.
	if sent := udpSent.Load() + tcpSent.Load(); int64(fields["rejected"]) < sent/20 {
		t.Errorf("rejected counter %d for %d garbage packets and streams", fields["rejected"], sent)
	}
	// One line per kind per logInterval, a few kinds (the 60 s flood logs
	// each kind 6 or 7 times).
	if w, limit := fields["warnings"], 5*(int(dur/logInterval)+1); w > max(20, limit) {
		t.Errorf("%d warning and error lines logged for the flood, want at most %d", w, max(20, limit))
	}
	if rssAfter > rssBefore+16*1024 {
		t.Errorf("member RSS grew from %d to %d KiB", rssBefore, rssAfter)
	}
}

// procRSS returns a process's resident set size in KiB.
func procRSS(t *testing.T, pid int) int {
	t.Helper()
	n, err := procstat.RSSKiB(pid)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
