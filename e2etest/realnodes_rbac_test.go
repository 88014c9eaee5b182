package e2etest

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	authzv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// installRBAC is the RBAC of a rendered install: its roles and bindings.
type installRBAC struct {
	sas      []rbacv1.Subject
	roles    map[string][]rbacv1.PolicyRule // "ClusterRole/name", "Role/ns/name"
	bindings []rbacBinding
}

type rbacBinding struct {
	ns       string // "" for a ClusterRoleBinding
	role     string // key in roles
	subjects []rbacv1.Subject
}

func parseRBAC(objs []*unstructured.Unstructured) (*installRBAC, error) {
	r := &installRBAC{roles: map[string][]rbacv1.PolicyRule{}}
	for _, o := range objs {
		switch o.GetKind() {
		case "ServiceAccount":
			r.sas = append(r.sas, rbacv1.Subject{Kind: "ServiceAccount", Name: o.GetName(), Namespace: o.GetNamespace()})
		case "ClusterRole":
			var cr rbacv1.ClusterRole
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &cr); err != nil {
				return nil, err
			}
			r.roles["ClusterRole/"+cr.Name] = cr.Rules
		case "Role":
			var ro rbacv1.Role
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &ro); err != nil {
				return nil, err
			}
			r.roles["Role/"+ro.Namespace+"/"+ro.Name] = ro.Rules
		case "ClusterRoleBinding":
			var b rbacv1.ClusterRoleBinding
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &b); err != nil {
				return nil, err
			}
			r.bindings = append(r.bindings, rbacBinding{role: "ClusterRole/" + b.RoleRef.Name, subjects: b.Subjects})
		case "RoleBinding":
			var b rbacv1.RoleBinding
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, &b); err != nil {
				return nil, err
			}
			key := "ClusterRole/" + b.RoleRef.Name
			if b.RoleRef.Kind == "Role" {
				key = "Role/" + b.Namespace + "/" + b.RoleRef.Name
			}
			r.bindings = append(r.bindings, rbacBinding{ns: b.Namespace, role: key, subjects: b.Subjects})
		}
	}
	return r, nil
}

type rbacAsk struct {
	ns, group, resource, verb, name string
}

func (a rbacAsk) String() string {
	s := a.verb + " " + a.resource
	if a.group != "" {
		s += "." + a.group
	}
	if a.name != "" {
		s += "/" + a.name
	}
	if a.ns != "" {
		s += " in " + a.ns
	}
	return s
}

func matches(list []string, v string) bool {
	return slices.Contains(list, v) || slices.Contains(list, "*")
}

// grants says whether the install's own objects grant sa the request.
func (r *installRBAC) grants(sa rbacv1.Subject, a rbacAsk) bool {
	for _, b := range r.bindings {
		if b.ns != "" && b.ns != a.ns {
			continue
		}
		bound := false
		for _, s := range b.subjects {
			bound = bound || s.Kind == "ServiceAccount" && s.Name == sa.Name && s.Namespace == sa.Namespace
		}
		if !bound {
			continue
		}
		for _, rule := range r.roles[b.role] {
			if matches(rule.APIGroups, a.group) && matches(rule.Resources, a.resource) && matches(rule.Verbs, a.verb) &&
				(len(rule.ResourceNames) == 0 || slices.Contains(rule.ResourceNames, a.name)) {
				return true
			}
		}
	}
	return false
}

// clusterScoped are the resources a namespace means nothing for.
var clusterScoped = map[string]bool{"nodes": true, "namespaces": true, "customresourcedefinitions": true,
	"clusterroles": true, "clusterrolebindings": true}

// checkRBAC asks the API server (SubjectAccessReview) what each of the
// install's ServiceAccounts may do, for every verb on every resource the
// install's roles name, and on Secrets, Pods, Services, Nodes, Leases and
// ConfigMaps, in Herald's namespace and in another one; the answers must be
// exactly what the install's roles and bindings grant: nothing missing and
// nothing more (the roles are read from the install, never hard-coded).
func (rb *realBed) checkRBAC(objs []*unstructured.Unstructured) {
	t, bed := rb.t, rb.bed
	r, err := parseRBAC(objs)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.sas) == 0 {
		t.Fatal("the install has no ServiceAccount")
	}
	type res struct{ group, resource string }
	resources := map[res][]string{ // -> resource names named in rules
		{"", "secrets"}: nil, {"", "pods"}: nil, {"", "services"}: nil, {"", "services/status"}: nil,
		{"", "nodes"}: nil, {"", "configmaps"}: nil, {"coordination.k8s.io", "leases"}: nil,
	}
	for _, rules := range r.roles {
		for _, rule := range rules {
			for _, g := range rule.APIGroups {
				for _, x := range rule.Resources {
					k := res{g, x}
					resources[k] = append(resources[k], rule.ResourceNames...)
				}
			}
		}
	}
	verbs := []string{"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"}
	var asks []rbacAsk
	for k, names := range resources {
		if k.group == "*" || k.resource == "*" {
			continue
		}
		nss := []string{r.sas[0].Namespace, "default"}
		if clusterScoped[k.resource] {
			nss = []string{""}
		}
		for _, ns := range nss {
			for _, v := range verbs {
				asks = append(asks, rbacAsk{ns, k.group, k.resource, v, ""})
				for _, n := range names {
					asks = append(asks, rbacAsk{ns, k.group, k.resource, v, n})
				}
			}
		}
	}
	sort.Slice(asks, func(i, j int) bool { return asks[i].String() < asks[j].String() })

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	begin := time.Now()
	var mu sync.Mutex
	var wrong []string
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for _, sa := range r.sas {
		user := "system:serviceaccount:" + sa.Namespace + ":" + sa.Name
		for _, a := range asks {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				sar := &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
					User:   user,
					Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + sa.Namespace, "system:authenticated"},
					ResourceAttributes: &authzv1.ResourceAttributes{Namespace: a.ns, Group: a.group, Resource: a.resource,
						Verb: a.verb, Name: a.name},
				}}
				if base, sub, ok := strings.Cut(a.resource, "/"); ok {
					sar.Spec.ResourceAttributes.Resource, sar.Spec.ResourceAttributes.Subresource = base, sub
				}
				got, err := bed.Client.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					wrong = append(wrong, fmt.Sprintf("%s: %s: %v", sa.Name, a, err))
					return
				}
				if want := r.grants(sa, a); got.Status.Allowed != want {
					wrong = append(wrong, fmt.Sprintf("%s may %s: %v, the install's roles say %v", sa.Name, a, got.Status.Allowed, want))
				}
			}()
		}
	}
	wg.Wait()
	sort.Strings(wrong)
	for _, w := range wrong {
		t.Errorf("RBAC: %s", w)
	}
	t.Logf("RBAC: %d access reviews for %d ServiceAccounts match the install's roles (%v)", len(asks)*len(r.sas), len(r.sas), time.Since(begin).Round(time.Millisecond))
}
