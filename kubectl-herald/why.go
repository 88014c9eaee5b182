package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/internal/bgpwhy"
)

// Exit codes of "why".
const (
	// exitBroken: a link of the chain is broken (the report names it).
	exitBroken = 1
	// exitUnreachable: the cluster or the Service could not be read.
	exitUnreachable = 3
)

// whyFlags are the flags of "kubectl herald why".
type whyFlags struct {
	readFlags
	namespace string
}

// Link statuses.
const (
	linkOK     = "ok"
	linkBroken = "broken"
	linkWarn   = "warning"
	linkSkip   = "n/a"
)

// link is one step of the chain from the Service to a node that answers.
type link struct {
	Step   string `json:"step"`
	Status string `json:"status"`
	Detail string `json:"detail"`
}

// nodeVerdict says whether one node may announce the Service in layer 2
// mode, and why not.
type nodeVerdict struct {
	Node     string `json:"node"`
	Eligible bool   `json:"eligible"`
	Reason   string `json:"reason,omitempty"`
}

// whyReport is what "why" prints.
type whyReport struct {
	Service string        `json:"service"`
	Links   []link        `json:"links"`
	Nodes   []nodeVerdict `json:"nodes,omitempty"`
	// BGP is what the BGP link judged: the advertising nodes and the
	// state of each session they advertise on.
	BGP *bgpwhy.Verdict `json:"bgp,omitempty"`
	// Broken is the first broken link in plain words; empty when none is.
	Broken string `json:"broken,omitempty"`
}

// whyInput is what the diagnosis reads, gathered from the cluster.
type whyInput struct {
	svc      *corev1.Service
	lbClass  string
	events   []corev1.Event // the Service's events
	pools    []v1beta1.IPAddressPool
	l2       []v1beta1.L2Advertisement
	bgpAds   []v1beta1.BGPAdvertisement
	peers    []v1beta1.BGPPeer
	nodes    []corev1.Node
	slices   []discoveryv1.EndpointSlice
	sessions []v1beta1.BGPSessionState
	// announcements are the Service's ServiceAnnouncements (who announces
	// it now, as the speakers keep them).
	announcements []v1beta1.ServiceAnnouncement
	kubeProxy     *corev1.ConfigMap // kube-system/kube-proxy, nil when unreadable
}

// latest returns the message of the newest event with one of reasons, and
// its reason.
func latest(evs []corev1.Event, reasons ...string) (reason, msg string) {
	var best *corev1.Event
	for i := range evs {
		e := &evs[i]
		if !slices.Contains(reasons, e.Reason) {
			continue
		}
		if best == nil || eventTime(e).After(eventTime(best).Time) {
			best = e
		}
	}
	if best == nil {
		return "", ""
	}
	return best.Reason, best.Message
}

func eventTime(e *corev1.Event) metav1.Time {
	if !e.LastTimestamp.IsZero() {
		return e.LastTimestamp
	}
	if !e.EventTime.IsZero() {
		return metav1.Time{Time: e.EventTime.Time}
	}
	return e.CreationTimestamp
}

