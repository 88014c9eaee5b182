package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/cache"

	"github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/internal/allocator"
	"github.com/heraldlb/herald/internal/config"
	"github.com/heraldlb/herald/internal/k8s"
)

// Reasons of the conditions Herald sets on configuration objects.
const (
	ConditionReasonValid     = "Valid"
	ConditionReasonNoOverlap = "NoOverlap"
	ConditionReasonFree      = "AddressesAvailable"
	ConditionReasonExhausted = "NoFreeAddress"
)

// rebuildConfig builds a new snapshot from the caches, hands its pools to
// the allocator, and queues what the change can affect: the Services that
// wait for an address, those whose addresses changed pool, and the status of
// every configuration object.
func (c *Controller) rebuildConfig() {
	c.opts.Metrics.Rebuilt()
	pools, l2, bgp, peers, bfd, comms := c.herald.Lists()
	secrets := map[string]map[string][]byte{}
	if list, err := c.secrets.Secrets(c.opts.Namespace).List(labels.Everything()); err == nil {
		for _, s := range list {
			secrets[s.Name] = s.Data
		}
	}
	// The versions in effect are those the API records as accepted, never
	// this process's memory: a restarted or new leader judges the same.
	apools, al2, abgp, apeers, abfd, acomms := c.herald.AcceptedLists()
	reserved := c.reserved()
	prev, _ := config.Build(config.Input{
		Pools: apools, L2Advertisements: al2, BGPAdvertisements: abgp, Peers: apeers, BFDProfiles: abfd, Communities: acomms, Secrets: secrets,
		Reserved: reserved,
	}, nil)
	cfg, problems := config.Build(config.Input{
		Pools: pools, L2Advertisements: l2, BGPAdvertisements: bgp, Peers: peers, BFDProfiles: bfd, Communities: comms, Secrets: secrets,
		Reserved: reserved,
	}, prev)
	report := c.alloc.SetConfig(cfg.Pools)

	byObject := map[objectRef][]config.Problem{}
	for _, p := range problems {
		ref := objectRef{p.Kind, p.Name}
		byObject[ref] = append(byObject[ref], p)
	}
	c.mu.Lock()
	c.cfg = cfg
	oldProblems := c.problems
	c.problems = byObject
	var pending []string
	for _, keys := range c.pending {
		for k := range keys {
			pending = append(pending, k)
		}
	}
	c.mu.Unlock()

	for ref, ps := range byObject {
		if sameProblems(oldProblems[ref], ps) {
			continue
		}
		c.log.Warn("configuration problem", slog.String("kind", ref.kind), slog.String("name", ref.name), slog.Any("problems", problemStrings(ps)))
		inf, _ := c.informerFor(ref.kind)
		if obj, ok, _ := inf.GetStore().GetByKey(ref.name); ok {
			for _, p := range ps {
				c.recorder.Event(obj.(runtime.Object), "Warning", p.Reason, p.Field+": "+p.Message)
			}
		}
	}
	for _, k := range pending {
		c.svcQueue.Add(k)
	}
	for _, k := range report.Changed {
		c.svcQueue.Add(k)
	}
	for _, k := range report.OutOfPool {
		c.svcQueue.Add(k)
	}
	// Status of every configuration object: cheap to compare, written only
	// when it differs.
	for _, p := range pools {
		c.statusQueue.Add(objectRef{config.KindIPAddressPool, p.Name})
	}
	for _, o := range l2 {
		c.statusQueue.Add(objectRef{config.KindL2Advertisement, o.Name})
	}
	for _, o := range bgp {
		c.statusQueue.Add(objectRef{config.KindBGPAdvertisement, o.Name})
	}
	for _, o := range peers {
		c.statusQueue.Add(objectRef{config.KindBGPPeer, o.Name})
	}
	for _, o := range bfd {
		c.statusQueue.Add(objectRef{config.KindBFDProfile, o.Name})
	}
	for _, o := range comms {
		c.statusQueue.Add(objectRef{config.KindCommunity, o.Name})
	}
}

func (c *Controller) processConfig(ctx context.Context) bool {
	key, quit := c.configQueue.Get()
	if quit {
		return false
	}
	defer c.configQueue.Done(key)
	if key == secretKey {
		if err := c.ensureMemberlistSecret(ctx); err != nil {
			c.log.Error("memberlist secret", slog.Any("error", err))
			c.configQueue.AddRateLimited(key)
			return true
		}
		c.configQueue.Forget(key)
		return true
	}
	c.rebuildConfig()
	c.configQueue.Forget(key)
	return true
}

