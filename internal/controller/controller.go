package controller

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	corelisters "k8s.io/client-go/listers/core/v1"
	networkinglisters "k8s.io/client-go/listers/networking/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/util/workqueue"

	"github.com/heraldlb/herald/internal/allocator"
	"github.com/heraldlb/herald/internal/config"
	"github.com/heraldlb/herald/internal/fence"
	"github.com/heraldlb/herald/internal/k8s"
	"github.com/heraldlb/herald/internal/metrics"
)

// Event reasons on Services.
const (
	ReasonIPAllocated      = "IPAllocated"
	ReasonAllocationFailed = "AllocationFailed"
	ReasonIPReleased       = "IPReleased"
	ReasonOutOfPool        = "IPOutOfPool"
	ReasonDeprecatedAlias  = "MetalLBAnnotation"
)

// MemberlistSecretName is the Secret that holds the speakers' memberlist
// key; MemberlistSecretKey is its data key.
const (
	MemberlistSecretName = "herald-memberlist"
	MemberlistSecretKey  = "secretkey"
)

// Options configure a Controller.
type Options struct {
	// LBClass selects the Services to serve by spec.loadBalancerClass; ""
	// serves the Services without a class.
	LBClass string
	// Namespace is Herald's own namespace (Secrets, Lease).
	Namespace string
	// Workers is the number of Services synced in parallel. Default 64:
	// a sync mostly waits for the API server, so more workers than cores
	// keep it busy.
	Workers int
	// Logger is the one structured logger.
	Logger *slog.Logger
	// Metrics receives the controller's figures; nil disables them.
	Metrics *metrics.Controller
	// Fence gates every write (events aside): a write starts only while
	// this replica's lease is valid by its own clock, and its request ends
	// when the lease does. Nil means fence.Open(): the only replica.
	Fence *fence.Fence
}

// Controller allocates addresses to Services. Create it with New, start
// its informers with Start, then call Lead once this replica leads.
type Controller struct {
	opts     Options
	log      *slog.Logger
	clients  *k8s.Clients
	recorder record.EventRecorder
	alloc    *allocator.Allocator

	factory    informers.SharedInformerFactory
	secretsFac informers.SharedInformerFactory
	services   corelisters.ServiceLister
	namespaces corelisters.NamespaceLister
	secrets    corelisters.SecretLister
	nodes      corelisters.NodeLister
	svcCIDRs   networkinglisters.ServiceCIDRLister
	herald     *k8s.HeraldInformers
	synced     []cache.InformerSynced

	svcQueue workqueue.TypedRateLimitingInterface[string]
	// annQueue holds Services whose herald.io/ip-allocated-from-pool
	// annotation is stale while their status is not (a status write
	// carries the annotation with it). It is informational, so it waits
	// until no Service waits for its address.
	annQueue    workqueue.TypedRateLimitingInterface[string]
	configQueue workqueue.TypedRateLimitingInterface[string]
	statusQueue workqueue.TypedRateLimitingInterface[objectRef]

	mu       sync.Mutex
	cfg      *config.Config
	problems map[objectRef][]config.Problem
	// pending indexes, by namespace, the Services that wait for an address.
	pending map[string]map[string]bool
	// reported remembers, per Service, the warnings already recorded
	// (reason and message), so that no sync repeats one; forget drops them.
	reported map[string]map[report]bool
	leading  bool
}

// objectRef names one Herald configuration object.
type objectRef struct{ kind, name string }

// Keys of the config queue: rebuild the configuration, or make sure the
// memberlist Secret exists (a deleted one is recreated within seconds).
const (
	configKey = "config"
	secretKey = "memberlist-secret"
)