// diagnose walks the chain: class, allocation, pool, advertisement, node
// eligibility, announcement, BGP sessions, strictARP. It is pure.
func diagnose(in whyInput) whyReport {
	svc := in.svc
	r := whyReport{Service: svc.Namespace + "/" + svc.Name}
	add := func(step, status, format string, args ...any) {
		l := link{Step: step, Status: status, Detail: fmt.Sprintf(format, args...)}
		r.Links = append(r.Links, l)
		if status == linkBroken && r.Broken == "" {
			r.Broken = step + ": " + l.Detail
		}
	}
	// 1. Type and class.
	if svc.Spec.Type != corev1.ServiceTypeLoadBalancer {
		add("class", linkBroken, "the Service is of type %s, not LoadBalancer", svc.Spec.Type)
		return r
	}
	class := ""
	if svc.Spec.LoadBalancerClass != nil {
		class = *svc.Spec.LoadBalancerClass
	}
	if class != in.lbClass {
		add("class", linkBroken, "loadBalancerClass is %q but Herald serves %q (--lb-class)", class, in.lbClass)
		return r
	}
	add("class", linkOK, "type LoadBalancer, loadBalancerClass %q", class)

	// 2. Allocation.
	var ips []string
	for _, ing := range svc.Status.LoadBalancer.Ingress {
		if ing.IP != "" {
			ips = append(ips, ing.IP)
		}
	}
	if len(ips) == 0 {
		if _, msg := latest(in.events, "AllocationFailed"); msg != "" {
			add("allocation", linkBroken, "no address: %s", msg)
		} else {
			add("allocation", linkBroken, "no address yet and no AllocationFailed event: is the controller running and leading?")
		}
		return r
	}
	add("allocation", linkOK, "%s", strings.Join(ips, ", "))

	// 3. Pool.
	poolNames := strings.Split(svc.Annotations["herald.io/ip-allocated-from-pool"], ",")
	poolNames = slices.DeleteFunc(poolNames, func(s string) bool { return s == "" })
	var pools []*v1beta1.IPAddressPool
	for _, name := range poolNames {
		for i := range in.pools {
			if in.pools[i].Name == name {
				pools = append(pools, &in.pools[i])
			}
		}
	}
	if len(pools) == 0 {
		add("pool", linkBroken, "the addresses are in no IPAddressPool (out of pool): they are announced by nobody")
		return r
	}
	for _, p := range pools {
		st := linkOK
		for _, c := range p.Status.Conditions {
			if c.Type == v1beta1.ConditionExhausted && c.Status == metav1.ConditionTrue {
				st = linkWarn
			}
		}
		add("pool", st, "%s (%d/%d IPv4, %d/%d IPv6 used)", p.Name, p.Status.AssignedIPv4, p.Status.AssignedIPv4+p.Status.AvailableIPv4,
			p.Status.AssignedIPv6, p.Status.AssignedIPv6+p.Status.AvailableIPv6)
	}

	// 4. Advertisements.
	covers := func(pools []string, sels []metav1.LabelSelector) bool {
		for _, p := range poolNames {
			if slices.Contains(pools, p) {
				return selects(sels, svc.Labels)
			}
		}
		return false
	}
	var l2 []*v1beta1.L2Advertisement
	for i := range in.l2 {
		if covers(in.l2[i].Spec.IPAddressPools, in.l2[i].Spec.ServiceSelectors) {
			l2 = append(l2, &in.l2[i])
		}
	}
	var bgpAds []string
	var bgpCov []bgpwhy.Ad
	for _, a := range in.bgpAds {
		if covers(a.Spec.IPAddressPools, a.Spec.ServiceSelectors) {
			bgpAds = append(bgpAds, a.Name)
			sels := a.Spec.NodeSelectors
			bgpCov = append(bgpCov, bgpwhy.Ad{Name: a.Name, Peers: a.Spec.Peers, Selects: func(node string) bool {
				for _, n := range in.nodes {
					if n.Name == node {
						return selects(sels, n.Labels)
					}
				}
				return false
			}})
		}
	}
	if len(l2) == 0 && len(bgpAds) == 0 {
		add("advertisement", linkBroken, "no L2Advertisement or BGPAdvertisement names pool %s and selects the Service: the address is allocated but announced nowhere",
			strings.Join(poolNames, ","))
		return r
	}
	names := []string{}
	for _, a := range l2 {
		names = append(names, "L2Advertisement/"+a.Name)
	}
	for _, a := range bgpAds {
		names = append(names, "BGPAdvertisement/"+a)
	}
	add("advertisement", linkOK, "%s", strings.Join(names, ", "))

	// 5. Node eligibility (layer 2).
	local := svc.Spec.ExternalTrafficPolicy == corev1.ServiceExternalTrafficPolicyLocal
	endpoints := map[string]bool{}
	for _, es := range in.slices {
		for _, ep := range es.Endpoints {
			ready := ep.Conditions.Ready == nil || *ep.Conditions.Ready
			serving := ep.Conditions.Serving != nil && *ep.Conditions.Serving
			if ep.NodeName != nil && (ready || serving) {
				endpoints[*ep.NodeName] = true
			}
		}
	}
	if len(l2) > 0 {
		eligible := 0
		for _, n := range in.nodes {
			v := nodeVerdict{Node: n.Name}
			selected := false
			for _, a := range l2 {
				if selects(a.Spec.NodeSelectors, n.Labels) {
					selected = true
				}
			}
			excluded, unavailable := nodeExcluded(&n)
			switch {
			case excluded:
				v.Reason = "label node.kubernetes.io/exclude-from-external-load-balancers (ignored only when the speakers run with --ignore-exclude-lb)"
			case unavailable:
				v.Reason = "condition NetworkUnavailable=True"
			case !selected:
				v.Reason = "no L2Advertisement's nodeSelectors select it"
			case local && !endpoints[n.Name]:
				v.Reason = "externalTrafficPolicy: Local and no ready endpoint on it"
			default:
				v.Eligible = true
				eligible++
			}
			r.Nodes = append(r.Nodes, v)
		}
		if eligible == 0 {
			detail := "no node may announce the address"
			if local && len(endpoints) == 0 {
				detail = "externalTrafficPolicy is Local and the Service has no ready endpoint on any node"
			} else if len(r.Nodes) > 0 {
				detail += "; each node's reason is listed below"
			}
			add("eligibility", linkBroken, "%s", detail)
		} else {
			add("eligibility", linkOK, "%d of %d nodes eligible (interfaces are checked by the speakers only)", eligible, len(in.nodes))
		}

		// 6. Announcement: the ServiceAnnouncement says who answers now; the
		// speakers' events say why not, or what happened last.
		var owner *v1beta1.ServiceAnnouncementStatus
		for i := range in.announcements {
			if a := &in.announcements[i].Status; a.Protocol == v1beta1.ProtocolL2 && a.Service == svc.Name {
				owner = a
			}
		}
		reason, msg := latest(in.events, "Announcing", "Withdrawn", "NotAnnounced")
		switch {
		case owner != nil:
			where := "every usable interface"
			if len(owner.Interfaces) > 0 {
				where = strings.Join(owner.Interfaces, ",")
			}
			add("announcement", linkOK, "node %s answers for %s on %s (ServiceAnnouncement %s.l2)", owner.Node, strings.Join(owner.IPs, ","), where, svc.Name)
		case reason == "Announcing":
			add("announcement", linkOK, "%s", msg)
		case reason == "NotAnnounced":
			add("announcement", linkBroken, "%s", msg)
		case reason == "Withdrawn":
			add("announcement", linkWarn, "%s", msg)
		default:
			add("announcement", linkWarn, "no Announcing event (events expire after an hour); check herald_layer2_announced_ips on the nodes")
		}

		// 7. strictARP under IPVS.
		if in.kubeProxy != nil {
			conf := in.kubeProxy.Data["config.conf"]
			if strings.Contains(conf, "mode: ipvs") && !strings.Contains(conf, "strictARP: true") {
				add("strictARP", linkBroken, "kube-proxy runs in IPVS mode without strictARP: every node answers ARP for the address; set ipvs.strictARP: true in kube-system/kube-proxy")
			} else {
				add("strictARP", linkOK, "kube-proxy is not in IPVS mode, or strictARP is on")
			}
		}
	}

	// 8. BGP sessions: the nodes that advertise the Service (its
	// ServiceAnnouncements <service>.bgp.<node>) and the sessions each has
	// to the peers it advertises to, judged as the reporting speaker does.
	if len(bgpAds) > 0 {
		var anns []v1beta1.ServiceAnnouncementStatus
		cov := bgpwhy.Coverage{IPs: ips, Ads: bgpCov, L2: len(l2) > 0, Local: local}
		for _, a := range in.announcements {
			if a.Status.Service == svc.Name {
				anns = append(anns, a.Status)
				cov.L2 = cov.L2 || a.Status.Protocol == v1beta1.ProtocolL2
			}
		}
		// Every node, as a speaker may run on each: the speakers judge the
		// live ones alone.
		for i := range in.nodes {
			n := &in.nodes[i]
			excluded, unavailable := nodeExcluded(n)
			bn := bgpwhy.Node{Name: n.Name, Excluded: excluded || unavailable, Endpoint: endpoints[n.Name]}
			for _, p := range in.peers {
				if selects(p.Spec.NodeSelectors, n.Labels) {
					bn.Peers = append(bn.Peers, p.Name)
				}
			}
			cov.Nodes = append(cov.Nodes, bn)
		}
		v := bgpwhy.Judge(anns, func(node, peer string) (string, bool) {
			for _, s := range in.sessions {
				if s.Status.Node == node && s.Status.Peer == peer {
					return s.Status.State, true
				}
			}
			return "", false
		}, cov)
		if len(v.Nodes) > 0 || v.Reason != "" {
			r.BGP = &v
		}
		var down []string
		for _, l := range v.Links {
			if l.State != bgpwhy.Established {
				down = append(down, l.String())
			}
		}
		switch {
		case v.Reason == bgpwhy.ReasonNoNode:
			add("bgp", linkBroken, "%s", v.Message())
		case len(v.Nodes) == 0:
			r.whyNoBGPNode(in.sessions, add)
		case v.Reason != "":
			add("bgp", linkBroken, "%s", v.Message())
		case len(down) > 0:
			add("bgp", linkWarn, "advertised by %s; %d of %d sessions established (down: %s)", strings.Join(v.Nodes, ","), v.Up, len(v.Links), strings.Join(down, "; "))
		default:
			add("bgp", linkOK, "advertised by %s on %d established session(s)", strings.Join(v.Nodes, ","), v.Up)
		}
	}
	return r
}

