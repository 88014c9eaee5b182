package e2etest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/heraldlb/herald/e2etest/testbed"
)

// exampleDirs lists examples/*/ with l2 and bgp first: the other examples
// take their addresses from those two's pools.
func exampleDirs(t *testing.T, root string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(root, "examples"))
	if err != nil {
		t.Fatal(err)
	}
	rank := map[string]int{"l2": 0, "bgp": 1}
	var dirs []string
	for _, e := range ents {
		if e.IsDir() {
			dirs = append(dirs, e.Name())
		}
	}
	sort.SliceStable(dirs, func(i, j int) bool {
		ri, ok := rank[dirs[i]]
		if !ok {
			ri = 2
		}
		rj, ok := rank[dirs[j]]
		if !ok {
			rj = 2
		}
		return ri < rj || ri == rj && dirs[i] < dirs[j]
	})
	return dirs
}

// TestExamples applies every file of examples/ to the bed's API server with
// server-side apply, as a user would, then runs the controller and checks
// that every Herald object is Ready and that every Service gets an address
// from the pool the example means.
func TestExamples(t *testing.T) {
	bed := controllerBed(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	root, err := testbed.FindRepoRoot(".")
	if err != nil {
		t.Fatal(err)
	}

	var herald []*unstructured.Unstructured
	for _, dir := range exampleDirs(t, root) {
		files, err := filepath.Glob(filepath.Join(root, "examples", dir, "*.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if len(files) == 0 {
			t.Errorf("examples/%s has no YAML file", dir)
		}
		for _, f := range files {
			objs, err := bed.ApplyFiles(ctx, f)
			if err != nil {
				t.Fatalf("examples/%s/%s: %v", dir, filepath.Base(f), err)
			}
			t.Logf("examples/%s/%s: %d objects applied", dir, filepath.Base(f), len(objs))
			for _, o := range objs {
				if o.GroupVersionKind().Group == "herald.io" {
					herald = append(herald, o)
				}
			}
		}
	}
	if len(herald) == 0 {
		t.Fatal("no herald.io object in examples/")
	}

	startController(t, bed, "controller")

	for _, o := range herald {
		gvk := o.GroupVersionKind()
		ri, err := bed.Resource(gvk, "")
		if err != nil {
			t.Fatal(err)
		}
		name := o.GetName()
		eventually(t, 20*time.Second, fmt.Sprintf("%s %s is Ready", gvk.Kind, name), func() (bool, string) {
			u, err := ri.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			st, msg := condition(u, "Ready")
			return st == "True", st + ": " + msg
		})
	}

	// namespace/name -> the pool the example means it to use.
	want := map[string]string{
		"herald-example-l2/web":                  "lan",
		"herald-example-bgp/web":                 "bgp",
		"herald-example-dual/web":                "dual",
		"herald-example-sharing/dns-tcp":         "lan",
		"herald-example-sharing/dns-udp":         "lan",
		"team-a/web":                             "team-a",
		"team-b/web":                             "production",
		"team-b/partner-vpn":                     "reserved",
		"ingress-nginx/ingress-nginx-controller": "lan",
		"herald-example-local/web-l2":            "lan",
		"herald-example-local/web-bgp":           "bgp",
	}
	fixed := map[string][]string{
		"herald-example-l2/web":                  {"198.18.0.200"},
		"herald-example-sharing/dns-tcp":         {"198.18.0.210"},
		"herald-example-sharing/dns-udp":         {"198.18.0.210"},
		"ingress-nginx/ingress-nginx-controller": {"198.18.0.219"},
	}
	svcs, err := bed.Client.CoreV1().Services("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, s := range svcs.Items {
		if s.Spec.Type != "LoadBalancer" {
			continue
		}
		key := s.Namespace + "/" + s.Name
		pool, ok := want[key]
		if !ok {
			t.Errorf("LoadBalancer Service %s in examples/ is not checked by this test; add it to want", key)
			continue
		}
		seen++
		n := 1
		if len(s.Spec.IPFamilies) == 2 {
			n = 2
		}
		eventually(t, 20*time.Second, fmt.Sprintf("service %s gets %d address(es) from pool %s", key, n, pool), func() (bool, string) {
			svc := getService(t, bed, s.Namespace, s.Name)
			got := ingressIPs(svc)
			from := svc.Annotations["herald.io/ip-allocated-from-pool"]
			ok := len(got) == n && from == pool
			if ips, isFixed := fixed[key]; isFixed {
				ok = ok && slices.Equal(got, ips)
			}
			return ok, fmt.Sprintf("ips %v from pool %q", got, from)
		})
		t.Logf("%s: %s", key, strings.Join(ingressIPs(getService(t, bed, s.Namespace, s.Name)), ","))
	}
	if seen != len(want) {
		t.Errorf("found %d of the %d LoadBalancer Services of examples/", seen, len(want))
	}
}
