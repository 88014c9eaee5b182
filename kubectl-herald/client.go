package main

import (
	"fmt"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/heraldlb/herald/internal/version"
)

// newDynamicClient connects to the cluster of a kubeconfig, as kubectl
// does: an empty path follows $KUBECONFIG and ~/.kube/config.
func newDynamicClient(kubeconfig, context string) (dynamic.Interface, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = kubeconfig
	cc := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: context})
	cfg, err := cc.ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	cfg.UserAgent = "kubectl-herald/" + version.Version
	return dynamic.NewForConfig(cfg)
}