// whyNoBGPNode says what it can when no node advertises the Service in BGP
// mode: the sessions of the cluster.
func (r *whyReport) whyNoBGPNode(sessions []v1beta1.BGPSessionState, add func(step, status, format string, args ...any)) {
	up, total := 0, 0
	var down []string
	for _, s := range sessions {
		total++
		if s.Status.State == bgpwhy.Established {
			up++
		} else {
			down = append(down, fmt.Sprintf("%s: %s", s.Name, s.Status.State))
		}
	}
	switch {
	case total == 0:
		add("bgp", linkBroken, "no BGPSessionState: no BGPPeer selects a node, or no speaker runs BGP")
	case up == 0:
		add("bgp", linkBroken, "no BGP session is established (%s)", strings.Join(down, "; "))
	default:
		add("bgp", linkWarn, "no node advertises the Service (no ServiceAnnouncement %s.bgp.<node>): no BGPAdvertisement selects a node with one of its peers, "+
			"or externalTrafficPolicy is Local without a ready endpoint; %d of %d sessions established", r.Service[strings.Index(r.Service, "/")+1:], up, total)
	}
}

// nodeExcluded reports whether a node carries the label
// node.kubernetes.io/exclude-from-external-load-balancers, and whether its
// NetworkUnavailable condition is true.
func nodeExcluded(n *corev1.Node) (excluded, unavailable bool) {
	_, excluded = n.Labels["node.kubernetes.io/exclude-from-external-load-balancers"]
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeNetworkUnavailable && c.Status == corev1.ConditionTrue {
			unavailable = true
		}
	}
	return excluded, unavailable
}