// New creates a Controller; nothing runs until Start.
func New(ctx context.Context, clients *k8s.Clients, recorder record.EventRecorder, opts Options) (*Controller, error) {
	if opts.Workers <= 0 {
		opts.Workers = 64
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Fence == nil {
		opts.Fence = fence.Open()
	}
	c := &Controller{
		opts:     opts,
		log:      opts.Logger,
		clients:  clients,
		recorder: recorder,
		alloc:    allocator.New(),
		herald:   k8s.NewHeraldInformers(clients, 0),
		problems: map[objectRef][]config.Problem{},
		pending:  map[string]map[string]bool{},
		reported: map[string]map[report]bool{},
		svcQueue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "services"}),
		annQueue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "annotations"}),
		configQueue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "config"}),
		statusQueue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[objectRef](),
			workqueue.TypedRateLimitingQueueConfig[objectRef]{Name: "status"}),
	}
	c.factory = informers.NewSharedInformerFactoryWithOptions(clients.Kube, 0, informers.WithTransform(k8s.Transform))
	c.secretsFac = informers.NewSharedInformerFactoryWithOptions(clients.Kube, 0, informers.WithNamespace(opts.Namespace), informers.WithTransform(k8s.Transform))
	svcInf := c.factory.Core().V1().Services()
	nsInf := c.factory.Core().V1().Namespaces()
	secInf := c.secretsFac.Core().V1().Secrets()
	c.services, c.namespaces, c.secrets = svcInf.Lister(), nsInf.Lister(), secInf.Lister()
	nodeInf := c.factory.Core().V1().Nodes()
	cidrInf := c.factory.Networking().V1().ServiceCIDRs()
	c.nodes, c.svcCIDRs = nodeInf.Lister(), cidrInf.Lister()

	if _, err := svcInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			c.pin(obj.(*corev1.Service))
			c.enqueueService(obj)
		},
		UpdateFunc: func(old, cur any) {
			c.pin(cur.(*corev1.Service))
			if c.needsSync(old.(*corev1.Service), cur.(*corev1.Service)) {
				c.enqueueService(cur)
			}
		},
		DeleteFunc: func(obj any) {
			if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
				c.alloc.Unpin(key)
			}
			c.enqueueService(obj)
		},
	}); err != nil {
		return nil, err
	}
	if _, err := nsInf.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { c.namespaceChanged(obj.(*corev1.Namespace).Name) },
		UpdateFunc: func(old, cur any) {
			o, n := old.(*corev1.Namespace), cur.(*corev1.Namespace)
			if !maps.Equal(o.Labels, n.Labels) {
				c.namespaceChanged(n.Name)
			}
		},
	}); err != nil {
		return nil, err
	}
	// The echo of the controller's own status writes changes no
	// configuration, and only the Secrets that BGPPeers use are part of it.
	cfgChanged := func(any) { c.configQueue.Add(configKey) }
	if err := c.herald.AddHandler(k8s.Handler(cfgChanged, k8s.SpecChanged)); err != nil {
		return nil, err
	}
	peerSecret := func(obj any) {
		name := k8s.SecretName(obj)
		if c.herald.PeerSecretRefs()[name] {
			cfgChanged(obj)
		}
		if name == MemberlistSecretName {
			c.configQueue.Add(secretKey)
		}
	}
	if _, err := secInf.Informer().AddEventHandler(k8s.Handler(peerSecret, k8s.SecretDataChanged)); err != nil {
		return nil, err
	}
	// The nodes' addresses and pod CIDRs and the Service CIDRs are
	// reserved: no pool hands them out (config.Input.Reserved).
	if _, err := nodeInf.Informer().AddEventHandler(k8s.Handler(cfgChanged, reservedChanged)); err != nil {
		return nil, err
	}
	if _, err := cidrInf.Informer().AddEventHandler(k8s.Handler(cfgChanged, nil)); err != nil {
		return nil, err
	}
	// Not the ServiceCIDRs: an API server older than 1.33 does not serve
	// them, and the controller must still start.
	c.synced = []cache.InformerSynced{svcInf.Informer().HasSynced, nsInf.Informer().HasSynced, secInf.Informer().HasSynced,
		nodeInf.Informer().HasSynced, c.herald.HasSynced}
	return c, nil
}

// Start runs the informers, so that a standby replica keeps warm caches,
// and waits for them to sync.
func (c *Controller) Start(ctx context.Context) error {
	c.factory.Start(ctx.Done())
	c.secretsFac.Start(ctx.Done())
	c.herald.Run(ctx)
	if !cache.WaitForCacheSync(ctx.Done(), c.synced...) {
		return errors.New("informer caches did not sync")
	}
	c.log.Info("caches synced")
	return nil
}

