package speaker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"

	"github.com/heraldlb/herald/api/v1beta1"
	"github.com/heraldlb/herald/internal/k8s"
)

// resourceAnnouncements is the resource of [v1beta1.ServiceAnnouncement].
const resourceAnnouncements = "serviceannouncements"

// annFieldManager is the field manager of every speaker's applies: one
// name for all, so that an apply replaces every field of the last one,
// whichever node made it.
const annFieldManager = "herald-speaker"

// annIndexNode indexes the ServiceAnnouncements by their node, and
// annIndexService by their Service (namespace/name).
const (
	annIndexNode    = "node"
	annIndexService = "service"
)

// annWant is what the writer should make of one object: write status, or
// delete it (status nil) while it names this node, or any node (anyNode).
type annWant struct {
	status  *v1beta1.ServiceAnnouncementStatus
	anyNode bool
}

// annWriter keeps the ServiceAnnouncement objects as the loop wants them,
// on a goroutine of its own: the loop only posts, never waits for the API.
// It writes only what differs from its informer's cache (so a restart or
// a repeated post costs nothing), applies with server-side apply, and
// deletes with the resourceVersion it saw as a precondition (so it never
// deletes what another node wrote since). When the cache shows an object
// it wants in another state (another node's late write), it writes again,
// rate-limited per object.
type annWriter struct {
	self   string
	log    *slog.Logger
	client rest.Interface
	inf    cache.SharedIndexInformer
	queue  workqueue.TypedRateLimitingInterface[string]

	mu   sync.Mutex
	want map[string]annWant // namespace/name -> what to make of it

	applies, deletes, failures atomic.Uint64
}

func newAnnWriter(self string, c *k8s.Clients, log *slog.Logger) (*annWriter, error) {
	lw := cache.NewListWatchFromClient(c.Herald, resourceAnnouncements, metav1.NamespaceAll, fields.Everything())
	inf := cache.NewSharedIndexInformer(lw, &v1beta1.ServiceAnnouncement{}, 0, cache.Indexers{
		annIndexNode: func(obj any) ([]string, error) {
			if a, ok := obj.(*v1beta1.ServiceAnnouncement); ok && a.Status.Node != "" {
				return []string{a.Status.Node}, nil
			}
			return nil, nil
		},
		annIndexService: func(obj any) ([]string, error) {
			if a, ok := obj.(*v1beta1.ServiceAnnouncement); ok && a.Status.Service != "" {
				return []string{a.Namespace + "/" + a.Status.Service}, nil
			}
			return nil, nil
		},
	})
	// Without managedFields: a third of each cached object (the speaker's
	// server-side apply leaves one entry), never read.
	_ = inf.SetTransform(k8s.Transform) // fails only once the informer runs
	w := &annWriter{
		self: self, log: log, client: c.Herald, inf: inf,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(workqueue.DefaultTypedControllerRateLimiter[string](),
			workqueue.TypedRateLimitingQueueConfig[string]{Name: "serviceannouncements"}),
		want: map[string]annWant{},
	}
	recheck := func(obj any) {
		if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		if key, err := cache.MetaNamespaceKeyFunc(obj); err == nil {
			w.mu.Lock()
			wt, ok := w.want[key]
			w.mu.Unlock()
			if ok && wt.status != nil {
				w.queue.AddRateLimited(key)
			}
		}
	}
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, cur any) {
			if a, ok := cur.(*v1beta1.ServiceAnnouncement); ok && w.differs(a) {
				recheck(cur)
			}
		},
		DeleteFunc: recheck,
	})
	if err != nil {
		return nil, fmt.Errorf("speaker: serviceannouncement handler: %w", err)
	}
	return w, nil
}

// differs reports whether the cache holds another status than wanted.
func (w *annWriter) differs(a *v1beta1.ServiceAnnouncement) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	wt, ok := w.want[a.Namespace+"/"+a.Name]
	return ok && wt.status != nil && !sameAnnouncement(*wt.status, a.Status)
}

// post hands over one pass's changes. It never blocks on the API.
func (w *annWriter) post(ops *annOps) {
	w.mu.Lock()
	for name := range ops.forget {
		delete(w.want, name)
	}
	for name := range ops.delete {
		w.want[name] = annWant{}
	}
	for name, st := range ops.apply {
		w.want[name] = annWant{status: &st}
	}
	w.mu.Unlock()
	for name := range ops.delete {
		w.queue.Forget(name)
		w.queue.Add(name)
	}
	for name := range ops.apply {
		w.queue.Forget(name)
		w.queue.Add(name)
	}
}

// purge deletes objects whatever node they name (objects of a node that
// is gone), unless this node wants them.
func (w *annWriter) purge(names []string) {
	w.mu.Lock()
	var queued []string
	for _, name := range names {
		if _, ok := w.want[name]; !ok {
			w.want[name] = annWant{anyNode: true}
			queued = append(queued, name)
		}
	}
	w.mu.Unlock()
	for _, name := range queued {
		w.queue.Add(name)
	}
}

// byNode returns the cached objects that name a node.
func (w *annWriter) byNode(node string) []*v1beta1.ServiceAnnouncement {
	return w.byIndex(annIndexNode, node)
}

