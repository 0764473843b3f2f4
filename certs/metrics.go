package certs

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the certs collectors, registered on the injected registerer.
type metrics struct {
	expiry   *expiryCollector
	attempts prometheus.Counter
	failures prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, m *Manager) (*metrics, error) {
	met := &metrics{
		expiry: &expiryCollector{m: m, desc: prometheus.NewDesc(
			"mxedge_tls_certificate_expiry_timestamp_seconds",
			"NotAfter of the certificate served for a name in tls.domains, as a Unix timestamp (absent while there is none).",
			[]string{"name"}, nil)},
		attempts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mxedge_tls_acme_attempts_total",
			Help: "ACME attempts to obtain or renew a certificate (one per name and try).",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mxedge_tls_acme_failures_total",
			Help: "ACME attempts to obtain or renew a certificate that failed.",
		}),
	}
	if reg == nil {
		return met, nil
	}
	done := make([]prometheus.Collector, 0, 3)
	for _, c := range []prometheus.Collector{met.expiry, met.attempts, met.failures} {
		if err := reg.Register(c); err != nil {
			for _, d := range done {
				reg.Unregister(d)
			}
			return nil, err
		}
		done = append(done, c)
	}
	return met, nil
}

// unregister removes the collectors (Stop), so that a new Manager can
// register on the same registry after a restart of the listeners.
func (met *metrics) unregister(reg prometheus.Registerer) {
	if reg == nil {
		return
	}
	reg.Unregister(met.expiry)
	reg.Unregister(met.attempts)
	reg.Unregister(met.failures)
}

// expiryCollector reads the expiry of each served certificate at scrape
// time, so the gauge follows obtains, renewals and file reloads without
// bookkeeping.
type expiryCollector struct {
	m    *Manager
	desc *prometheus.Desc
}

func (c *expiryCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *expiryCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.m.Status() {
		if s.NotAfter.IsZero() {
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(s.NotAfter.Unix()), s.Name)
	}
}
