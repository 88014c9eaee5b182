package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/internal/bgpwhy"
)

// Exit codes of "status" (exitUsage and exitUnreachable as for "why").
const (
	// exitUnhealthy: something is not as it should be (the report's
	// problems say what): a pool not Ready, conflicting or exhausted; a
	// Service without an address or with one that no node announces; a BGP
	// session not Established.
	exitUnhealthy = 1
)

// statusFlags are the flags of "kubectl herald status".
type statusFlags = readFlags

// readFlags are the flags of the commands that read Herald's state from a
// cluster (status, why).
type readFlags struct {
	kubeconfig, context, lbClass, heraldNS, output string
}

func (f *readFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig (default: $KUBECONFIG or ~/.kube/config)")
	fs.StringVar(&f.context, "context", "", "kubeconfig context (default: the current one)")
	fs.StringVar(&f.lbClass, "lb-class", "", "the loadBalancerClass Herald serves (its --lb-class)")
	fs.StringVar(&f.heraldNS, "herald-namespace", "herald-system", "Herald's namespace (BGPSessionState objects)")
	fs.StringVar(&f.output, "o", "", "output format: empty (tables), json or yaml")
}

// poolStatus is one IPAddressPool in the report.
type poolStatus struct {
	Name          string   `json:"name"`
	AssignedIPv4  int64    `json:"assignedIPv4"`
	AvailableIPv4 int64    `json:"availableIPv4"`
	AssignedIPv6  int64    `json:"assignedIPv6"`
	AvailableIPv6 int64    `json:"availableIPv6"`
	Conditions    []string `json:"conditions"` // "Type=Status (Reason)"
}

// serviceStatus is one Service of Herald's class in the report.
type serviceStatus struct {
	Service string   `json:"service"` // namespace/name
	IPs     []string `json:"ips"`
	Pool    string   `json:"pool,omitempty"`
	// Announcing lists "node (L2)" or "node (BGP: peer,...)".
	Announcing []string `json:"announcing"`
}

// sessionStatus is one BGP session of one node.
type sessionStatus struct {
	Node     string `json:"node"`
	Peer     string `json:"peer"`
	Address  string `json:"address,omitempty"`
	State    string `json:"state"`
	BFD      string `json:"bfd,omitempty"`
	Prefixes int64  `json:"prefixes"`
	Error    string `json:"error,omitempty"`
}

// statusReport is what "status" prints.
type statusReport struct {
	Pools    []poolStatus    `json:"pools"`
	Services []serviceStatus `json:"services"`
	Sessions []sessionStatus `json:"bgpSessions"`
	// Problems are what is not healthy, in plain words; none when all is.
	Problems []string `json:"problems"`
}

// statusInput is what the summary reads, gathered from the cluster.
type statusInput struct {
	lbClass       string
	pools         []v1beta1.IPAddressPool
	services      []corev1.Service
	announcements []v1beta1.ServiceAnnouncement
	sessions      []v1beta1.BGPSessionState
}

