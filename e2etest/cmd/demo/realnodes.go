package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/heraldlb/herald/e2etest/testbed"
)

// manifestPath is the install the real-nodes demo applies.
func manifestPath(root string) string {
	return filepath.Join(root, "config", "manifests", "herald.yaml")
}

var controllerImage = regexp.MustCompile(`image: (\S+)/herald-controller:(\S+)`)

// buildImages runs `make images` with the registry and tag that
// config/manifests/herald.yaml names, so that the nodes have exactly the
// images the manifest asks for (nothing is pulled).
func buildImages(ctx context.Context, log *slog.Logger) ([]string, error) {
	root, err := testbed.FindRepoRoot(".")
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(manifestPath(root))
	if err != nil {
		return nil, err
	}
	m := controllerImage.FindSubmatch(data)
	if m == nil {
		return nil, fmt.Errorf("%s names no herald-controller image", manifestPath(root))
	}
	registry, tag := string(m[1]), string(m[2])
	dir := filepath.Join(filepath.Dir(defaultState()), "demo-images")
	log.Info("building Herald's images with make images (the manifest's names)", slog.String("registry", registry), slog.String("tag", tag), slog.String("dir", dir))
	cmd := exec.CommandContext(ctx, "make", "-C", root, "images", "VERSION="+tag, "IMAGE_REGISTRY="+registry, "IMAGE_TAG="+tag, "IMAGES_DIR="+dir)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("make images: %w", err)
	}
	return []string{filepath.Join(dir, "herald-controller.tar"), filepath.Join(dir, "herald-speaker.tar")}, nil
}

// demoWorkload is the demo's web backend on real nodes: a Deployment of the
// examples' agnhost (the bed's stand-in, imported into every node), behind
// an L2 and a BGP Service.
func demoWorkload(bgp bool) string {
	s := fmt.Sprintf(`apiVersion: v1
kind: Namespace
metadata: {name: %[1]s}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: %[1]s}
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: %[2]s
        args: [netexec, --http-port=8080]
        ports:
        - containerPort: 8080
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: %[1]s}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080}
`, demoNamespace, testbed.AgnhostImage)
	if bgp {
		s += fmt.Sprintf(`---
apiVersion: v1
kind: Service
metadata:
  name: web-bgp
  namespace: %s
  annotations: {herald.io/address-pool: demo-bgp}
spec:
  type: LoadBalancer
  selector: {app: web}
  ports:
  - {name: http, port: 80, targetPort: 8080}
`, demoNamespace)
	}
	return s
}

// runRealNodes installs Herald from the manifest on the kubelets, waits for
// its pods, configures it and creates the web Deployment and Services.
func runRealNodes(ctx context.Context, log *slog.Logger, bed *testbed.Bed, withBGP bool, res *Result) error {
	root, err := testbed.FindRepoRoot(".")
	if err != nil {
		return err
	}
	log.Info("installing Herald: kubectl apply --server-side -f config/manifests/herald.yaml")
	if _, err := bed.ApplyFiles(ctx, manifestPath(root)); err != nil {
		return err
	}
	log.Info("waiting for the controller Deployment and the speaker DaemonSet")
	if err := waitHerald(ctx, bed); err != nil {
		return err
	}
	log.Info("applying the demo configuration", slog.String("l2Pool", "198.18.0.200-198.18.0.219"), slog.String("bgpPool", map[bool]string{true: "203.0.113.0/28", false: "(off)"}[withBGP]))
	if _, err := bed.ApplyYAML(ctx, []byte(demoConfig(withBGP))); err != nil {
		return err
	}
	if _, err := bed.ApplyYAML(ctx, []byte(demoWorkload(withBGP))); err != nil {
		return err
	}
	return waitServed(ctx, log, bed, withBGP, res)
}

func waitHerald(ctx context.Context, bed *testbed.Bed) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	ns := testbed.HeraldNamespace
	last := ""
	for {
		dep, err1 := bed.Client.AppsV1().Deployments(ns).Get(ctx, "herald-controller", metav1.GetOptions{})
		ds, err2 := bed.Client.AppsV1().DaemonSets(ns).Get(ctx, "herald-speaker", metav1.GetOptions{})
		if err1 == nil && err2 == nil {
			if dep.Status.ReadyReplicas == *dep.Spec.Replicas && ds.Status.DesiredNumberScheduled > 0 &&
				ds.Status.NumberReady == ds.Status.DesiredNumberScheduled {
				return nil
			}
			last = fmt.Sprintf("controller %d/%d Ready, speaker %d/%d Ready", dep.Status.ReadyReplicas, *dep.Spec.Replicas,
				ds.Status.NumberReady, ds.Status.DesiredNumberScheduled)
		} else {
			last = strings.TrimSpace(fmt.Sprint(err1, " ", err2))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("herald pods not Ready within 5 minutes: %s", last)
		case <-time.After(500 * time.Millisecond):
		}
	}
}
