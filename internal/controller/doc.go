// Package controller is Herald's IP allocation loop: it watches Services,
// Namespaces and Herald's configuration objects, asks the allocator for
// addresses, and publishes them in Service status, with events, pool status
// and conditions on the configuration objects.
//
// The shape is informers, rate-limited workqueues of keys, and idempotent
// syncs that read only from the informers' caches. A Service change
// re-evaluates that Service; a configuration change re-evaluates only the
// Services waiting for an address and those whose addresses changed pool.
package controller
