// Command kube-controller-manager is the upstream Kubernetes controller manager,
// built from the k8s.io/kubernetes module; the real-nodes test bed needs it so
// that Deployments and DaemonSets create their pods.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

func main() {
	os.Exit(cli.Run(app.NewControllerManagerCommand()))
}
