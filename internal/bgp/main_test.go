package bgp

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestMain fails the run if the tests leave goroutines or sockets behind.
func TestMain(m *testing.M) {
	if os.Getenv(bfdHelperEnv) != "" {
		os.Exit(bfdHelperMain())
	}
	baseG, baseS := len(goroutines()), sockets()
	code := m.Run()
	if code != 0 {
		os.Exit(code)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(goroutines()) > baseG || sockets() > baseS {
		if time.Now().After(deadline) {
			g := goroutines()
			fmt.Fprintf(os.Stderr, "leak: %d goroutines (was %d), %d sockets (was %d)\n%s\n",
				len(g), baseG, sockets(), baseS, strings.Join(g, "\n\n"))
			os.Exit(1)
		}
		time.Sleep(50 * time.Millisecond)
	}
	os.Exit(0)
}

// goroutines returns the stacks of the live goroutines, except the
// buffers of GoBGP's InfiniteChannels: GoBGP v4.8.0 stops a peer's FSM with
// cleanInfiniteChannel, whose non-blocking drain can leave the buffer
// goroutine blocked forever when the peer's outgoing queue still held
// messages. That leak is GoBGP's, not this package's.
func goroutines() []string {
	buf := make([]byte, 4<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n") {
		if !strings.Contains(g, "eapache/channels.(*InfiniteChannel).infiniteBuffer") {
			out = append(out, g)
		}
	}
	return out
}

// sockets counts this process's open sockets.
func sockets() int {
	fds, _ := filepath.Glob("/proc/self/fd/*")
	n := 0
	for _, fd := range fds {
		if l, err := os.Readlink(fd); err == nil && strings.HasPrefix(l, "socket:") {
			n++
		}
	}
	return n
}
