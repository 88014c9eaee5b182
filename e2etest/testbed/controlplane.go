package testbed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// HeraldNamespace is the namespace of Herald's own objects.
const HeraldNamespace = "herald-system"

// Identities of Herald's ServiceAccounts, as config/rbac names them.
const (
	ControllerServiceAccount = "herald-controller"
	SpeakerServiceAccount    = "herald-speaker"
)

// apiserverPort is the API server's port on the transit address, which is
// unique per bed, so the port can be fixed.
const apiserverPort = 6443

// startEtcd starts etcd on a loopback address derived from the bed's slot.
func (b *Bed) startEtcd(ctx context.Context) error {
	dataDir := filepath.Join(b.RunDir, "etcd")
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		// etcd fsyncs every write; on tmpfs that costs nothing.
		dataDir = filepath.Join("/dev/shm", b.Prefix+"-etcd")
		b.addExtraDir(dataDir)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	}
	client := fmt.Sprintf("http://%s:2379", b.etcdAddr)
	peer := fmt.Sprintf("http://%s:2380", b.etcdAddr)
	p, err := b.startProcess(ctx, "", "etcd", etcdBinary,
		"--name", "default", "--data-dir", dataDir,
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "default="+peer,
		"--log-level", "warn")
	if err != nil {
		return err
	}
	b.etcd = p
	return waitFor(ctx, 50*time.Millisecond, "etcd health", func(ctx context.Context) (bool, error) {
		if !p.Running() {
			return false, fmt.Errorf("etcd exited; see %s", p.Log)
		}
		resp, err := http.Get(client + "/health")
		if err != nil {
			return false, err
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
}

// startAPIServer writes the PKI and token file and starts kube-apiserver on
// the root end of the transit link.
func (b *Bed) startAPIServer(ctx context.Context) error {
	secrets := filepath.Join(b.RunDir, "secrets")
	if err := os.MkdirAll(secrets, 0o700); err != nil {
		return err
	}
	kubeSvcIP := net.IP(ServiceCIDR.Addr().Next().AsSlice())
	pk, err := newPKI(secrets, []net.IP{net.IP(b.apiAddr.AsSlice()), net.ParseIP("127.0.0.1"), kubeSvcIP})
	if err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	b.caPEM = pk.caPEM
	b.adminToken = randomToken()
	b.proxyToken = randomToken()
	tokens := fmt.Sprintf("%s,admin,admin,system:masters\n%s,system:kube-proxy,kube-proxy\n", b.adminToken, b.proxyToken)
	authz := "RBAC"
	var extra []string
	if b.opts.RealNodes {
		// Each kubelet is system:node:<name> in system:nodes, authorized by
		// the Node authorizer; the API server reaches kubelets by IP.
		b.nodeTokens = map[string]string{}
		for i := 1; i <= b.opts.Nodes; i++ {
			name := fmt.Sprintf("node%d", i)
			b.nodeTokens[name] = randomToken()
			tokens += fmt.Sprintf("%s,system:node:%s,system:node:%s,system:nodes\n", b.nodeTokens[name], name, name)
		}
		authz = "Node,RBAC"
		extra = append(extra, "--kubelet-preferred-address-types=InternalIP", "--allow-privileged=true")
	}
	tokenFile := filepath.Join(secrets, "tokens.csv")
	if err := os.WriteFile(tokenFile, []byte(tokens), 0o600); err != nil {
		return err
	}
	serviceRange := ServiceCIDR.String()
	if b.opts.DualStack {
		serviceRange += "," + ServiceCIDR6.String()
	}
	bin, err := KubeBinary("kube-apiserver")
	if err != nil {
		return err
	}
	args := []string{
		fmt.Sprintf("--etcd-servers=http://%s:2379", b.etcdAddr),
		fmt.Sprintf("--secure-port=%d", apiserverPort),
		"--bind-address=" + b.apiAddr.String(),
		"--advertise-address=" + b.apiAddr.String(),
		"--cert-dir=" + secrets,
		"--tls-cert-file=" + pk.servingCert,
		"--tls-private-key-file=" + pk.servingKey,
		"--client-ca-file=" + filepath.Join(secrets, "ca.crt"),
		"--token-auth-file=" + tokenFile,
		"--authorization-mode=" + authz,
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file=" + pk.saPub,
		"--service-account-signing-key-file=" + pk.saKey,
		"--service-cluster-ip-range=" + serviceRange,
		"--enable-priority-and-fairness=false",
		"--profiling=false",
		"--v=1",
	}
	p, err := b.startProcess(ctx, "", "kube-apiserver", bin, append(args, extra...)...)
	if err != nil {
		return err
	}
	b.apiserver = p
	b.APIServerURL = fmt.Sprintf("https://%s", net.JoinHostPort(b.apiAddr.String(), fmt.Sprint(apiserverPort)))
	b.Admin = b.restConfig(b.adminToken)
	hc, err := rest.HTTPClientFor(b.Admin)
	if err != nil {
		return err
	}
	err = waitFor(ctx, 100*time.Millisecond, "kube-apiserver /readyz", func(ctx context.Context) (bool, error) {
		if !p.Running() {
			return false, fmt.Errorf("kube-apiserver exited; see %s", p.Log)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, b.APIServerURL+"/readyz", nil)
		resp, err := hc.Do(req)
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return false, fmt.Errorf("readyz %d: %s", resp.StatusCode, lastLines(string(body), 3))
		}
		return true, nil
	})
	if err != nil {
		return err
	}
	if b.Client, err = kubernetes.NewForConfig(b.Admin); err != nil {
		return err
	}
	if b.Dynamic, err = dynamic.NewForConfig(b.Admin); err != nil {
		return err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(b.Admin)
	if err != nil {
		return err
	}
	b.mapper = restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	b.AdminKubeconfig = filepath.Join(b.RunDir, "kubeconfig")
	return b.writeKubeconfig(b.AdminKubeconfig, "admin", b.adminToken)
}

func (b *Bed) restConfig(token string) *rest.Config {
	return &rest.Config{
		Host:            b.APIServerURL,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAData: b.caPEM},
		QPS:             100,
		Burst:           200,
	}
}

func (b *Bed) writeKubeconfig(path, user, token string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["herald-testbed"] = &clientcmdapi.Cluster{Server: b.APIServerURL, CertificateAuthorityData: b.caPEM}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["herald-testbed"] = &clientcmdapi.Context{Cluster: "herald-testbed", AuthInfo: user}
	cfg.CurrentContext = "herald-testbed"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("kubeconfig %s: %w", path, err)
	}
	return os.Chmod(path, 0o600)
}