// byService returns the cached objects of a Service (namespace/name).
func (w *annWriter) byService(svc string) []*v1beta1.ServiceAnnouncement {
	return w.byIndex(annIndexService, svc)
}

// byIndex returns the cached objects under key in the index.
func (w *annWriter) byIndex(index, key string) []*v1beta1.ServiceAnnouncement {
	objs, _ := w.inf.GetIndexer().ByIndex(index, key)
	out := make([]*v1beta1.ServiceAnnouncement, 0, len(objs))
	for _, o := range objs {
		if a, ok := o.(*v1beta1.ServiceAnnouncement); ok {
			out = append(out, a)
		}
	}
	return out
}

// services returns the Services (namespace/name) that cached objects name.
func (w *annWriter) services() []string {
	return w.inf.GetIndexer().ListIndexFuncValues(annIndexService)
}

// cached returns the cached object of namespace/name.
func (w *annWriter) cached(name string) (*v1beta1.ServiceAnnouncement, bool) {
	o, ok, _ := w.inf.GetIndexer().GetByKey(name)
	if !ok {
		return nil, false
	}
	a, ok := o.(*v1beta1.ServiceAnnouncement)
	return a, ok
}

// run starts the informer, waits for its cache, and writes until ctx ends.
func (w *annWriter) run(ctx context.Context) {
	go w.inf.RunWithContext(ctx)
	go func() {
		<-ctx.Done()
		w.queue.ShutDown()
	}()
	if !cache.WaitForCacheSync(ctx.Done(), w.inf.HasSynced) {
		return
	}
	for {
		name, quit := w.queue.Get()
		if quit {
			return
		}
		err := w.sync(ctx, name)
		if err != nil && ctx.Err() == nil {
			w.failures.Add(1)
			w.log.Warn("write ServiceAnnouncement", slog.String("name", name), slog.Any("error", err))
			w.queue.AddRateLimited(name)
		}
		w.queue.Done(name)
	}
}

// synced reports whether the informer's cache is filled.
func (w *annWriter) synced() bool { return w.inf.HasSynced() }

// sync makes one object as wanted.
func (w *annWriter) sync(ctx context.Context, name string) error {
	w.mu.Lock()
	wt, ok := w.want[name]
	w.mu.Unlock()
	if !ok {
		return nil
	}
	cur, exists := w.cached(name)
	ns, objName, _ := cache.SplitMetaNamespaceKey(name)
	if wt.status != nil {
		if exists && sameAnnouncement(cur.Status, *wt.status) && cur.Labels[v1beta1.LabelAnnouncementService] == wt.status.Service {
			return nil
		}
		if err := w.apply(ctx, ns, objName, *wt.status); err != nil {
			return err
		}
		w.applies.Add(1)
		return nil
	}
	done := func() {
		w.mu.Lock()
		if cw, ok := w.want[name]; ok && cw.status == nil {
			delete(w.want, name)
		}
		w.mu.Unlock()
	}
	if !exists || (!wt.anyNode && cur.Status.Node != w.self) {
		done() // gone, or another node's now
		return nil
	}
	rv := cur.ResourceVersion
	body, err := json.Marshal(metav1.DeleteOptions{Preconditions: &metav1.Preconditions{ResourceVersion: &rv}})
	if err != nil {
		return err
	}
	err = w.client.Delete().Namespace(ns).Resource(resourceAnnouncements).Name(objName).Body(body).Do(ctx).Error()
	switch {
	case err == nil:
		w.deletes.Add(1)
	case apierrors.IsNotFound(err):
	default:
		// A conflict: written since; the next try reads the cache again.
		return fmt.Errorf("delete %s: %w", name, err)
	}
	done()
	return nil
}

// apply writes one object with server-side apply: no read first, and
// every field of the last apply that this one lacks is removed.
func (w *annWriter) apply(ctx context.Context, ns, name string, st v1beta1.ServiceAnnouncementStatus) error {
	lbls := map[string]string{
		v1beta1.LabelAnnouncementService:  st.Service,
		v1beta1.LabelAnnouncementProtocol: st.Protocol,
	}
	if len(validation.IsValidLabelValue(st.Node)) == 0 {
		lbls[v1beta1.LabelSessionNode] = st.Node
	}
	obj := v1beta1.ServiceAnnouncement{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1beta1.GroupVersion.String(), Kind: "ServiceAnnouncement"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: lbls},
		Status:     st,
	}
	body, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	force := true
	err = w.client.Patch(types.ApplyPatchType).Namespace(ns).Resource(resourceAnnouncements).Name(name).
		VersionedParams(&metav1.PatchOptions{FieldManager: annFieldManager, Force: &force}, metav1.ParameterCodec).
		Body(body).Do(ctx).Error()
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return err
		}
		return fmt.Errorf("apply %s/%s: %w", ns, name, err)
	}
	return nil
}

// Writes returns how many ServiceAnnouncement applies and deletes
// succeeded, and how many writes failed.
func (w *annWriter) Writes() (applies, deletes, failures uint64) {
	return w.applies.Load(), w.deletes.Load(), w.failures.Load()
}

// nodes returns the nodes that cached objects name.
func (w *annWriter) nodes() []string {
	return w.inf.GetIndexer().ListIndexFuncValues(annIndexNode)
}
