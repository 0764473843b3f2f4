package proxy

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mxedge/mxedge/workers"
)

// roleStats counts the requests of each worker role (index 0: the main
// process), and those sent to the main process because the role's pool had
// no member available. Shared by every snapshot: counters outlive reloads.
type roleStats struct {
	served, fallback [len(workers.Roles) + 1]atomic.Uint64
}

// RoleState is one configured worker role for /readyz.
type RoleState struct {
	Role      string `json:"role"`
	Pool      string `json:"pool"`
	Members   int    `json:"members"`
	Available int    `json:"available"`
	// Serving says who takes the role's requests now: the pool, or with no
	// member available "main" (the fallback) or "none" (the media
	// repository, answered 502).
	Serving string `json:"serving"`
}

// RoleStates lists the configured worker roles in Synapse's order with their
// pools' members (none when workers are not configured).
func (s *Server) RoleStates() []RoleState {
	snap := s.snap.Load()
	if snap == nil {
		return nil
	}
	roles := snap.cfg.WorkerRoles()
	var out []RoleState
	for _, role := range workers.Roles {
		name, ok := roles[role]
		if !ok {
			continue
		}
		st := RoleState{Role: role, Pool: name, Serving: "pool"}
		if p := snap.pools.Pool(name); p != nil {
			for _, m := range p.Members() {
				st.Members++
				if m.Available() {
					st.Available++
				}
			}
		}
		if st.Available == 0 {
			st.Serving = "main"
			if role == "media_repository" {
				st.Serving = "none"
			}
		}
		out = append(out, st)
	}
	return out
}

// WorkerCollector exports worker routing: requests per role, members per
// role, and the token resolver's cache. Labels come from the fixed role list.
type WorkerCollector struct {
	s                                          *Server
	requests, members, lookups, entries, avail *prometheus.Desc
}

// NewWorkerCollector returns the collector of s. Register it once.
func NewWorkerCollector(s *Server) *WorkerCollector {
	return &WorkerCollector{
		s:        s,
		requests: prometheus.NewDesc("mxedge_worker_requests_total", "Requests routed by Synapse's worker rules, by role (main: the main process) and by who served them (to: role, or main when the role's pool had no member available).", []string{"role", "to"}, nil),
		members:  prometheus.NewDesc("mxedge_worker_members", "Members of a configured worker role's pool.", []string{"role", "pool"}, nil),
		avail:    prometheus.NewDesc("mxedge_worker_members_available", "Members of a configured worker role's pool that take requests (healthy, not ejected).", []string{"role", "pool"}, nil),
		lookups:  prometheus.NewDesc("mxedge_resolver_lookups_total", "Token-to-user lookups of workers.resolver, by result (hit: cached; miss: asked the homeserver; failure: it could not answer, the token was hashed).", []string{"result"}, nil),
		entries:  prometheus.NewDesc("mxedge_resolver_entries", "Tokens cached by workers.resolver.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *WorkerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.requests, c.members, c.avail, c.lookups, c.entries} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. Nothing is exported while workers
// are not configured.
func (c *WorkerCollector) Collect(ch chan<- prometheus.Metric) {
	snap := c.s.snap.Load()
	if snap == nil || snap.table.workers == nil {
		return
	}
	st := &c.s.roles
	for i := range st.served {
		role := workers.Main
		if i > 0 {
			role = workers.Roles[i-1]
		}
		ch <- prometheus.MustNewConstMetric(c.requests, prometheus.CounterValue, float64(st.served[i].Load()), role, "role")
		if i > 0 {
			ch <- prometheus.MustNewConstMetric(c.requests, prometheus.CounterValue, float64(st.fallback[i].Load()), role, "main")
		}
	}
	for _, r := range c.s.RoleStates() {
		ch <- prometheus.MustNewConstMetric(c.members, prometheus.GaugeValue, float64(r.Members), r.Role, r.Pool)
		ch <- prometheus.MustNewConstMetric(c.avail, prometheus.GaugeValue, float64(r.Available), r.Role, r.Pool)
	}
	if res := snap.resolver; res != nil {
		hits, misses, failures := res.Stats()
		ch <- prometheus.MustNewConstMetric(c.lookups, prometheus.CounterValue, float64(hits), "hit")
		ch <- prometheus.MustNewConstMetric(c.lookups, prometheus.CounterValue, float64(misses), "miss")
		ch <- prometheus.MustNewConstMetric(c.lookups, prometheus.CounterValue, float64(failures), "failure")
		ch <- prometheus.MustNewConstMetric(c.entries, prometheus.GaugeValue, float64(res.Len()))
	}
}
