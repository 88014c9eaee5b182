package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Controller holds the controller's collectors.
type Controller struct {
	allocations prometheus.Counter
	failures    *prometheus.CounterVec
	reconcile   *prometheus.HistogramVec
	pool        *prometheus.GaugeVec
	fenced      prometheus.Counter
	conflicts   prometheus.Counter
	rebuilds    prometheus.Counter
}

// NewController creates the controller's collectors and registers them.
func NewController(reg prometheus.Registerer) *Controller {
	m := &Controller{
		allocations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_allocations_total", Help: "Addresses written to Service status.",
		}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_allocation_failures_total", Help: "Failed allocations, by reason.",
		}, []string{"reason"}),
		reconcile: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "herald_reconcile_duration_seconds", Help: "Time to sync one Service, API writes included.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"result"}),
		pool: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_pool_addresses", Help: "Addresses of a pool, by family and state (total, assigned, available).",
		}, []string{"pool", "family", "state"}),
		fenced: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_fenced_writes_total", Help: "Writes not sent because this replica's lease was not valid by its own clock.",
		}),
		conflicts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_write_conflicts_total", Help: "Service writes refused by the API server because the Service changed since the decision read it.",
		}),
		rebuilds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_config_rebuilds_total", Help: "Configuration snapshots built: one per change of a configuration object's spec or of a peer's Secret.",
		}),
	}
	reg.MustRegister(m.allocations, m.failures, m.reconcile, m.pool, m.fenced, m.conflicts, m.rebuilds)
	return m
}

// Allocated counts one allocation written to a Service.
func (m *Controller) Allocated() {
	if m != nil {
		m.allocations.Inc()
	}
}

// AllocationFailed counts one failed allocation.
func (m *Controller) AllocationFailed(reason string) {
	if m != nil {
		m.failures.WithLabelValues(reason).Inc()
	}
}

// ObserveReconcile records how long one Service sync took.
func (m *Controller) ObserveReconcile(d time.Duration, err error) {
	if m == nil {
		return
	}
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.reconcile.WithLabelValues(result).Observe(d.Seconds())
}

// SetPool sets a pool's counts for one family ("ipv4" or "ipv6").
func (m *Controller) SetPool(pool, family string, total, assigned, available float64) {
	if m == nil {
		return
	}
	m.pool.WithLabelValues(pool, family, "total").Set(total)
	m.pool.WithLabelValues(pool, family, "assigned").Set(assigned)
	m.pool.WithLabelValues(pool, family, "available").Set(available)
}

// DeletePool drops a deleted pool's series.
func (m *Controller) DeletePool(pool string) {
	if m != nil {
		m.pool.DeletePartialMatch(prometheus.Labels{"pool": pool})
	}
}

// Fenced counts one write not sent because the lease was not valid.
func (m *Controller) Fenced() {
	if m != nil {
		m.fenced.Inc()
	}
}

// Conflict counts one write refused for a stale resourceVersion.
func (m *Controller) Conflict() {
	if m != nil {
		m.conflicts.Inc()
	}
}

// Rebuilt counts one configuration snapshot built.
func (m *Controller) Rebuilt() {
	if m != nil {
		m.rebuilds.Inc()
	}
}
