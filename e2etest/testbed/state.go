package testbed

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"
)

// State is what a bed records in RunDir/state.json, so that `testbed down`
// and Sweep can remove it without guessing: its namespaces, root links and
// the processes it started, by PID and start time.
type State struct {
	Prefix     string          `json:"prefix"`
	RunDir     string          `json:"runDir"`
	OwnerPID   int             `json:"ownerPID"`
	OwnerStart uint64          `json:"ownerStart"`
	Detached   bool            `json:"detached"`
	Created    time.Time       `json:"created"`
	Slot       int             `json:"slot"`
	APIServer  string          `json:"apiServer,omitempty"`
	Kubeconfig string          `json:"kubeconfig,omitempty"`
	Namespaces []string        `json:"namespaces"`
	RootLinks  []string        `json:"rootLinks"`
	Processes  []ProcessRecord `json:"processes"`
	ExtraDirs  []string        `json:"extraDirs,omitempty"`
	// RealNodes are the nodes with containerd and a kubelet.
	RealNodes []RealNodeRecord `json:"realNodes,omitempty"`
	// Sysctls are the host's values of the sysctls the kubelet rewrites,
	// when this bed saved them.
	Sysctls map[string]string `json:"sysctls,omitempty"`
}

const stateFile = "state.json"

// DefaultRunBase is where run directories go unless HERALD_RUN_DIR says
// otherwise.
const DefaultRunBase = "/tmp/herald-testbed"

// RunBase returns the directory that holds every bed's run directory.
func RunBase() string {
	if d := os.Getenv("HERALD_RUN_DIR"); d != "" {
		return d
	}
	return DefaultRunBase
}

// prefixRE matches the names of everything a bed creates: hl<pid><letter>.
var prefixRE = regexp.MustCompile(`^(hl([0-9]+)[a-z])(-|$)`)

func writeState(s *State) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(s.RunDir, stateFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(s.RunDir, stateFile)); err != nil {
		return fmt.Errorf("write state: %w", err)
	}
	return nil
}

// ReadState reads the state file of the bed whose run directory is dir.
func ReadState(dir string) (*State, error) {
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if err != nil {
		return nil, err
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("state %s: %w", dir, err)
	}
	return &s, nil
}

// ListStates returns the state of every bed recorded under RunBase.
func ListStates() ([]*State, error) {
	ents, err := os.ReadDir(RunBase())
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []*State
	for _, e := range ents {
		if !e.IsDir() || !prefixRE.MatchString(e.Name()) {
			continue
		}
		s, err := ReadState(filepath.Join(RunBase(), e.Name()))
		if err != nil {
			continue
		}
		out = append(out, s)
	}
	return out, nil
}

// live reports whether the bed's owner still runs it: a detached bed lives
// until `testbed down`; an attached one as long as its owner process.
func (s *State) live() bool {
	return s.Detached || pidAlive(s.OwnerPID, s.OwnerStart)
}

// ProcessAlive reports whether a recorded process still runs (same PID and
// start time).
func ProcessAlive(r ProcessRecord) bool { return pidAlive(r.PID, r.Start) }

// WriteStaleStateForTest records a bed of a dead owner, for tests of Sweep:
// prefix must be hl<pid><letter> of a dead process.
func WriteStaleStateForTest(prefix string, namespaces []string, pids ...int) error {
	dir := filepath.Join(RunBase(), prefix)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	st := &State{Prefix: prefix, RunDir: dir, Namespaces: namespaces, Created: time.Now()}
	if m := prefixRE.FindStringSubmatch(prefix); m != nil {
		st.OwnerPID, _ = strconv.Atoi(m[2])
	}
	for _, pid := range pids {
		start, err := procStartTime(pid)
		if err != nil {
			return err
		}
		st.Processes = append(st.Processes, ProcessRecord{Name: fmt.Sprintf("pid%d", pid), PID: pid, Start: start})
	}
	return writeState(st)
}