// summarize builds the report. It is pure.
func summarize(in statusInput) statusReport {
	r := statusReport{Pools: []poolStatus{}, Services: []serviceStatus{}, Sessions: []sessionStatus{}, Problems: []string{}}
	problem := func(format string, args ...any) { r.Problems = append(r.Problems, fmt.Sprintf(format, args...)) }

	for _, p := range in.pools {
		ps := poolStatus{Name: p.Name, AssignedIPv4: p.Status.AssignedIPv4, AvailableIPv4: p.Status.AvailableIPv4,
			AssignedIPv6: p.Status.AssignedIPv6, AvailableIPv6: p.Status.AvailableIPv6, Conditions: []string{}}
		for _, c := range p.Status.Conditions {
			s := fmt.Sprintf("%s=%s", c.Type, c.Status)
			if c.Reason != "" {
				s += " (" + c.Reason + ")"
			}
			ps.Conditions = append(ps.Conditions, s)
		}
		switch ready := meta.FindStatusCondition(p.Status.Conditions, v1beta1.ConditionReady); {
		case ready == nil:
			problem("pool %s: not judged yet (no Ready condition): is the controller running?", p.Name)
		case ready.Status != metav1.ConditionTrue:
			problem("pool %s: not Ready: %s", p.Name, ready.Message)
		}
		for _, t := range []string{v1beta1.ConditionConflicting, v1beta1.ConditionExhausted} {
			if c := meta.FindStatusCondition(p.Status.Conditions, t); c != nil && c.Status == metav1.ConditionTrue {
				problem("pool %s: %s: %s", p.Name, t, c.Message)
			}
		}
		r.Pools = append(r.Pools, ps)
	}
	slices.SortFunc(r.Pools, func(a, b poolStatus) int { return strings.Compare(a.Name, b.Name) })

	state := func(node, peer string) (string, bool) {
		for _, s := range in.sessions {
			if s.Status.Node == node && s.Status.Peer == peer {
				return s.Status.State, true
			}
		}
		return "", false
	}
	ann := map[string][]v1beta1.ServiceAnnouncementStatus{} // namespace/service -> announcements
	for _, a := range in.announcements {
		k := a.Namespace + "/" + a.Status.Service
		ann[k] = append(ann[k], a.Status)
	}
	for i := range in.services {
		svc := &in.services[i]
		if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
			continue
		}
		class := ""
		if svc.Spec.LoadBalancerClass != nil {
			class = *svc.Spec.LoadBalancerClass
		}
		if class != in.lbClass {
			continue
		}
		key := svc.Namespace + "/" + svc.Name
		ss := serviceStatus{Service: key, IPs: []string{}, Announcing: []string{},
			Pool: svc.Annotations["herald.io/ip-allocated-from-pool"]}
		for _, ing := range svc.Status.LoadBalancer.Ingress {
			if ing.IP != "" {
				ss.IPs = append(ss.IPs, ing.IP)
			}
		}
		as := ann[key]
		slices.SortFunc(as, func(a, b v1beta1.ServiceAnnouncementStatus) int {
			return strings.Compare(a.Protocol+a.Node, b.Protocol+b.Node)
		})
		announced := map[string]bool{}
		for _, a := range as {
			s := a.Node + " (" + a.Protocol
			if len(a.Peers) > 0 {
				s += ": " + strings.Join(a.Peers, ",")
			}
			ss.Announcing = append(ss.Announcing, s+")")
			for _, ip := range a.IPs {
				announced[ip] = true
			}
		}
		// Advertised in BGP mode alone, by nodes none of which has an
		// Established session to a peer it advertises to: no router
		// learns the route (as the reporting speaker judges it).
		l2 := slices.ContainsFunc(as, func(a v1beta1.ServiceAnnouncementStatus) bool { return a.Protocol == v1beta1.ProtocolL2 })
		v := bgpwhy.Judge(as, state, bgpwhy.Coverage{})
		switch {
		case len(ss.IPs) == 0:
			problem("service %s: no address (kubectl herald why %s -n %s)", key, svc.Name, svc.Namespace)
		case !l2 && v.Reason == bgpwhy.ReasonNoSession:
			problem("service %s: no router learns %s: %s (kubectl herald why %s -n %s)", key, strings.Join(v.IPs, ","), v.Message(), svc.Name, svc.Namespace)
		default:
			for _, ip := range ss.IPs {
				if !announced[ip] {
					problem("service %s: no node announces %s (kubectl herald why %s -n %s)", key, ip, svc.Name, svc.Namespace)
				}
			}
		}
		r.Services = append(r.Services, ss)
	}
	slices.SortFunc(r.Services, func(a, b serviceStatus) int { return strings.Compare(a.Service, b.Service) })

	for _, s := range in.sessions {
		st := s.Status
		r.Sessions = append(r.Sessions, sessionStatus{Node: st.Node, Peer: st.Peer, Address: st.PeerAddress, State: st.State,
			BFD: st.BFDState, Prefixes: st.PrefixesSent, Error: st.LastError})
		if st.State != "Established" {
			msg := ""
			if st.LastError != "" {
				msg = ": " + st.LastError
			}
			problem("BGP session of node %s to peer %s is %s%s", st.Node, st.Peer, st.State, msg)
		}
	}
	slices.SortFunc(r.Sessions, func(a, b sessionStatus) int { return strings.Compare(a.Node+"/"+a.Peer, b.Node+"/"+b.Peer) })
	return r
}

