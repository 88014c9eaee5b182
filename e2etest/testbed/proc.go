package testbed

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Process is a process the bed started and recorded by PID.
type Process struct {
	// Name identifies the process in logs and in the state file.
	Name string
	// NS is the namespace it runs in; empty for the root namespace.
	NS string
	// PID is its process ID.
	PID int
	// Log is the file that holds its standard output and error.
	Log string

	start uint64 // start time in clock ticks, from /proc/PID/stat
	cmd   *exec.Cmd
	done  chan struct{}
	err   error
}

// ProcessRecord is how the state file records a process: by PID and start
// time (clock ticks since boot), which together survive PID reuse.
type ProcessRecord struct {
	Name  string `json:"name"`
	NS    string `json:"ns,omitempty"`
	PID   int    `json:"pid"`
	Start uint64 `json:"start"`
}

// startProcess starts argv (inside ns unless ns is empty) with its output in
// logDir/name.log. Detached processes get their own session, so that they
// outlive the program that started them (the CLI); others are killed by the
// kernel when the starting thread dies.
func startProcess(ns, name, logDir string, detached bool, env []string, argv ...string) (*Process, error) {
	logPath := filepath.Join(logDir, name+".log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("process %s: %w", name, err)
	}
	defer logf.Close()
	full := argv
	if ns != "" {
		full = append([]string{"ip", "netns", "exec", ns}, argv...)
	}
	// Not CommandContext: the bed, not a context, decides when it stops.
	cmd := exec.Command(full[0], full[1:]...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	if detached {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	} else {
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("process %s: start %s: %w", name, strings.Join(argv, " "), err)
	}
	p := &Process{Name: name, NS: ns, PID: cmd.Process.Pid, Log: logPath, cmd: cmd, done: make(chan struct{})}
	p.start, _ = procStartTime(p.PID)
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Running reports whether the process is still alive.
func (p *Process) Running() bool {
	if p.done != nil {
		select {
		case <-p.done:
			return false
		default:
			return true
		}
	}
	return pidAlive(p.PID, p.start)
}

// Exited returns a channel closed when the process exits; nil for processes
// that are not children of this program.
func (p *Process) Exited() <-chan struct{} { return p.done }

// Signal sends sig to the process, if it is still the one the bed started.
func (p *Process) Signal(sig syscall.Signal) error {
	if !p.Running() {
		return fmt.Errorf("process %s (pid %d) is not running", p.Name, p.PID)
	}
	return syscall.Kill(p.PID, sig)
}

// Stop sends SIGTERM, waits up to grace, then sends SIGKILL and waits for the
// process to go. It returns nil when the process is gone.
func (p *Process) Stop(grace time.Duration) error {
	if !p.Running() {
		return nil
	}
	_ = syscall.Kill(p.PID, syscall.SIGTERM)
	if p.wait(grace) {
		return nil
	}
	_ = syscall.Kill(p.PID, syscall.SIGKILL)
	if p.wait(5 * time.Second) {
		return nil
	}
	return fmt.Errorf("process %s (pid %d) did not exit after SIGKILL", p.Name, p.PID)
}

// Kill sends SIGKILL and waits for the process to go: a crash, as seen by the
// rest of the bed.
func (p *Process) Kill() error {
	if !p.Running() {
		return nil
	}
	_ = syscall.Kill(p.PID, syscall.SIGKILL)
	if p.wait(5 * time.Second) {
		return nil
	}
	return fmt.Errorf("process %s (pid %d) did not exit after SIGKILL", p.Name, p.PID)
}

func (p *Process) wait(d time.Duration) bool {
	if p.done != nil {
		select {
		case <-p.done:
			return true
		case <-time.After(d):
			return false
		}
	}
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if !pidAlive(p.PID, p.start) {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

func (p *Process) record() ProcessRecord {
	return ProcessRecord{Name: p.Name, NS: p.NS, PID: p.PID, Start: p.start}
}

// processFromRecord rebuilds a Process from the state file, for programs that
// did not start it (testbed down, Sweep).
func processFromRecord(r ProcessRecord) *Process {
	return &Process{Name: r.Name, NS: r.NS, PID: r.PID, start: r.Start}
}

// procStartTime returns field 22 of /proc/PID/stat: the start time in clock
// ticks since boot. With the PID it identifies a process, even after PID reuse.
func procStartTime(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat")
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state); the start time is field 22.
	if len(f) < 20 {
		return 0, errors.New("malformed /proc stat")
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// pidAlive reports whether pid is alive, is not a zombie, and (when start is
// not zero) is still the process that started at start.
func pidAlive(pid int, start uint64) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && len(s) > i+2 && s[i+2] == 'Z' {
		return false
	}
	if start == 0 {
		return true
	}
	st, err := procStartTime(pid)
	return err == nil && st == start
}

// waitFor polls cond every interval until it returns true, returns an error,
// or ctx ends.
func waitFor(ctx context.Context, interval time.Duration, what string, cond func(context.Context) (bool, error)) error {
	var last error
	for {
		ok, err := cond(ctx)
		if err == nil && ok {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			if last != nil {
				return fmt.Errorf("waiting for %s: %w (last error: %v)", what, ctx.Err(), last)
			}
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-time.After(interval):
		}
	}
}