// Lead does the leader's work until ctx ends: it loads every existing
// assignment, from a consistent read of the API, before it allocates
// anything, then runs the workers. Lead runs once per Controller: a replica
// that stops leading exits, since what it knows may be stale.
func (c *Controller) Lead(ctx context.Context) {
	start := time.Now()
	c.rebuildConfig()
	n, err := c.restore(ctx)
	for err != nil {
		c.log.Error("restore assignments: retrying", slog.Any("error", err))
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
		n, err = c.restore(ctx)
	}
	c.mu.Lock()
	c.leading = true
	c.mu.Unlock()
	c.log.Info("restored existing assignments", slog.Int("services", n), slog.Duration("duration", time.Since(start)))

	var wg sync.WaitGroup
	wg.Go(func() {
		if err := c.ensureMemberlistSecret(ctx); err != nil {
			c.log.Error("memberlist secret", slog.Any("error", err))
		}
	})
	run := func(n int, f func(context.Context) bool) {
		for range n {
			wg.Go(func() {
				for f(ctx) {
				}
			})
		}
	}
	run(c.opts.Workers, c.processService)
	run(max(1, c.opts.Workers/4), c.processAnnotation)
	run(1, c.processConfig)
	run(4, c.processStatus)
	<-ctx.Done()
	c.svcQueue.ShutDown()
	c.annQueue.ShutDown()
	c.configQueue.ShutDown()
	c.statusQueue.ShutDown()
	wg.Wait()
}

// Ready reports whether this replica leads and has restored its state.
func (c *Controller) Ready() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leading
}

// needsSync reports whether an update can change what the Service should
// hold. The echo of Herald's own status write, which is most updates during
// a backlog, cannot.
func (c *Controller) needsSync(old, cur *corev1.Service) bool {
	if old.ResourceVersion == cur.ResourceVersion {
		return false
	}
	if old.Generation != cur.Generation || !maps.Equal(old.Annotations, cur.Annotations) || !maps.Equal(old.Labels, cur.Labels) ||
		cur.DeletionTimestamp != nil {
		return true
	}
	held, _ := c.alloc.Get(cur.Namespace + "/" + cur.Name)
	return !sameIngress(cur.Status.LoadBalancer.Ingress, held.IPs)
}

func (c *Controller) enqueueService(obj any) {
	key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj)
	if err != nil {
		return
	}
	c.svcQueue.Add(key)
}

func (c *Controller) namespaceChanged(ns string) {
	c.mu.Lock()
	keys := make([]string, 0, len(c.pending[ns]))
	for k := range c.pending[ns] {
		keys = append(keys, k)
	}
	c.mu.Unlock()
	for _, k := range keys {
		c.svcQueue.Add(k)
	}
}

// restore loads the addresses in every Service's status into the
// allocator, oldest Service first, and queues every managed Service. It
// reads the Services from the API server (a consistent, quorum read), not
// from the cache, which may lag behind what a former leader wrote.
func (c *Controller) restore(ctx context.Context) (int, error) {
	var svcs []*corev1.Service
	opts := metav1.ListOptions{Limit: 500}
	for {
		list, err := c.clients.Kube.CoreV1().Services("").List(ctx, opts)
		if err != nil {
			return 0, fmt.Errorf("list services: %w", err)
		}
		for i := range list.Items {
			svcs = append(svcs, &list.Items[i])
		}
		if list.Continue == "" {
			break
		}
		opts.Continue = list.Continue
	}
	slices.SortFunc(svcs, func(a, b *corev1.Service) int {
		if d := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); d != 0 {
			return d
		}
		return compareKeys(a, b)
	})
	n := 0
	for _, svc := range svcs {
		c.pin(svc)
		if !Manages(svc, c.opts.LBClass) {
			continue
		}
		c.svcQueue.Add(svc.Namespace + "/" + svc.Name)
		addrs := statusAddrs(svc)
		if len(addrs) == 0 {
			continue
		}
		if _, err := c.alloc.Assign(c.shareRequest(svc), addrs); err != nil {
			// Another, older Service holds the address: this one gets a new
			// one when its sync runs.
			c.log.Warn("cannot restore assignment", slog.String("service", svc.Namespace+"/"+svc.Name), slog.Any("ips", addrs), slog.Any("error", err))
			c.recorder.Eventf(svc, corev1.EventTypeWarning, ReasonAllocationFailed, "cannot keep %v: %v", addrs, err)
			continue
		}
		n++
	}
	return n, nil
}

// shareRequest is svc's request, or, when it is invalid, a request that
// shares nothing.
func (c *Controller) shareRequest(svc *corev1.Service) allocator.Request {
	req, _, err := RequestFor(svc, c.nsLabels(svc.Namespace))
	if err != nil || !Manages(svc, c.opts.LBClass) {
		req = allocator.Request{Key: svc.Namespace + "/" + svc.Name}
	}
	return req
}