func selects(sels []metav1.LabelSelector, l map[string]string) bool {
	if len(sels) == 0 {
		return true
	}
	for i := range sels {
		s, err := metav1.LabelSelectorAsSelector(&sels[i])
		if err == nil && s.Matches(labels.Set(l)) {
			return true
		}
	}
	return false
}

func runWhy(ctx context.Context, args []string, e env) int {
	var f whyFlags
	fs := flag.NewFlagSet("kubectl herald why", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	f.register(fs)
	fs.StringVar(&f.namespace, "n", "default", "the Service's namespace")
	fs.StringVar(&f.namespace, "namespace", "default", "same as -n")
	fs.Usage = func() {
		e.stderrln(`Usage: kubectl herald why SERVICE [-n NAMESPACE] [-o json|yaml]

Walks the chain from a Service to a node that answers for its address (class,
allocation, pool, advertisement, eligibility of each node, announcement,
strictARP under IPVS, BGP sessions) and names the first broken link.

Exit status: 0 when no link is broken, 1 when one is, 2 on bad flags, 3 when
the cluster or the Service cannot be read.

Flags:`)
		fs.PrintDefaults()
	}
	// Flags may follow the Service's name.
	var name string
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			return exitUsage
		}
		if fs.NArg() == 0 {
			break
		}
		if name != "" {
			fs.Usage()
			return exitUsage
		}
		name, rest = fs.Arg(0), fs.Args()[1:]
	}
	if name == "" || !slices.Contains([]string{"", "json", "yaml"}, f.output) {
		fs.Usage()
		return exitUsage
	}
	dc, err := e.dynamicClient(f.kubeconfig, f.context)
	if err != nil {
		e.stderrln("kubectl herald why:", err)
		return exitUnreachable
	}
	in, err := gatherWhy(ctx, dc, f, name)
	if err != nil {
		e.stderrln("kubectl herald why:", err)
		return exitUnreachable
	}
	rep := diagnose(in)
	if err := printWhy(e.stdout, rep, f.output); err != nil {
		e.stderrln("kubectl herald why:", err)
		return exitUnreachable
	}
	if rep.Broken != "" {
		return exitBroken
	}
	return exitOK
}

var (
	gvrServices  = schema.GroupVersionResource{Version: "v1", Resource: "services"}
	gvrEvents    = schema.GroupVersionResource{Version: "v1", Resource: "events"}
	gvrNodes     = schema.GroupVersionResource{Version: "v1", Resource: "nodes"}
	gvrConfigMap = schema.GroupVersionResource{Version: "v1", Resource: "configmaps"}
	gvrSlices    = schema.GroupVersionResource{Group: "discovery.k8s.io", Version: "v1", Resource: "endpointslices"}
)

