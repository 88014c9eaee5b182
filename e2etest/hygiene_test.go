package e2etest

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heraldlb/herald/e2etest/testbed"
)

// deadPID returns the PID of a process that has exited.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

func netnsExists(t *testing.T, name string) bool {
	t.Helper()
	_, err := os.Stat(filepath.Join("/run/netns", name))
	return err == nil
}

// TestSweep leaves a namespace, a run directory and a recorded process behind
// under the prefix of a dead owner, and checks that Sweep removes them all.
func TestSweep(t *testing.T) {
	needRoot(t)
	ctx := context.Background()
	prefix := fmt.Sprintf("hl%dz", deadPID(t))
	ns := prefix + "-sweep"
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	sleeper := exec.Command("ip", "netns", "exec", ns, "sleep", "300")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = sleeper.Wait(); close(exited) }()
	t.Cleanup(func() { _ = sleeper.Process.Kill() })
	if err := testbed.WriteStaleStateForTest(prefix, []string{ns}, sleeper.Process.Pid); err != nil {
		t.Fatal(err)
	}

	if err := testbed.Sweep(ctx, testLogger(t)); err != nil {
		t.Fatalf("sweep: %v", err)
	}
	if netnsExists(t, ns) {
		t.Errorf("namespace %s survived the sweep", ns)
	}
	if _, err := os.Stat(filepath.Join(testbed.RunBase(), prefix)); err == nil {
		t.Errorf("run dir of %s survived the sweep", prefix)
	}
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		t.Errorf("recorded process %d survived the sweep", sleeper.Process.Pid)
	}
}

// TestTeardownOnSignal starts a bed in a child process, sends it SIGTERM, and
// checks that the child removed its namespaces, link and processes.
func TestTeardownOnSignal(t *testing.T) {
	needRoot(t)
	if os.Getenv("HERALD_SIGNAL_HELPER") == "1" {
		t.Skip("helper mode runs TestSignalHelper only")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestSignalHelper$", "-test.v")
	cmd.Env = append(os.Environ(), "HERALD_SIGNAL_HELPER=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	var runDir string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "RUNDIR "); ok {
			runDir = d
			break
		}
	}
	if runDir == "" {
		t.Fatal("helper did not report its bed")
	}
	go func() {
		for sc.Scan() {
		}
	}()
	st, err := testbed.ReadState(runDir)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	t.Logf("helper exited %v after SIGTERM", time.Since(start).Round(time.Millisecond))
	for _, ns := range st.Namespaces {
		if netnsExists(t, ns) {
			t.Errorf("namespace %s left behind", ns)
		}
	}
	for _, p := range st.Processes {
		if testbed.ProcessAlive(p) {
			t.Errorf("process %s (pid %d) left behind", p.Name, p.PID)
		}
	}
	for _, l := range st.RootLinks {
		if err := exec.Command("ip", "link", "show", "dev", l).Run(); err == nil {
			t.Errorf("link %s left behind", l)
		}
	}
	if _, err := os.Stat(runDir); err == nil {
		t.Errorf("run dir %s left behind", runDir)
	}
	t.Logf("SIGTERM removed %d namespaces, %d processes, %d root links", len(st.Namespaces), len(st.Processes), len(st.RootLinks))
}

// TestSignalHelper is the child of TestTeardownOnSignal.
func TestSignalHelper(t *testing.T) {
	if os.Getenv("HERALD_SIGNAL_HELPER") != "1" {
		t.Skip("run by TestTeardownOnSignal")
	}
	bed := testbed.Start(t, testbed.Options{Nodes: 1, NoKubeProxy: true, NoCRDs: true})
	fmt.Printf("RUNDIR %s\n", bed.RunDir)
	time.Sleep(time.Minute)
	t.Error("no signal arrived")
}