// pin tells the allocator what svc's status shows, so that no address in
// it is given to another Service until svc is seen to release it.
func (c *Controller) pin(svc *corev1.Service) {
	rv, _ := strconv.ParseUint(svc.ResourceVersion, 10, 64)
	c.alloc.Pin(c.shareRequest(svc), rv, statusAddrs(svc))
}

func (c *Controller) processService(ctx context.Context) bool {
	key, quit := c.svcQueue.Get()
	if quit {
		return false
	}
	defer c.svcQueue.Done(key)
	start := time.Now()
	err := c.syncService(ctx, key)
	c.opts.Metrics.ObserveReconcile(time.Since(start), err)
	if err != nil {
		c.log.Debug("sync service", slog.String("service", key), slog.Any("error", err))
		c.svcQueue.AddRateLimited(key)
		return true
	}
	c.svcQueue.Forget(key)
	return true
}

func (c *Controller) syncService(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	svc, err := c.services.Services(ns).Get(name)
	if apierrors.IsNotFound(err) {
		c.forget(key)
		c.alloc.Unpin(key)
		if held, ok := c.alloc.Get(key); ok {
			c.alloc.Release(key)
			c.poolsChanged(held.Pools)
			c.log.Info("released", slog.String("service", key), slog.Any("ips", held.IPs))
		}
		return nil
	}
	if err != nil {
		return err
	}
	if !Manages(svc, c.opts.LBClass) {
		c.forget(key)
		return c.releaseUnmanaged(ctx, svc, key)
	}

	req, warnings, reqErr := RequestFor(svc, c.nsLabels(ns))
	for _, w := range warnings {
		c.recordOnce(svc, key, ReasonDeprecatedAlias, w)
	}
	before, ok := c.alloc.Get(key)
	if shown := statusAddrs(svc); !ok && len(shown) > 0 && reqErr == nil {
		// The API shows addresses this replica has not restored (a former
		// leader wrote them after the restore's read): keep them if the
		// rules allow, as a restart would.
		if a, err := c.alloc.Assign(req, shown); err == nil {
			before = a
		}
	}
	var alloc allocator.Allocation
	if reqErr == nil {
		alloc, err = c.alloc.Allocate(req)
	} else {
		err = reqErr
	}
	if err != nil {
		c.setPending(key, ns, true)
		c.opts.Metrics.AllocationFailed(failureReason(err))
		c.recordOnce(svc, key, ReasonAllocationFailed, err.Error())
		// Nothing changed in the allocator: the Service keeps what it held.
		alloc, _ = c.alloc.Get(key)
	} else {
		c.setPending(key, ns, false)
		c.clearReported(key, ReasonAllocationFailed)
	}

	pool := poolAnnotation(alloc)
	if !sameIngress(svc.Status.LoadBalancer.Ingress, alloc.IPs) {
		if err := c.patchIngress(ctx, svc, alloc.IPs, pool); err != nil {
			return err
		}
		if len(alloc.IPs) > 0 {
			c.opts.Metrics.Allocated()
			c.recorder.Eventf(svc, corev1.EventTypeNormal, ReasonIPAllocated, "assigned %s from pool %s", joinAddrs(alloc.IPs), orNone(pool))
		}
	} else if svc.Annotations[AnnotationAllocatedFromPool] != pool {
		c.annQueue.Add(key)
	}
	if alloc.OutOfPool() {
		c.recordOnce(svc, key, ReasonOutOfPool,
			fmt.Sprintf("%s is no longer in any pool; it stays assigned until the Service releases it", joinAddrs(outOfPoolAddrs(alloc))))
	} else {
		c.clearReported(key, ReasonOutOfPool)
	}
	if !slices.Equal(before.IPs, alloc.IPs) {
		c.poolsChanged(append(before.Pools, alloc.Pools...))
	}
	return err
}

func (c *Controller) processAnnotation(ctx context.Context) bool {
	// Status writes first: wait while Services wait for their address.
	// This gate only orders the two queues; no sync ever sleeps.
	for c.svcQueue.Len() > 0 {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(50 * time.Millisecond):
		}
	}
	key, quit := c.annQueue.Get()
	if quit {
		return false
	}
	defer c.annQueue.Done(key)
	if err := c.syncAnnotation(ctx, key); err != nil {
		c.log.Debug("sync annotation", slog.String("service", key), slog.Any("error", err))
		c.annQueue.AddRateLimited(key)
		return true
	}
	c.annQueue.Forget(key)
	return true
}

