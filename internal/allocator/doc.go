// Package allocator hands out LoadBalancer IPs from the configured pools.
//
// It is pure: it takes validated pools ([]*config.Pool) and plain Request
// values, and answers with addresses or errors that tell the user what to
// do. It never calls the API server; the controller feeds it from informers
// and writes the results to Service status.
//
// The rules it implements are DESIGN.md's "Allocation rules":
//
//   - A requested IP is honoured if it is in a pool, even one with
//     autoAssign: false, as long as the pool's serviceAllocation selects the
//     Service. A requested pool is honoured in the same way.
//   - Otherwise the candidate pools are, first, the auto-assign pools that
//     have serviceAllocation selectors or a priority and select the Service,
//     ordered by priority (lower wins, unset last) and then by name; then the
//     auto-assign pools without selectors, ordered by name.
//   - Within a pool the lowest free address is taken; avoidBuggyIPs skips
//     IPv4 addresses ending in .0 or .255. A Service with a sharing key first
//     joins a compatible address already used with that key in the pool.
//   - Dual stack follows ipFamilyPolicy and ipFamilies; both addresses come
//     from one pool when one pool can give both.
//   - Services share an address only with the same sharing key, no
//     protocol/port collision, and the same backend key.
//   - An address in use is never moved by a pool edit or deletion: it stays
//     assigned and is reported as out of pool.
//
// Cost follows the number of allocations, never the size of a pool: each
// pool keeps, per family, a balanced tree of the intervals of addresses in
// use, so finding the lowest free address is O(r log n) for a pool of r
// ranges with n intervals, and free space takes no memory. A /8 IPv4 pool
// and a /64 IPv6 pool are normal.
//
// The controller drives it like this:
//
//   - at start-up, SetConfig, then Assign every Service's addresses from its
//     status (oldest Service first, so that the older one keeps a contested
//     address), and only then Allocate;
//   - on every change to a Service, Allocate (idempotent) and write the
//     status if the answer changed; Release when the Service is deleted or
//     stops being a LoadBalancer of ours;
//   - on every pool change, SetConfig, refresh the status of the Services it
//     reports, and retry the Services that hold nothing.
//
// Errors wrap ErrInvalidRequest, ErrNoPool, ErrExhausted or ErrConflict
// (use errors.Is); their text is written for a Service event.
//
// An Allocator is safe for concurrent use, but the controller should still
// serialise the decisions for one Service (a workqueue does).
package allocator
