package main

import (
	"fmt"
	"sort"
	"strings"
)

// cell is the median of one target × scenario over the rounds.
type cell struct {
	rps, p50, p99, cpu float64
	errors             int64
	n                  int
}

func cells(rep *report) map[string]cell {
	type acc struct {
		rps, p50, p99, cpu []float64
		errors             int64
	}
	m := map[string]*acc{}
	for _, r := range rep.Results {
		k := r.Target + "/" + r.Scenario
		a := m[k]
		if a == nil {
			a = &acc{}
			m[k] = a
		}
		a.rps = append(a.rps, r.RPS)
		a.p50 = append(a.p50, r.P50ms)
		a.p99 = append(a.p99, r.P99ms)
		a.cpu = append(a.cpu, r.CPUus)
		a.errors += r.Errors
	}
	out := map[string]cell{}
	for k, a := range m {
		out[k] = cell{rps: median(a.rps), p50: median(a.p50), p99: median(a.p99), cpu: median(a.cpu), errors: a.errors, n: len(a.rps)}
	}
	return out
}

func ratio(a, b float64) string {
	if a <= 0 || b <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

func ms(v float64) string {
	if v < 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f", v)
}

var scenarioTitle = map[string]string{
	"get":       "GET /_matrix/client/versions (plain)",
	"put":       "PUT …/send/m.room.message/txn (plain)",
	"get-tls":   "GET /versions over TLS (HTTP/1.1)",
	"put-tls":   "PUT …/send over TLS (HTTP/1.1)",
	"get-h2":    "GET /versions over TLS, HTTP/2 (h2load)",
	"wellknown": "GET /.well-known/matrix/client (local answer)",
	"preflight": "OPTIONS preflight on /_matrix/ (local answer)",
}

func markdown(rep *report) string {
	var b strings.Builder
	c := cells(rep)
	fmt.Fprintf(&b, "Run %s, %d interleaved rounds of %s per cell, %.0f s in all.\n\n", rep.Date, rep.Rounds, rep.Duration, rep.Seconds)
	b.WriteString("### Small requests (medians over the rounds)\n\n")
	b.WriteString("| scenario | target | req/s | × direct | × nginx | p50 ms | p99 ms | CPU µs/req | CPU × nginx | non-2xx/errors |\n|---|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, s := range scenarios {
		d := c["direct/"+s.name]
		ng := c["nginx/"+s.name]
		for _, t := range rep.Targets {
			x, ok := c[t+"/"+s.name]
			if !ok {
				continue
			}
			cpu := "–"
			if x.cpu > 0 {
				cpu = fmt.Sprintf("%.1f", x.cpu)
			}
			fmt.Fprintf(&b, "| %s | %s | %.0f | %s | %s | %s | %s | %s | %s | %d |\n", s.name, t, x.rps, ratio(x.rps, d.rps),
				ratio(x.rps, ng.rps), ms(x.p50), ms(x.p99), cpu, ratio(x.cpu, ng.cpu), x.errors)
		}
	}
	b.WriteString("\nFor get-h2, h2load reports no percentiles: the p50 column holds its mean request time.\n")

	b.WriteString("\n### Memory per held /sync long-poll and per idle keep-alive connection (RSS of the whole process tree)\n\n")
	b.WriteString("| target | kind | connections | RSS before MiB | RSS after MiB | KB per connection | × nginx | × caddy | CPU ms/s while held | note |\n|---|---|--:|--:|--:|--:|--:|--:|--:|---|\n")
	per := map[string]float64{}
	for _, h := range rep.Holds {
		per[fmt.Sprintf("%s/%s/%d", h.Target, kind(h), h.N)] = h.PerConnB
	}
	for _, h := range rep.Holds {
		fmt.Fprintf(&b, "| %s | %s | %d | %.1f | %.1f | %.1f | %s | %s | %.1f | %s |\n", h.Target, kind(h), h.N, float64(h.BaseKB)/1024,
			float64(h.HeldKB)/1024, h.PerConnB/1000, ratio(h.PerConnB, per[fmt.Sprintf("nginx/%s/%d", kind(h), h.N)]),
			ratio(h.PerConnB, per[fmt.Sprintf("caddy/%s/%d", kind(h), h.N)]), h.CPUmsPerS, h.Note)
	}

	b.WriteString("\n### 100 MiB upload and download (medians; RSS growth = peak of the tree during the transfer − before)\n\n")
	b.WriteString("| target | direction | MB/s | × direct | × nginx | proxy CPU ms | CPU × nginx | RSS growth MiB (median) | (max) | sha256 |\n|---|---|--:|--:|--:|--:|--:|--:|--:|---|\n")
	type tacc struct{ mbps, grow, cpu []float64 }
	tm := map[string]*tacc{}
	for _, t := range rep.Transfers {
		k := t.Target + "/" + t.Dir
		if tm[k] == nil {
			tm[k] = &tacc{}
		}
		tm[k].mbps = append(tm[k].mbps, t.MBps)
		tm[k].grow = append(tm[k].grow, float64(t.GrowKB)/1024)
		tm[k].cpu = append(tm[k].cpu, t.CPUms)
	}
	for _, dir := range []string{"upload", "download"} {
		dm, nm, nc := 0.0, 0.0, 0.0
		if a := tm["direct/"+dir]; a != nil {
			dm = median(a.mbps)
		}
		if a := tm["nginx/"+dir]; a != nil {
			nm = median(a.mbps)
			nc = median(a.cpu)
		}
		for _, t := range rep.Targets {
			a := tm[t+"/"+dir]
			if a == nil {
				continue
			}
			g := append([]float64(nil), a.grow...)
			sort.Float64s(g)
			cpu := "–"
			if c := median(a.cpu); c > 0 {
				cpu = fmt.Sprintf("%.0f", c)
			}
			fmt.Fprintf(&b, "| %s | %s | %.0f | %s | %s | %s | %s | %.1f | %.1f | verified ×%d |\n", t, dir, median(a.mbps),
				ratio(median(a.mbps), dm), ratio(median(a.mbps), nm), cpu, ratio(median(a.cpu), nc), median(a.grow), g[len(g)-1], len(a.mbps))
		}
	}
	if len(rep.Notes) > 0 {
		b.WriteString("\n### Notes from the run\n\n")
		for _, n := range rep.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	b.WriteString("\n### Versions\n\n")
	keys := make([]string, 0, len(rep.Versions))
	for k := range rep.Versions {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "- %s: %s\n", k, rep.Versions[k])
	}
	return b.String()
}

// kind names a hold; results from before idle connections were measured have none.
func kind(h holdResult) string {
	if h.Kind == "" {
		return "sync"
	}
	return h.Kind
}