// syncAnnotation makes herald.io/ip-allocated-from-pool name the pools of
// what the Service holds.
func (c *Controller) syncAnnotation(ctx context.Context, key string) error {
	ns, name, err := cache.SplitMetaNamespaceKey(key)
	if err != nil {
		return nil
	}
	svc, err := c.services.Services(ns).Get(name)
	if err != nil || !Manages(svc, c.opts.LBClass) {
		return nil // deleted, or releaseUnmanaged cleans up
	}
	alloc, _ := c.alloc.Get(key)
	if want := poolAnnotation(alloc); svc.Annotations[AnnotationAllocatedFromPool] != want {
		return c.patchPoolAnnotation(ctx, svc, want)
	}
	return nil
}

// releaseUnmanaged frees what a Service held when it stopped being Herald's
// (type or class changed), and clears the status Herald wrote.
func (c *Controller) releaseUnmanaged(ctx context.Context, svc *corev1.Service, key string) error {
	held, ok := c.alloc.Get(key)
	if !ok {
		return nil
	}
	if slices.Equal(statusAddrs(svc), held.IPs) {
		if err := c.patchIngress(ctx, svc, nil, ""); err != nil {
			return err
		}
	} else if _, ok := svc.Annotations[AnnotationAllocatedFromPool]; ok {
		if err := c.patchPoolAnnotation(ctx, svc, ""); err != nil {
			return err
		}
	}
	c.alloc.Release(key)
	c.poolsChanged(held.Pools)
	c.recorder.Eventf(svc, corev1.EventTypeNormal, ReasonIPReleased, "released %s: the Service is no longer a LoadBalancer of this class", joinAddrs(held.IPs))
	return nil
}

// patchIngress writes addrs to svc's status, on condition that the Service
// is still at the resourceVersion the decision read: if anything changed
// it since (a former leader's write, a user's edit), the API server refuses
// with a conflict and the Service is decided again from fresh state. The
// same write sets the herald.io/ip-allocated-from-pool annotation to pool
// when it shows something else.
func (c *Controller) patchIngress(ctx context.Context, svc *corev1.Service, addrs []netip.Addr, pool string) error {
	meta := map[string]any{"resourceVersion": svc.ResourceVersion}
	if svc.Annotations[AnnotationAllocatedFromPool] != pool {
		// In the same write: one write per decision, not two.
		meta["annotations"] = poolAnnotationPatch(pool)
	}
	patch, err := json.Marshal(map[string]any{
		"metadata": meta,
		"status":   map[string]any{"loadBalancer": map[string]any{"ingress": ingressFor(addrs)}},
	})
	if err != nil {
		return err
	}
	return c.patchService(ctx, svc, patch, "status")
}

func (c *Controller) patchPoolAnnotation(ctx context.Context, svc *corev1.Service, pool string) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"resourceVersion": svc.ResourceVersion,
		"annotations":     poolAnnotationPatch(pool),
	}})
	if err != nil {
		return err
	}
	// Through the status subresource too: the API server keeps metadata
	// changes made there, and the controller's RBAC grants no write to
	// Services themselves (a patch of a Service could set
	// spec.externalIPs, CVE-2020-8554).
	return c.patchService(ctx, svc, patch, "status")
}

// poolAnnotationPatch is the merge patch of metadata.annotations that sets
// herald.io/ip-allocated-from-pool to pool, or removes it when pool is "".
func poolAnnotationPatch(pool string) map[string]any {
	var value any = pool
	if pool == "" {
		value = nil
	}
	return map[string]any{AnnotationAllocatedFromPool: value}
}

// patchService sends a conditional merge patch through the fence, and pins
// what the written Service shows.
func (c *Controller) patchService(ctx context.Context, svc *corev1.Service, patch []byte, subresources ...string) error {
	var out *corev1.Service
	err := c.fenced(ctx, func(ctx context.Context) error {
		var err error
		out, err = c.clients.Kube.CoreV1().Services(svc.Namespace).Patch(ctx, svc.Name, types.MergePatchType, patch, metav1.PatchOptions{}, subresources...)
		return err
	})
	if err != nil {
		if apierrors.IsConflict(err) {
			c.opts.Metrics.Conflict()
		}
		return fmt.Errorf("patch %s/%s %v: %w", svc.Namespace, svc.Name, subresources, err)
	}
	c.pin(out)
	return nil
}