// setupIdentities creates herald-system, applies config/rbac, and mints a
// token for each of Herald's ServiceAccounts with the TokenRequest API.
func (b *Bed) setupIdentities(ctx context.Context) error {
	_, err := b.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: HeraldNamespace}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("namespace %s: %w", HeraldNamespace, err)
	}
	files, err := yamlFiles(filepath.Join(b.opts.RepoRoot, "config", "rbac"))
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("no RBAC manifests in %s", filepath.Join(b.opts.RepoRoot, "config", "rbac"))
	}
	if _, err := b.ApplyFiles(ctx, files...); err != nil {
		return err
	}
	for _, id := range []struct {
		sa   string
		cfg  **rest.Config
		path *string
	}{
		{ControllerServiceAccount, &b.Controller, &b.ControllerKubeconfig},
		{SpeakerServiceAccount, &b.Speaker, &b.SpeakerKubeconfig},
	} {
		exp := int64(7 * 24 * 3600)
		tr, err := b.Client.CoreV1().ServiceAccounts(HeraldNamespace).CreateToken(ctx, id.sa,
			&authv1.TokenRequest{Spec: authv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("token for serviceaccount %s/%s: %w", HeraldNamespace, id.sa, err)
		}
		*id.cfg = b.restConfig(tr.Status.Token)
		*id.path = filepath.Join(b.RunDir, "kubeconfig-"+strings.TrimPrefix(id.sa, "herald-"))
		if err := b.writeKubeconfig(*id.path, "system:serviceaccount:"+HeraldNamespace+":"+id.sa, tr.Status.Token); err != nil {
			return err
		}
	}
	return nil
}

// yamlFiles lists the *.yaml files of dir, without kustomization.yaml, sorted.
func yamlFiles(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		n := e.Name()
		if e.IsDir() || n == "kustomization.yaml" || !(strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml")) {
			continue
		}
		out = append(out, filepath.Join(dir, n))
	}
	sort.Strings(out)
	return out, nil
}

// ApplyFiles server-side-applies every YAML document of the files, as admin,
// and returns the applied objects.
func (b *Bed) ApplyFiles(ctx context.Context, files ...string) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return out, err
		}
		objs, err := b.ApplyYAML(ctx, data)
		out = append(out, objs...)
		if err != nil {
			return out, fmt.Errorf("%s: %w", f, err)
		}
	}
	return out, nil
}