func runStatus(ctx context.Context, args []string, e env) int {
	var f statusFlags
	fs := flag.NewFlagSet("kubectl herald status", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	f.register(fs)
	fs.Usage = func() {
		e.stderrln(`Usage: kubectl herald status [-o json|yaml]

Shows the pools (addresses used and free per family, conditions), the
Services of Herald's class with their addresses, pool and announcing nodes
(from the ServiceAnnouncement objects), the BGP sessions of every node
(from the BGPSessionState objects), and what is not healthy.

Exit status: 0 when everything is healthy, 1 when something is not (a pool
not Ready, conflicting or exhausted; a Service without an address, or with
one that no node announces; a BGP session not Established), 2 on bad flags,
3 when the cluster cannot be read.

Flags:`)
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args, e, "kubectl herald status"); !ok {
		return code
	}
	if !slices.Contains([]string{"", "json", "yaml"}, f.output) {
		fs.Usage()
		return exitUsage
	}
	dc, err := e.dynamicClient(f.kubeconfig, f.context)
	if err != nil {
		e.stderrln("kubectl herald status:", err)
		return exitUnreachable
	}
	in := statusInput{lbClass: f.lbClass}
	for _, step := range []error{
		listInto(ctx, dc.Resource(heraldGVR("ipaddresspools")), metav1.ListOptions{}, &in.pools),
		listInto(ctx, dc.Resource(gvrServices), metav1.ListOptions{}, &in.services),
		listInto(ctx, dc.Resource(heraldGVR("serviceannouncements")), metav1.ListOptions{}, &in.announcements),
		listInto(ctx, dc.Resource(heraldGVR("bgpsessionstates")).Namespace(f.heraldNS), metav1.ListOptions{}, &in.sessions),
	} {
		if step != nil {
			e.stderrln("kubectl herald status:", step)
			return exitUnreachable
		}
	}
	r := summarize(in)
	if err := printStatus(e.stdout, r, f.output); err != nil {
		e.stderrln("kubectl herald status:", err)
		return exitUnreachable
	}
	if len(r.Problems) > 0 {
		return exitUnhealthy
	}
	return exitOK
}

// printMachine writes a report for scripts: format is "json" or "yaml".
func printMachine(w io.Writer, r any, format string) error {
	if format == "yaml" {
		b, err := yaml.Marshal(r)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

func printStatus(w io.Writer, r statusReport, format string) error {
	if format == "json" || format == "yaml" {
		return printMachine(w, r, format)
	}
	none := func(s []string) string {
		if len(s) == 0 {
			return "-"
		}
		return strings.Join(s, " ")
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	t := &report{w: tw}
	t.println("POOL\tIPV4 USED\tIPV4 FREE\tIPV6 USED\tIPV6 FREE\tCONDITIONS")
	for _, p := range r.Pools {
		t.printf("%s\t%d\t%d\t%d\t%d\t%s\n", p.Name, p.AssignedIPv4, p.AvailableIPv4, p.AssignedIPv6, p.AvailableIPv6, none(p.Conditions))
	}
	t.println("\nSERVICE\tIP\tPOOL\tANNOUNCED BY")
	for _, s := range r.Services {
		pool := s.Pool
		if pool == "" {
			pool = "-"
		}
		t.printf("%s\t%s\t%s\t%s\n", s.Service, none(s.IPs), pool, none(s.Announcing))
	}
	if len(r.Sessions) > 0 {
		t.println("\nNODE\tPEER\tADDRESS\tSTATE\tBFD\tPREFIXES\tERROR")
		for _, s := range r.Sessions {
			t.printf("%s\t%s\t%s\t%s\t%s\t%d\t%s\n", s.Node, s.Peer, s.Address, s.State, s.BFD, s.Prefixes, s.Error)
		}
	}
	if t.err != nil {
		return t.err
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.Problems) == 0 {
		_, err := fmt.Fprintln(w, "\nAll healthy.")
		return err
	}
	out := &report{w: w}
	out.println("\nProblems:")
	for _, p := range r.Problems {
		out.println("  - " + p)
	}
	return out.err
}