// fenced runs one write with a context that ends when this replica's lease
// does, or refuses it when the lease is not valid now.
func (c *Controller) fenced(ctx context.Context, write func(context.Context) error) error {
	wctx, cancel, err := c.opts.Fence.Context(ctx)
	defer cancel()
	if err != nil {
		c.opts.Metrics.Fenced()
		return err
	}
	return write(wctx)
}

func (c *Controller) nsLabels(ns string) map[string]string {
	n, err := c.namespaces.Get(ns)
	if err != nil {
		return nil
	}
	return n.Labels
}

func (c *Controller) setPending(key, ns string, pending bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if pending {
		if c.pending[ns] == nil {
			c.pending[ns] = map[string]bool{}
		}
		c.pending[ns][key] = true
		return
	}
	delete(c.pending[ns], key)
	if len(c.pending[ns]) == 0 {
		delete(c.pending, ns)
	}
}

// forget drops what the controller remembers of a Service.
func (c *Controller) forget(key string) {
	ns, _, _ := cache.SplitMetaNamespaceKey(key)
	c.setPending(key, ns, false)
	c.mu.Lock()
	delete(c.reported, key)
	c.mu.Unlock()
}

// report is one warning recorded on a Service.
type report struct{ reason, msg string }

// recordOnce records a warning event on svc unless the same reason and
// message were already recorded for it (and not cleared since).
func (c *Controller) recordOnce(svc *corev1.Service, key, reason, msg string) {
	c.mu.Lock()
	r := report{reason, msg}
	if c.reported[key][r] {
		c.mu.Unlock()
		return
	}
	if c.reported[key] == nil {
		c.reported[key] = map[report]bool{}
	}
	c.reported[key][r] = true
	c.mu.Unlock()
	c.recorder.Event(svc, corev1.EventTypeWarning, reason, msg)
}

// clearReported forgets the warnings of one reason recorded for a Service,
// so that the next one is recorded again: the condition ended.
func (c *Controller) clearReported(key, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for r := range c.reported[key] {
		if r.reason == reason {
			delete(c.reported[key], r)
		}
	}
	if len(c.reported[key]) == 0 {
		delete(c.reported, key)
	}
}

// poolsChanged schedules a status update of the named pools. The delay
// folds a burst of allocations into one write per pool.
func (c *Controller) poolsChanged(pools []string) {
	for _, p := range pools {
		if p != "" {
			c.statusQueue.AddAfter(objectRef{config.KindIPAddressPool, p}, 500*time.Millisecond)
		}
	}
}

// ensureMemberlistSecret creates the speakers' memberlist key when absent:
// 32 random bytes.
func (c *Controller) ensureMemberlistSecret(ctx context.Context) error {
	if _, err := c.secrets.Secrets(c.opts.Namespace).Get(MemberlistSecretName); err == nil {
		return nil
	}
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	err := c.fenced(ctx, func(ctx context.Context) error {
		_, err := c.clients.Kube.CoreV1().Secrets(c.opts.Namespace).Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: MemberlistSecretName, Namespace: c.opts.Namespace,
				Labels: map[string]string{"app.kubernetes.io/name": "herald"}},
			Data: map[string][]byte{MemberlistSecretKey: key},
		}, metav1.CreateOptions{})
		return err
	})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	if err == nil {
		c.log.Info("created the memberlist secret", slog.String("namespace", c.opts.Namespace), slog.String("name", MemberlistSecretName))
	}
	return err
}

func failureReason(err error) string {
	switch {
	case errors.Is(err, allocator.ErrExhausted):
		return "exhausted"
	case errors.Is(err, allocator.ErrNoPool):
		return "no_pool"
	case errors.Is(err, allocator.ErrConflict):
		return "conflict"
	default:
		return "invalid"
	}
}

func joinAddrs(addrs []netip.Addr) string {
	parts := make([]string, len(addrs))
	for i, a := range addrs {
		parts[i] = a.String()
	}
	return strings.Join(parts, ",")
}

func outOfPoolAddrs(a allocator.Allocation) []netip.Addr {
	var out []netip.Addr
	for i, p := range a.Pools {
		if p == "" {
			out = append(out, a.IPs[i])
		}
	}
	return out
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func compareKeys(a, b *corev1.Service) int {
	return cmp.Or(strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
}