// ApplyYAML server-side-applies every document of a multi-document YAML
// stream, as admin.
func (b *Bed) ApplyYAML(ctx context.Context, data []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []*unstructured.Unstructured
	for {
		var obj map[string]any
		if err := dec.Decode(&obj); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return out, fmt.Errorf("decode yaml: %w", err)
		}
		if len(obj) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: obj}
		applied, err := b.Apply(ctx, u)
		if err != nil {
			return out, err
		}
		out = append(out, applied)
	}
}

// Apply server-side-applies one object as admin (field manager
// herald-testbed, forcing conflicts).
func (b *Bed) Apply(ctx context.Context, u *unstructured.Unstructured) (*unstructured.Unstructured, error) {
	gvk := u.GroupVersionKind()
	ri, err := b.resourceFor(gvk)
	if err != nil {
		return nil, err
	}
	applied, err := ri(u.GetNamespace()).Apply(ctx, u.GetName(), u, metav1.ApplyOptions{FieldManager: "herald-testbed", Force: true})
	if err != nil {
		return nil, fmt.Errorf("apply %s %s: %w", gvk.Kind, objKey(u), err)
	}
	return applied, nil
}

// Resource returns a dynamic client for the resource of gvk, namespaced if
// the resource is.
func (b *Bed) Resource(gvk schema.GroupVersionKind, namespace string) (dynamic.ResourceInterface, error) {
	ri, err := b.resourceFor(gvk)
	if err != nil {
		return nil, err
	}
	return ri(namespace), nil
}

func (b *Bed) resourceFor(gvk schema.GroupVersionKind) (func(ns string) dynamic.ResourceInterface, error) {
	m, err := b.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if meta.IsNoMatchError(err) {
		b.mapper.Reset()
		m, err = b.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	}
	if err != nil {
		return nil, fmt.Errorf("no resource for %s: %w", gvk, err)
	}
	return func(ns string) dynamic.ResourceInterface {
		if m.Scope.Name() == meta.RESTScopeNameNamespace {
			if ns == "" {
				ns = metav1.NamespaceDefault
			}
			return b.Dynamic.Resource(m.Resource).Namespace(ns)
		}
		return b.Dynamic.Resource(m.Resource)
	}, nil
}

func objKey(u *unstructured.Unstructured) string {
	if u.GetNamespace() != "" {
		return u.GetNamespace() + "/" + u.GetName()
	}
	return u.GetName()
}

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// ApplyCRDs applies every CRD of config/crd/bases and waits until each is
// Established and served. It returns the CRD names.
func (b *Bed) ApplyCRDs(ctx context.Context) ([]string, error) {
	return b.applyCRDDir(ctx, filepath.Join(b.opts.RepoRoot, "config", "crd", "bases"), nil)
}

// applyCRDDir applies every CRD of dir, each file passed through edit if
// it is set, and waits until each is Established.
func (b *Bed) applyCRDDir(ctx context.Context, dir string, edit func([]byte) []byte) ([]string, error) {
	files, err := yamlFiles(dir)
	if err != nil {
		return nil, fmt.Errorf("CRDs: %w", err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("CRDs: no *.yaml in %s (generate them first)", dir)
	}
	var objs []*unstructured.Unstructured
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("CRDs: %w", err)
		}
		if edit != nil {
			data = edit(data)
		}
		o, err := b.ApplyYAML(ctx, data)
		if err != nil {
			return nil, fmt.Errorf("CRDs: %s: %w", f, err)
		}
		objs = append(objs, o...)
	}
	var names []string
	for _, o := range objs {
		if o.GetKind() != "CustomResourceDefinition" {
			continue
		}
		name := o.GetName()
		names = append(names, name)
		err := waitFor(ctx, 50*time.Millisecond, "CRD "+name+" Established", func(ctx context.Context) (bool, error) {
			c, err := b.Dynamic.Resource(crdGVR).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			conds, _, _ := unstructured.NestedSlice(c.Object, "status", "conditions")
			for _, cd := range conds {
				m, _ := cd.(map[string]any)
				if m["type"] == "Established" && m["status"] == "True" {
					return true, nil
				}
			}
			return false, nil
		})
		if err != nil {
			return names, err
		}
	}
	b.mapper.Reset()
	return names, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}
