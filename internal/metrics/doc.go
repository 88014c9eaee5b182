// Package metrics defines Herald's Prometheus collectors, all named with
// the herald_ prefix and registered on a registry the binary owns (never the
// global one). A nil collector set is valid and records nothing, so code
// under test needs no registry.
package metrics
