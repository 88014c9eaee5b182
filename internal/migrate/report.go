package migrate

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Severity says how faithfully one part of MetalLB's configuration moved to
// Herald.
type Severity int

// Severities, from the most to the least faithful.
const (
	// Converted: a Herald object was written for a MetalLB object.
	Converted Severity = iota
	// Ignored: the input held something that is not configuration (another
	// kind, a status object); there is nothing to convert.
	Ignored
	// Adjusted: the same behaviour in Herald's spelling (a renamed alias,
	// a dropped default, a priority rewritten by the documented rule).
	Adjusted
	// Differs: converted, but Herald behaves differently, or the user must
	// act (copy a Secret).
	Differs
	// NoEquivalent: a field or an object has no equivalent in Herald and
	// was dropped, or Herald would refuse the result. The conversion is not
	// faithful.
	NoEquivalent
)

// String names the severity as the report's sections do.
func (s Severity) String() string {
	switch s {
	case Converted:
		return "converted"
	case Ignored:
		return "ignored"
	case Adjusted:
		return "adjusted"
	case Differs:
		return "behaves differently"
	case NoEquivalent:
		return "no equivalent"
	}
	return fmt.Sprintf("Severity(%d)", int(s))
}

// Finding is one line of the report.
type Finding struct {
	Severity Severity
	// Source names the MetalLB object, as "metallb.io/v1beta2 BGPPeer
	// metallb-system/peer1" or "v1 ConfigMap metallb-system/config".
	Source string
	// Field is the path of the field in the source, such as
	// "spec.disableMP"; empty for the whole object.
	Field string
	// Message says what happened, for a person.
	Message string
}

// Report is what the conversion did, sorted by severity, source and field.
type Report struct {
	Findings []Finding
}

func (r *Report) add(sev Severity, source, field, format string, args ...any) {
	r.Findings = append(r.Findings, Finding{Severity: sev, Source: source, Field: field, Message: fmt.Sprintf(format, args...)})
}

func (r *Report) sort() {
	slices.SortStableFunc(r.Findings, func(a, b Finding) int {
		return cmp.Or(cmp.Compare(a.Severity, b.Severity), cmp.Compare(a.Source, b.Source), cmp.Compare(a.Field, b.Field), cmp.Compare(a.Message, b.Message))
	})
	r.Findings = slices.Compact(r.Findings)
}

// Count returns the number of findings of severity s.
func (r *Report) Count(s Severity) int {
	n := 0
	for _, f := range r.Findings {
		if f.Severity == s {
			n++
		}
	}
	return n
}

// Faithful reports whether everything converted keeps its meaning: no
// finding has no equivalent.
func (r *Report) Faithful() bool { return r.Count(NoEquivalent) == 0 }

// switchOverNotes are printed at the end of every report: what the objects
// do not carry but a switch-over must handle.
func switchOverNotes() []string {
	return []string{
		"Service annotations: Herald honours metallb.io/loadBalancerIPs, address-pool and allow-shared-ip (with a MetalLBAnnotation warning event) and writes herald.io/ip-allocated-from-pool; MetalLB's metallb.io/ip-allocated-from-pool (and metallb.universe.tf/) annotation stays until `kubectl herald migrate cleanup` removes it, once MetalLB's controller is stopped.",
		"switch-over: `kubectl herald migrate plan` prints the steps for this cluster (no window without an announcement in L2, no route lost in BGP) and the rollback.",
		"host ports: MetalLB's speaker listens on 7946 (memberlist, TCP and UDP), 7472 (metrics) and, in FRR mode, 7473 (FRR metrics) on the host network; Herald's speaker defaults to the same 7946, 7472 and 7473. To run both side by side, move Herald's (chart values speaker.memberlist.port, ports.metrics, ports.health; speaker flags --memberlist-port, --metrics-addr, --health-addr), for example to 7947, 7572 and 7573, and open the memberlist port between the nodes.",
		"Secrets: a BGP password Secret must be copied to Herald's namespace (herald-system), type kubernetes.io/basic-auth, key \"password\".",
	}
}

// WriteText writes the report for a person: one section per severity, then
// the notes on the switch-over and a summary line.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	for _, sev := range []Severity{Converted, Ignored, Adjusted, Differs, NoEquivalent} {
		n := r.Count(sev)
		if n == 0 {
			continue
		}
		fmt.Fprintf(&b, "%s (%d):\n", sev, n)
		for _, f := range r.Findings {
			if f.Severity != sev {
				continue
			}
			if f.Field != "" {
				fmt.Fprintf(&b, "  %s: %s: %s\n", f.Source, f.Field, f.Message)
			} else {
				fmt.Fprintf(&b, "  %s: %s\n", f.Source, f.Message)
			}
		}
	}
	if r.Count(Converted) == 0 && r.Count(NoEquivalent) == 0 {
		b.WriteString("no MetalLB configuration found\n")
	}
	b.WriteString("before switching over:\n")
	for _, n := range switchOverNotes() {
		fmt.Fprintf(&b, "  - %s\n", n)
	}
	verdict := "faithful"
	if !r.Faithful() {
		verdict = "NOT faithful: review the \"no equivalent\" lines"
	}
	fmt.Fprintf(&b, "summary: %d converted, %d adjusted, %d behave differently, %d without equivalent; %s\n",
		r.Count(Converted), r.Count(Adjusted), r.Count(Differs), r.Count(NoEquivalent), verdict)
	_, err := io.WriteString(w, b.String())
	return err
}
