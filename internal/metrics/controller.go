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
	}
	reg.MustRegister(m.allocations, m.failures, m.reconcile, m.pool)
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