func heraldGVR(resource string) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: "herald.io", Version: "v1beta1", Resource: resource}
}

// listInto lists a resource into a typed slice.
func listInto[T any](ctx context.Context, ri dynamic.ResourceInterface, opts metav1.ListOptions, out *[]T) error {
	l, err := ri.List(ctx, opts)
	if err != nil {
		return err
	}
	for _, u := range l.Items {
		var v T
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &v); err != nil {
			return err
		}
		*out = append(*out, v)
	}
	return nil
}

func gatherWhy(ctx context.Context, dc dynamic.Interface, f whyFlags, name string) (whyInput, error) {
	in := whyInput{lbClass: f.lbClass}
	u, err := dc.Resource(gvrServices).Namespace(f.namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return in, err
	}
	in.svc = new(corev1.Service)
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, in.svc); err != nil {
		return in, err
	}
	for _, step := range []error{
		listInto(ctx, dc.Resource(gvrEvents).Namespace(f.namespace), metav1.ListOptions{FieldSelector: "involvedObject.name=" + name + ",involvedObject.kind=Service"}, &in.events),
		listInto(ctx, dc.Resource(heraldGVR("ipaddresspools")), metav1.ListOptions{}, &in.pools),
		listInto(ctx, dc.Resource(heraldGVR("l2advertisements")), metav1.ListOptions{}, &in.l2),
		listInto(ctx, dc.Resource(heraldGVR("bgpadvertisements")), metav1.ListOptions{}, &in.bgpAds),
		listInto(ctx, dc.Resource(gvrNodes), metav1.ListOptions{}, &in.nodes),
		listInto(ctx, dc.Resource(gvrSlices).Namespace(f.namespace), metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=" + name}, &in.slices),
	} {
		if step != nil {
			return in, step
		}
	}
	// Optional: BGP sessions and peers, and kube-proxy's configuration may
	// be unreadable.
	_ = listInto(ctx, dc.Resource(heraldGVR("bgppeers")), metav1.ListOptions{}, &in.peers)
	_ = listInto(ctx, dc.Resource(heraldGVR("bgpsessionstates")).Namespace(f.heraldNS), metav1.ListOptions{}, &in.sessions)
	_ = listInto(ctx, dc.Resource(heraldGVR("serviceannouncements")).Namespace(f.namespace),
		metav1.ListOptions{LabelSelector: v1beta1.LabelAnnouncementService + "=" + name}, &in.announcements)
	if cm, err := dc.Resource(gvrConfigMap).Namespace("kube-system").Get(ctx, "kube-proxy", metav1.GetOptions{}); err == nil {
		in.kubeProxy = new(corev1.ConfigMap)
		if runtime.DefaultUnstructuredConverter.FromUnstructured(cm.Object, in.kubeProxy) != nil {
			in.kubeProxy = nil
		}
	}
	return in, nil
}

func printWhy(w io.Writer, r whyReport, format string) error {
	if format == "json" || format == "yaml" {
		return printMachine(w, r, format)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	t := &report{w: tw}
	t.printf("SERVICE %s\n\nSTEP\tSTATUS\tDETAIL\n", r.Service)
	for _, l := range r.Links {
		t.printf("%s\t%s\t%s\n", l.Step, l.Status, l.Detail)
	}
	if len(r.Nodes) > 0 {
		sort.Slice(r.Nodes, func(i, j int) bool { return r.Nodes[i].Node < r.Nodes[j].Node })
		t.printf("\nNODE\tELIGIBLE\tREASON\n")
		for _, n := range r.Nodes {
			t.printf("%s\t%v\t%s\n", n.Node, n.Eligible, n.Reason)
		}
	}
	if r.BGP != nil && len(r.BGP.Links) > 0 {
		t.printf("\nBGP NODE\tPEER\tSESSION\n")
		for _, l := range r.BGP.Links {
			st := l.State
			if st == "" {
				st = "(no BGPSessionState)"
			}
			t.printf("%s\t%s\t%s\n", l.Node, l.Peer, st)
		}
	}
	if t.err != nil {
		return t.err
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if r.Broken != "" {
		_, err := fmt.Fprintf(w, "\nBroken link: %s\n", r.Broken)
		return err
	}
	_, err := fmt.Fprintln(w, "\nNo broken link found.")
	return err
}
