package e2etest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/heraldlb/herald/e2etest/testbed"
)

// profileDir is where the benchmarks save heap profiles of the processes
// they measure: $HERALD_BENCH_PROFILES, or "" (no profiles). Read them with
// `go tool pprof -sample_index=inuse_space bin/herald-speaker FILE`.
func profileDir() string { return os.Getenv("HERALD_BENCH_PROFILES") }

// pprofArgs returns the --pprof-addr flag for a process whose heap a
// benchmark will save, or nothing when profiles are off. In a node's
// namespace the port is free; in the root namespace (shared with other
// beds) a free port is picked.
func pprofArgs(tb testing.TB, rootNS bool) (args []string, addr string) {
	tb.Helper()
	if profileDir() == "" {
		return nil, ""
	}
	addr = "127.0.0.1:6060"
	if rootNS {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		addr = ln.Addr().String()
		_ = ln.Close()
	}
	return []string{"--pprof-addr", addr}, addr
}

// saveHeap saves the heap profile served at addr (inside ns, or in the root
// namespace when ns is empty) as name in profileDir, after a GC (?gc=1), so
// that in-use figures count live objects only.
func saveHeap(tb testing.TB, ns testbed.NS, addr, name string) {
	tb.Helper()
	saveProfile(tb, ns, addr, "heap?gc=1", name)
}

// saveCPU saves a CPU profile of the next d of the process serving pprof at
// addr in the root namespace, as soon as it listens (it may be starting).
// It runs in the background; wait for the returned channel.
func saveCPU(tb testing.TB, addr, name string, d time.Duration) <-chan struct{} {
	done := make(chan struct{})
	if profileDir() == "" || addr == "" {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
				_ = c.Close()
				break
			}
		}
		saveProfile(tb, testbed.NS{}, addr, fmt.Sprintf("profile?seconds=%d", int(d.Seconds())), name)
	}()
	return done
}

// saveProfile saves /debug/pprof/<path> from addr as name in profileDir.
func saveProfile(tb testing.TB, ns testbed.NS, addr, path, name string) {
	dir := profileDir()
	if dir == "" || addr == "" {
		return
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Error(err)
		return
	}
	file := filepath.Join(dir, name)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	argv := []string{"curl", "-sf", "-o", file, fmt.Sprintf("http://%s/debug/pprof/%s", addr, path)}
	var err error
	if ns.Name == "" {
		var out []byte
		if out, err = exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput(); err != nil {
			err = fmt.Errorf("%w: %s", err, out)
		}
	} else {
		_, err = ns.Run(ctx, argv...)
	}
	if err != nil {
		tb.Logf("profile %s: %v", name, err)
		return
	}
	tb.Logf("profile: %s", file)
}