func (c *Controller) processStatus(ctx context.Context) bool {
	ref, quit := c.statusQueue.Get()
	if quit {
		return false
	}
	defer c.statusQueue.Done(ref)
	if err := c.syncStatus(ctx, ref); err != nil {
		if !apierrors.IsNotFound(err) {
			c.log.Debug("sync status", slog.String("kind", ref.kind), slog.String("name", ref.name), slog.Any("error", err))
			c.statusQueue.AddRateLimited(ref)
			return true
		}
	}
	c.statusQueue.Forget(ref)
	return true
}

// informerFor returns the informer and resource name of a kind.
func (c *Controller) informerFor(kind string) (cache.SharedIndexInformer, string) {
	switch kind {
	case config.KindIPAddressPool:
		return c.herald.Pools, k8s.ResourceIPAddressPools
	case config.KindL2Advertisement:
		return c.herald.L2Advertisements, k8s.ResourceL2Advertisements
	case config.KindBGPAdvertisement:
		return c.herald.BGPAdvertisements, k8s.ResourceBGPAdvertisements
	case config.KindBGPPeer:
		return c.herald.Peers, k8s.ResourceBGPPeers
	case config.KindBFDProfile:
		return c.herald.BFDProfiles, k8s.ResourceBFDProfiles
	default:
		return c.herald.Communities, k8s.ResourceCommunities
	}
}

// syncStatus writes one configuration object's status when it differs
// from what Herald knows.
func (c *Controller) syncStatus(ctx context.Context, ref objectRef) error {
	inf, resource := c.informerFor(ref.kind)
	obj, exists, err := inf.GetStore().GetByKey(ref.name)
	if err != nil || !exists {
		if ref.kind == config.KindIPAddressPool {
			c.opts.Metrics.DeletePool(ref.name)
		}
		return nil
	}
	c.mu.Lock()
	problems := c.problems[ref]
	c.mu.Unlock()

	o, ok := obj.(v1beta1.Configurable)
	if !ok {
		return fmt.Errorf("unexpected object %T", obj)
	}
	updated := o.DeepCopyObject().(v1beta1.Configurable)
	status, generation := updated.ConfigStatus(), updated.GetGeneration()
	changed := false
	if p, ok := updated.(*v1beta1.IPAddressPool); ok {
		stats, _ := c.alloc.Stats(p.Name)
		changed = c.setPoolCounts(p, stats)
		if c.setPoolConditions(status, generation, problems, stats) {
			changed = true
		}
	}
	if setReady(status, generation, problems) {
		changed = true
	}
	if accepted, err := setAccepted(updated, problems); err != nil {
		return err
	} else if accepted {
		changed = true
	}
	if status.ObservedGeneration != generation {
		status.ObservedGeneration = generation
		changed = true
	}
	if !changed {
		return nil
	}
	return c.fenced(ctx, func(ctx context.Context) error {
		return k8s.UpdateHeraldStatus(ctx, c.clients, resource, ref.name, updated)
	})
}

// setAccepted records the judgement in o's status: the current spec when it
// has no problem, the accepted one kept when a problem says the previous
// version stays in effect, none otherwise. It reports whether anything
// changed.
func setAccepted(o v1beta1.Configurable, problems []config.Problem) (bool, error) {
	st := o.ConfigStatus()
	blocking, kept := false, false
	for _, p := range problems {
		if !p.Warning {
			blocking = true
			kept = kept || p.KeptPrevious
		}
	}
	switch {
	case !blocking:
		spec, err := o.SpecJSON()
		if err != nil {
			return false, err
		}
		spec, err = canonicalJSON(spec)
		if err != nil {
			return false, err
		}
		if old := st.AcceptedSpec; old != nil && st.AcceptedGeneration == o.GetGeneration() {
			if b, err := canonicalJSON(old.Raw); err == nil && string(b) == string(spec) {
				return false, nil
			}
		}
		st.AcceptedSpec, st.AcceptedGeneration = &runtime.RawExtension{Raw: spec}, o.GetGeneration()
		return true, nil
	case kept && st.AcceptedSpec != nil:
		return false, nil
	default:
		if st.AcceptedSpec == nil && st.AcceptedGeneration == 0 {
			return false, nil
		}
		st.AcceptedSpec, st.AcceptedGeneration = nil, 0
		return true, nil
	}
}

