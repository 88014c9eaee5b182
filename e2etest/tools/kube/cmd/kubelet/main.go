// Command kubelet is the upstream Kubernetes node agent, built from the
// k8s.io/kubernetes module; the real-nodes test bed runs one per node network
// namespace, next to its own containerd.
package main

import (
	"context"
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kubelet/app"
)

func main() {
	os.Exit(cli.Run(app.NewKubeletCommand(context.Background())))
}
