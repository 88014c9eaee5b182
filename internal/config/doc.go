// Package config turns Herald's custom resources into one validated,
// immutable Config snapshot.
//
// It is pure: it takes plain API objects (no client-go) and returns the
// snapshot plus a list of per-object problems. An object with a problem is
// left out of the snapshot and every other object still takes effect, so one
// bad object never invalidates a working configuration.
package config
