package speaker

import (
	"slices"
	"time"
)

// HoldDown is the settle gate for an interface that becomes usable while
// the speaker runs: carrier back after a link flap or a partition, or a new
// link. Without it the node would publish the interface at once and, still
// alone in its memberlist view (the others declared it dead, and it them),
// elect itself for every IP and answer next to the real owners until
// memberlist merges again. A held interface is kept out of the published
// metadata, so that neither this node nor the others elect it on it (the
// others keep the IPs meanwhile), until it has been usable for the period
// and the membership has not changed for the period either. The interfaces
// usable when the speaker starts are not held: the start's own settle gate
// covers them. HoldDown is pure; the speaker's loop feeds it.
type HoldDown struct {
	period       time.Duration
	known        []string             // usable at the last call
	held         map[string]time.Time // held interface -> usable since
	membersSince time.Time            // last membership change
}

// DefaultHoldDown is the hold-down period: longer than memberlist needs to
// merge a node back (its joiner retries every second while alone, and the
// others gossip to the dead), so that the node announces only with the full
// membership.
const DefaultHoldDown = 3 * time.Second

// NewHoldDown returns a gate with the given period, started with the
// interfaces usable at start, which it does not hold.
func NewHoldDown(period time.Duration, usable []string) *HoldDown {
	return &HoldDown{period: period, known: slices.Clone(usable), held: map[string]time.Time{}}
}

// MembersChanged records that a member joined or left at now.
func (h *HoldDown) MembersChanged(now time.Time) { h.membersSince = now }

// Publish returns the usable interfaces the node may announce from at now,
// and the ones it holds back. An interface that was not usable at the
// previous call is held from now; one that stops being usable is
// forgotten.
func (h *HoldDown) Publish(usable []string, now time.Time) (publish, held []string) {
	for name := range h.held {
		if !slices.Contains(usable, name) {
			delete(h.held, name)
		}
	}
	for _, name := range usable {
		if !slices.Contains(h.known, name) {
			h.held[name] = now
		}
	}
	h.known = slices.Clone(usable)
	stable := now.Sub(h.membersSince) >= h.period
	for _, name := range usable {
		if since, ok := h.held[name]; ok {
			if !stable || now.Sub(since) < h.period {
				held = append(held, name)
				continue
			}
			delete(h.held, name)
		}
		publish = append(publish, name)
	}
	if publish == nil {
		publish = []string{}
	}
	return publish, held
}

// Holding reports whether an interface is held back.
func (h *HoldDown) Holding() bool { return len(h.held) > 0 }
