package v1beta1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

func metav1AddToGroupVersion(s *runtime.Scheme) {
	metav1.AddToGroupVersion(s, GroupVersion)
}

// Condition types shared by every kind.
const (
	// ConditionReady is True when the object takes effect, and False with a
	// reason and a message naming the field when it is ignored.
	ConditionReady = "Ready"
	// ConditionConflicting is set on a pool whose addresses overlap another
	// pool's; the message names the other pool.
	ConditionConflicting = "Conflicting"
	// ConditionExhausted is True on a pool with no free address in a family
	// that Services asked for.
	ConditionExhausted = "Exhausted"
)
