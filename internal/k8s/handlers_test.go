package k8s

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/cache"

	"github.com/heraldlb/herald/api/v1beta1"
)

func TestChangePredicates(t *testing.T) {
	pool := func(gen int64, labels map[string]string, accepted string, acceptedGen int64) *v1beta1.IPAddressPool {
		p := &v1beta1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "p", Generation: gen, Labels: labels}}
		if accepted != "" {
			p.Status.AcceptedSpec = &runtime.RawExtension{Raw: []byte(accepted)}
			p.Status.AcceptedGeneration = acceptedGen
		}
		return p
	}
	counted := func(p *v1beta1.IPAddressPool, n int64) *v1beta1.IPAddressPool {
		p.Status.AssignedIPv4 = n
		return p
	}
	secret := func(v string) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s"}, Data: map[string][]byte{"k": []byte(v)}}
	}
	tests := []struct {
		desc      string
		pred      func(old, cur any) bool
		old, cur  any
		wantFired bool
	}{
		{"spec: a status write", SpecChanged, pool(1, nil, "", 0), counted(pool(1, nil, "", 0), 3), false},
		{"spec: a new generation", SpecChanged, pool(1, nil, "", 0), pool(2, nil, "", 0), true},
		{"spec: a label", SpecChanged, pool(1, nil, "", 0), pool(1, map[string]string{"a": "b"}, "", 0), true},
		{"accepted: counts only", AcceptedChanged, pool(1, nil, `{"a":1}`, 1), counted(pool(1, nil, `{"a":1}`, 1), 5), false},
		{"accepted: an unjudged edit", AcceptedChanged, pool(1, nil, `{"a":1}`, 1), pool(2, nil, `{"a":1}`, 1), false},
		{"accepted: a new accepted spec", AcceptedChanged, pool(1, nil, `{"a":1}`, 1), pool(2, nil, `{"a":2}`, 2), true},
		{"accepted: first acceptance", AcceptedChanged, pool(1, nil, "", 0), pool(1, nil, `{"a":1}`, 1), true},
		{"accepted: a label", AcceptedChanged, pool(1, nil, `{"a":1}`, 1), pool(1, map[string]string{"a": "b"}, `{"a":1}`, 1), true},
		{"secret: same data", SecretDataChanged, secret("x"), secret("x"), false},
		{"secret: new data", SecretDataChanged, secret("x"), secret("y"), true},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			fired := false
			h := Handler(func(any) { fired = true }, tc.pred)
			h.OnUpdate(tc.old, tc.cur)
			if fired != tc.wantFired {
				t.Fatalf("fired = %v, want %v", fired, tc.wantFired)
			}
		})
	}
}

func TestAcceptedLists(t *testing.T) {
	inf := cache.NewSharedIndexInformer(nil, &v1beta1.IPAddressPool{}, 0, cache.Indexers{})
	never := &v1beta1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "never"},
		Spec: v1beta1.IPAddressPoolSpec{Addresses: []v1beta1.AddressRange{"203.0.113.0/24"}}}
	kept := &v1beta1.IPAddressPool{ObjectMeta: metav1.ObjectMeta{Name: "kept", Generation: 2},
		Spec: v1beta1.IPAddressPoolSpec{Addresses: []v1beta1.AddressRange{"bad"}}}
	kept.Status.AcceptedSpec = &runtime.RawExtension{Raw: []byte(`{"addresses":["198.18.0.0/24"]}`)}
	kept.Status.AcceptedGeneration = 1
	for _, o := range []*v1beta1.IPAddressPool{never, kept} {
		if err := inf.GetStore().Add(o); err != nil {
			t.Fatal(err)
		}
	}
	got := acceptedAs[v1beta1.IPAddressPool](inf)
	if len(got) != 1 || got[0].Name != "kept" || got[0].Spec.Addresses[0] != "198.18.0.0/24" {
		t.Fatalf("accepted = %+v, want only kept, with its accepted spec", got)
	}
	if kept.Spec.Addresses[0] != "bad" {
		t.Fatal("the cached object was modified")
	}
}