// canonicalJSON re-encodes b with sorted keys, as the API server returns
// an object stored without a schema.
func canonicalJSON(b []byte) ([]byte, error) {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

// setReady sets the Ready condition from an object's problems; it reports
// whether anything changed. Warnings (the winner of a conflict) leave the
// object Ready.
func setReady(status *v1beta1.Status, generation int64, problems []config.Problem) bool {
	cond := metav1.Condition{Type: v1beta1.ConditionReady, Status: metav1.ConditionTrue, Reason: ConditionReasonValid,
		Message: "in effect", ObservedGeneration: generation}
	var msgs, excluded []string
	for _, p := range problems {
		if p.Warning {
			if p.Reason == config.ReasonReservedAddresses {
				excluded = append(excluded, p.Field+": "+p.Message)
			}
			continue
		}
		if cond.Status == metav1.ConditionTrue {
			cond.Status, cond.Reason = metav1.ConditionFalse, p.Reason
		}
		msgs = append(msgs, p.Field+": "+p.Message)
	}
	if len(msgs) > 0 {
		cond.Message = strings.Join(msgs, "; ")
	}
	if len(excluded) > 0 && cond.Status == metav1.ConditionTrue {
		// In effect, without the addresses that would hurt the network:
		// the condition says which and why.
		cond.Message = "in effect; " + strings.Join(excluded, "; ")
	}
	return setCondition(status, cond)
}

// setPoolConditions sets Conflicting and Exhausted on a pool.
func (c *Controller) setPoolConditions(status *v1beta1.Status, generation int64, problems []config.Problem, stats allocator.PoolStats) bool {
	conflict := metav1.Condition{Type: v1beta1.ConditionConflicting, Status: metav1.ConditionFalse, Reason: ConditionReasonNoOverlap,
		Message: "no other pool overlaps this one", ObservedGeneration: generation}
	var msgs []string
	for _, p := range problems {
		if p.Reason == config.ReasonOverlap && p.Other != "" {
			msgs = append(msgs, p.Field+": "+p.Message)
		}
	}
	if len(msgs) > 0 {
		conflict.Status, conflict.Reason, conflict.Message = metav1.ConditionTrue, config.ReasonOverlap, strings.Join(msgs, "; ")
	}
	exhausted := metav1.Condition{Type: v1beta1.ConditionExhausted, Status: metav1.ConditionFalse, Reason: ConditionReasonFree,
		Message: "addresses are available", ObservedGeneration: generation}
	var empty []string
	for _, f := range []struct {
		name string
		s    allocator.FamilyStats
	}{{"IPv4", stats.IPv4}, {"IPv6", stats.IPv6}} {
		if !f.s.Total.IsZero() && f.s.Available.IsZero() {
			empty = append(empty, f.name)
		}
	}
	if len(empty) > 0 {
		exhausted.Status, exhausted.Reason = metav1.ConditionTrue, ConditionReasonExhausted
		exhausted.Message = "no free " + strings.Join(empty, " or ") + " address left"
	}
	a := setCondition(status, conflict)
	b := setCondition(status, exhausted)
	return a || b
}

// setPoolCounts copies the allocator's counts into a pool's status and the
// metrics.
func (c *Controller) setPoolCounts(p *v1beta1.IPAddressPool, s allocator.PoolStats) bool {
	before := p.Status
	p.Status.AssignedIPv4 = clampCount(s.IPv4.Assigned)
	p.Status.AssignedIPv6 = clampCount(s.IPv6.Assigned)
	p.Status.AvailableIPv4 = clampCount(s.IPv4.Available)
	p.Status.AvailableIPv6 = clampCount(s.IPv6.Available)
	p.Status.OutOfPool = int64(s.IPv4.Stranded + s.IPv6.Stranded)
	c.opts.Metrics.SetPool(p.Name, "ipv4", s.IPv4.Total.Float64(), s.IPv4.Assigned.Float64(), s.IPv4.Available.Float64())
	c.opts.Metrics.SetPool(p.Name, "ipv6", s.IPv6.Total.Float64(), s.IPv6.Assigned.Float64(), s.IPv6.Available.Float64())
	return before.AssignedIPv4 != p.Status.AssignedIPv4 || before.AssignedIPv6 != p.Status.AssignedIPv6 ||
		before.AvailableIPv4 != p.Status.AvailableIPv4 || before.AvailableIPv6 != p.Status.AvailableIPv6 || before.OutOfPool != p.Status.OutOfPool
}

// clampCount saturates a count at the largest int64, as the API documents.
func clampCount(c allocator.Count) int64 {
	v, ok := c.Uint64()
	if !ok || v > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(v)
}

// setCondition sets cond, keeping the transition time when only the
// message or generation changed; it reports whether anything changed.
func setCondition(status *v1beta1.Status, cond metav1.Condition) bool {
	old := meta.FindStatusCondition(status.Conditions, cond.Type)
	if old != nil && old.Status == cond.Status && old.Reason == cond.Reason && old.Message == cond.Message && old.ObservedGeneration == cond.ObservedGeneration {
		return false
	}
	meta.SetStatusCondition(&status.Conditions, cond)
	return true
}

func sameProblems(a, b []config.Problem) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func problemStrings(ps []config.Problem) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Error()
	}
	return out
}
