package upstream

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Collector exports the pools of the current Set (the one current returns)
// as mxedge_upstream_* metrics, labelled by pool and member (both from the
// configuration, so the label sets are bounded). Counters of a pool carried
// over by a reload keep counting.
type Collector struct {
	current func() *Set

	requests, failures, ejections, up, inFlight, idle, queue, rejected *prometheus.Desc
}

// NewCollector returns a collector reading current at each scrape. Register
// it once.
func NewCollector(current func() *Set) *Collector {
	pm := []string{"pool", "member"}
	return &Collector{
		current:   current,
		requests:  prometheus.NewDesc("mxedge_upstream_requests_total", "Requests sent to an upstream member.", pm, nil),
		failures:  prometheus.NewDesc("mxedge_upstream_failures_total", "Requests to a member that failed, by kind (refused, reset, timeout, protocol, other).", append(pm, "kind"), nil),
		ejections: prometheus.NewDesc("mxedge_upstream_ejections_total", "Times a member was ejected after failing requests in a row.", pm, nil),
		up:        prometheus.NewDesc("mxedge_upstream_member_up", "Whether a member takes requests (healthy and not ejected).", pm, nil),
		inFlight:  prometheus.NewDesc("mxedge_upstream_in_flight_requests", "Requests in flight to a member.", pm, nil),
		idle:      prometheus.NewDesc("mxedge_upstream_idle_connections", "Idle keep-alive connections to a member.", pm, nil),
		queue:     prometheus.NewDesc("mxedge_upstream_queue_length", "Requests waiting for a connection slot of a pool (max_connections).", []string{"pool"}, nil),
		rejected:  prometheus.NewDesc("mxedge_upstream_queue_rejected_total", "Requests answered 429 by a pool's queue, by reason (full, timeout).", []string{"pool", "reason"}, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.requests, c.failures, c.ejections, c.up, c.inFlight, c.idle, c.queue, c.rejected} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.current()
	if s == nil {
		return
	}
	for _, p := range s.list {
		ch <- prometheus.MustNewConstMetric(c.queue, prometheus.GaugeValue, float64(p.waiting.Load()), p.name)
		ch <- prometheus.MustNewConstMetric(c.rejected, prometheus.CounterValue, float64(p.queueFull.Load()), p.name, "full")
		ch <- prometheus.MustNewConstMetric(c.rejected, prometheus.CounterValue, float64(p.queueTimeout.Load()), p.name, "timeout")
		for _, m := range p.members {
			l := []string{p.name, m.ep.URL}
			ch <- prometheus.MustNewConstMetric(c.requests, prometheus.CounterValue, float64(m.requests.Load()), l...)
			ch <- prometheus.MustNewConstMetric(c.ejections, prometheus.CounterValue, float64(m.ejections.Load()), l...)
			for k := kindRefused; k < kindClient; k++ {
				ch <- prometheus.MustNewConstMetric(c.failures, prometheus.CounterValue, float64(m.failures[k].Load()), p.name, m.ep.URL, kindNames[k])
			}
			up := 0.0
			if m.Available() {
				up = 1
			}
			ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up, l...)
			ch <- prometheus.MustNewConstMetric(c.inFlight, prometheus.GaugeValue, float64(m.conns.Busy()), l...)
			ch <- prometheus.MustNewConstMetric(c.idle, prometheus.GaugeValue, float64(m.conns.Idle()), l...)
		}
	}
}
