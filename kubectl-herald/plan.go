package main

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/heraldlb/herald/internal/migrate"
)

// addrFlag is a repeatable NAME=ADDR flag.
type addrFlag map[string]netip.Addr

func (a addrFlag) String() string { return fmt.Sprint(map[string]netip.Addr(a)) }
func (a addrFlag) Set(v string) error {
	name, addr, ok := strings.Cut(v, "=")
	if !ok || name == "" {
		return fmt.Errorf("want PEER=ADDRESS, got %q", v)
	}
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return err
	}
	a[name] = ip
	return nil
}

// runPlan is "kubectl herald migrate plan": the switch-over steps for this
// cluster (or for MetalLB objects in files).
func runPlan(ctx context.Context, args []string, e env) int {
	var f migrateFlags
	migration := addrFlag{}
	fs := flag.NewFlagSet("kubectl herald migrate plan", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Var(&f.files, "f", "MetalLB objects: a YAML or JSON file, a directory of them, or - for stdin; repeatable. Without -f, read the cluster (and its Nodes)")
	fs.Var(&f.files, "filename", "same as -f")
	fs.StringVar(&f.kubeconfig, "kubeconfig", "", "kubeconfig of the cluster to read (default: $KUBECONFIG or ~/.kube/config)")
	fs.StringVar(&f.context, "context", "", "kubeconfig context (default: the current one)")
	fs.StringVar(&f.namespace, "n", "metallb-system", "MetalLB's namespace in the cluster")
	fs.StringVar(&f.namespace, "namespace", "metallb-system", "same as -n")
	fs.StringVar(&f.configMap, "configmap", "config", "MetalLB's pre-0.13 ConfigMap in the cluster; empty skips it")
	fs.Var(migration, "migration-address", "PEER=ADDRESS: the router's address of the other family than BGPPeer PEER's, that Herald peers with while MetalLB's sessions are up; repeatable")
	fs.Usage = func() {
		e.stderrln(`Usage: kubectl herald migrate plan [-f FILE|DIR|-]... [--kubeconfig PATH] [-n NAMESPACE] [--migration-address PEER=ADDR]...

Prints the steps that move this cluster from MetalLB to Herald without an
outage (L2: Herald announces before MetalLB stops; BGP: Herald's sessions are
up, with the same next hops, before MetalLB's go down), with the router's
configuration for FRR and BIRD, and the rollback. It changes nothing.

Flags:`)
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args, e, "kubectl herald migrate plan"); !ok {
		return code
	}
	in, err := f.read(ctx, e)
	if err != nil {
		e.stderrf("kubectl herald migrate plan: %v\n", err)
		return exitUsage
	}
	res := migrate.Convert(in)
	pin := migrate.PlanInput{Output: &res.Output, Namespace: f.namespace, MigrationAddresses: migration}
	if len(f.files) == 0 {
		if pin.Nodes, err = readNodes(ctx, f, e); err != nil {
			e.stderrf("kubectl herald migrate plan: %v\n", err)
			return exitUsage
		}
	}
	if err := migrate.WritePlan(e.stdout, pin); err != nil {
		return exitUsage
	}
	if !res.Report.Faithful() {
		e.stderrf("kubectl herald migrate plan: the conversion is not faithful: run kubectl herald migrate --dry-run and read its report first\n")
		return exitUnfaithful
	}
	return exitOK
}

// readNodes lists the cluster's Nodes with their InternalIPs.
func readNodes(ctx context.Context, f migrateFlags, e env) ([]migrate.PlanNode, error) {
	client, err := e.dynamicClient(f.kubeconfig, f.context)
	if err != nil {
		return nil, err
	}
	list, err := client.Resource(schema.GroupVersionResource{Version: "v1", Resource: "nodes"}).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	nodes := []migrate.PlanNode{}
	for _, item := range list.Items {
		n := migrate.PlanNode{Name: item.GetName(), Labels: item.GetLabels()}
		addrs, _, _ := unstructured.NestedSlice(item.Object, "status", "addresses")
		for _, a := range addrs {
			m, _ := a.(map[string]any)
			if m["type"] != "InternalIP" {
				continue
			}
			s, _ := m["address"].(string)
			ip, err := netip.ParseAddr(s)
			if err != nil {
				continue
			}
			switch {
			case ip.Is4() && !n.IPv4.IsValid():
				n.IPv4 = ip
			case ip.Is6() && !n.IPv6.IsValid():
				n.IPv6 = ip
			}
		}
		nodes = append(nodes, n)
	}
	return nodes, nil
}
