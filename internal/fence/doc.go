// Package fence keeps a former leader from writing: it tracks, by this
// replica's own clock, until when the lease it last renewed is valid, and
// gives every write a context that ends at that moment. A lapse (a pause, a
// stalled renewal) is final, so a replica that resumes after another has
// led never writes from its stale memory.
package fence
