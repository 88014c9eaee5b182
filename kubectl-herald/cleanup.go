package main

import (
	"context"
	"flag"
	"slices"
	"strings"

	"github.com/heraldlb/herald/internal/migrate/cluster"
)

// runCleanup is "kubectl herald migrate cleanup": the last step of a
// switch-over, once MetalLB's controller is stopped.
func runCleanup(ctx context.Context, args []string, e env) int {
	var (
		kubeconfig, kctx, namespace string
		rename, dryRun, force       bool
	)
	fs := flag.NewFlagSet("kubectl herald migrate cleanup", flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig of the cluster (default: $KUBECONFIG or ~/.kube/config)")
	fs.StringVar(&kctx, "context", "", "kubeconfig context (default: the current one)")
	fs.StringVar(&namespace, "n", "metallb-system", "MetalLB's namespace (its controller Deployment must be scaled to 0)")
	fs.StringVar(&namespace, "namespace", "metallb-system", "same as -n")
	fs.BoolVar(&rename, "rename", false, "also move the annotations users write (loadBalancerIPs, address-pool, allow-shared-ip) to herald.io/; a rollback to MetalLB then no longer sees them")
	fs.BoolVar(&dryRun, "dry-run", false, "list the changes; change nothing")
	fs.BoolVar(&force, "force", false, "clean up even though a MetalLB controller Deployment still has replicas")
	fs.Usage = func() {
		e.stderrln(`Usage: kubectl herald migrate cleanup [--kubeconfig PATH] [-n NAMESPACE] [--rename] [--dry-run]

Removes MetalLB's metallb.io/ip-allocated-from-pool annotation (and its
metallb.universe.tf/ spelling) from every Service that Herald's controller
serves (it carries herald.io/ip-allocated-from-pool). Run it once MetalLB's
controller is stopped: a running one writes the annotation back. MetalLB's
custom resources are never touched.

Flags:`)
		fs.PrintDefaults()
	}
	if code, ok := parseFlags(fs, args, e, "kubectl herald migrate cleanup"); !ok {
		return code
	}
	client, err := e.dynamicClient(kubeconfig, kctx)
	if err != nil {
		e.stderrf("kubectl herald migrate cleanup: %v\n", err)
		return exitUsage
	}
	running, err := cluster.MetalLBControllers(ctx, client, namespace)
	if err != nil {
		e.stderrf("kubectl herald migrate cleanup: %v\n", err)
		return exitUsage
	}
	if len(running) > 0 && !force {
		e.stderrf("kubectl herald migrate cleanup: MetalLB's controller is still deployed (%s) and would write the annotation back; scale it to 0 first, or pass --force\n", strings.Join(running, ", "))
		return exitUnfaithful
	}
	changes, err := cluster.Cleanup(ctx, client, cluster.CleanupOptions{Rename: rename, DryRun: dryRun})
	verb := "cleaned"
	if dryRun {
		verb = "would clean"
	}
	skipped := 0
	out := &report{w: e.stdout}
	for _, c := range changes {
		if c.Skipped != "" {
			skipped++
			out.printf("skipped  service %s/%s: %s\n", c.Namespace, c.Name, c.Skipped)
			continue
		}
		var parts []string
		if len(c.Removed) > 0 {
			parts = append(parts, "removed "+strings.Join(c.Removed, ", "))
		}
		keys := make([]string, 0, len(c.Renamed))
		for k := range c.Renamed {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			parts = append(parts, "renamed "+k+" to "+c.Renamed[k])
		}
		out.printf("%-8s service %s/%s: %s\n", verb, c.Namespace, c.Name, strings.Join(parts, "; "))
	}
	if err != nil {
		e.stderrf("kubectl herald migrate cleanup: %v\n", err)
		return exitUsage
	}
	if out.err != nil {
		e.stderrf("kubectl herald migrate cleanup: the list of changes: %v\n", out.err)
		return exitUsage
	}
	e.stderrf("summary: %d services %s, %d skipped\n", len(changes)-skipped, verb, skipped)
	if skipped > 0 {
		return exitUnfaithful
	}
	return exitOK
}
