package k8s

import (
	"context"
	"fmt"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/heraldlb/herald/api/v1beta1"
)

// Default client rate limits. client-go's own default (5 QPS, burst 10)
// would make a 5,000-Service backlog take over 15 minutes, and even 500 QPS
// would be the bottleneck of a backlog on a small API server (measured: one
// on 2 cores takes about 1,000 status patches a second). The API server's
// priority and fairness is the real guard; these only stop a runaway loop.
const (
	DefaultQPS   = 2000
	DefaultBurst = 4000
)

// NewScheme returns a scheme with the built-in kinds and Herald's.
func NewScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err) // static registration; cannot fail at run time
	}
	if err := v1beta1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

// RESTConfig loads a kubeconfig file, or the in-cluster configuration when
// path is empty, and applies the rate limits.
func RESTConfig(path string, qps float32, burst int, userAgent string) (*rest.Config, error) {
	var cfg *rest.Config
	var err error
	if path == "" {
		cfg, err = rest.InClusterConfig()
	} else {
		cfg, err = clientcmd.BuildConfigFromFlags("", path)
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes client configuration: %w", err)
	}
	cfg.QPS, cfg.Burst = qps, burst
	cfg.UserAgent = userAgent
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { return lateGuard{rt} })
	return cfg, nil
}

// lateGuard refuses to send a request whose deadline has passed, by the
// clock, just before it goes to the connection. A context's deadline ends
// it only once a timer goroutine has run: a process stopped (SIGSTOP, a
// frozen VM) between the fence's check and the send would otherwise, when
// it resumes, send a write the fence has expired before the runtime gets
// round to cancelling it. The controller's writes carry the lease's
// validity as their deadline.
type lateGuard struct{ next http.RoundTripper }

func (g lateGuard) RoundTrip(req *http.Request) (*http.Response, error) {
	if dl, ok := req.Context().Deadline(); ok && !time.Now().Before(dl) {
		return nil, fmt.Errorf("%s %s not sent, its deadline passed %v ago: %w",
			req.Method, req.URL.Path, time.Since(dl).Round(time.Millisecond), context.DeadlineExceeded)
	}
	return g.next.RoundTrip(req)
}

// Clients are the API clients a Herald binary uses.
type Clients struct {
	// Kube is the clientset for the built-in kinds.
	Kube kubernetes.Interface
	// Herald is a REST client for herald.io/v1beta1.
	Herald rest.Interface
	// Scheme knows the built-in kinds and Herald's.
	Scheme *runtime.Scheme
}

// Wire formats. The clientset for the built-in kinds speaks protobuf, as
// kube-controller-manager does: smaller on the wire and several times cheaper
// to decode than JSON, which matters for the lists and watches of every
// Service, EndpointSlice and Node. It still accepts JSON, for a server or
// proxy that answers in JSON. Herald's own kinds are custom resources, which
// the API server serves in JSON only.
const (
	ContentTypeProtobuf = "application/vnd.kubernetes.protobuf"
	acceptKube          = ContentTypeProtobuf + "," + runtime.ContentTypeJSON
)

// KubeConfig returns a copy of cfg for the clientset of built-in kinds:
// protobuf requests, protobuf or JSON answers.
func KubeConfig(cfg *rest.Config) *rest.Config {
	kc := rest.CopyConfig(cfg)
	kc.ContentType = ContentTypeProtobuf
	kc.AcceptContentTypes = acceptKube
	return kc
}

// NewClients builds the clients from cfg.
func NewClients(cfg *rest.Config) (*Clients, error) {
	kube, err := kubernetes.NewForConfig(KubeConfig(cfg))
	if err != nil {
		return nil, fmt.Errorf("kubernetes clientset: %w", err)
	}
	scheme := NewScheme()
	hc := rest.CopyConfig(cfg)
	hc.GroupVersion = &v1beta1.GroupVersion
	hc.APIPath = "/apis"
	hc.NegotiatedSerializer = serializer.NewCodecFactory(scheme).WithoutConversion()
	hc.ContentType = runtime.ContentTypeJSON
	hc.AcceptContentTypes = runtime.ContentTypeJSON
	herald, err := rest.RESTClientFor(hc)
	if err != nil {
		return nil, fmt.Errorf("herald.io REST client: %w", err)
	}
	return &Clients{Kube: kube, Herald: herald, Scheme: scheme}, nil
}

// LoadBalancerIngressIPs returns the IPs in a Service's status, in order.
func LoadBalancerIngressIPs(svc *corev1.Service) []string {
	var out []string
	for _, in := range svc.Status.LoadBalancer.Ingress {
		if in.IP != "" {
			out = append(out, in.IP)
		}
	}
	return out
}
