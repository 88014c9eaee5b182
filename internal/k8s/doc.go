// Package k8s is Herald's edge to the Kubernetes API: clients with sane rate
// limits, informers for Herald's own kinds, status writers, events and leader
// election. Decisions are made elsewhere, by pure packages; this package only
// moves objects in and out.
package k8s
