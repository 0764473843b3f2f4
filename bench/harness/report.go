package main

import (
	"fmt"
	"sort"
	"strings"
)

// cell is the median of one target × scenario over the rounds.
type cell struct {
	rps, p50, p99, cpu, user, sys, up float64
	errors                            int64
	n                                 int
}

// cells is the medians of the cells measured in layout lay with the load tools (go
// false: wrk, h2load) or with the smoke's checked Go load (go true), by target/scenario.
func cells(rep *report, lay string, goLoad bool) map[string]cell {
	type acc struct {
		rps, p50, p99, cpu, user, sys, up []float64
		errors                            int64
	}
	m := map[string]*acc{}
	for _, r := range rep.Results {
		if layoutOf(r) != lay || (r.Tool == "go") != goLoad {
			continue
		}
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
		a.user = append(a.user, r.UserUS)
		a.sys = append(a.sys, r.SysUS)
		a.up = append(a.up, r.UpCPUus)
		a.errors += r.Errors
	}
	out := map[string]cell{}
	for k, a := range m {
		out[k] = cell{rps: median(a.rps), p50: median(a.p50), p99: median(a.p99), cpu: median(a.cpu),
			user: median(a.user), sys: median(a.sys), up: median(a.up), errors: a.errors, n: len(a.rps)}
	}
	return out
}

// reportLayouts is the layouts with results, the main one first: as the run listed
// them, else (results from before layouts) split.
func reportLayouts(rep *report) []layout {
	seen := map[string]bool{}
	for _, r := range rep.Results {
		seen[layoutOf(r)] = true
	}
	var out []layout
	for _, l := range rep.Layouts {
		if seen[l.name()] {
			out = append(out, l)
			delete(seen, l.name())
		}
	}
	for _, n := range []string{"sidecar", "split"} {
		if seen[n] {
			out = append(out, layouts[n])
		}
	}
	return out
}

func hasGoLoad(rep *report) bool {
	for _, r := range rep.Results {
		if r.Tool == "go" {
			return true
		}
	}
	return false
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

func us(v float64) string {
	if v <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f", v)
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

// smallTable writes the small-request table of one layout (or of the smoke's Go load).
func smallTable(b *strings.Builder, rep *report, c map[string]cell) {
	b.WriteString("| scenario | target | req/s | × direct | × nginx | p50 ms | p99 ms | CPU µs/req | CPU × nginx | user µs | sys µs | upstream µs/req | non-2xx/errors |\n|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, s := range scenarios {
		d := c["direct/"+s.name]
		ng := c["nginx/"+s.name]
		for _, t := range rep.Targets {
			x, ok := c[t+"/"+s.name]
			if !ok {
				continue
			}
			fmt.Fprintf(b, "| %s | %s | %.0f | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d |\n", s.name, t, x.rps, ratio(x.rps, d.rps),
				ratio(x.rps, ng.rps), ms(x.p50), ms(x.p99), us(x.cpu), ratio(x.cpu, ng.cpu), us(x.user), us(x.sys), us(x.up), x.errors)
		}
	}
}

func markdown(rep *report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Run %s, %d interleaved rounds of %s per cell, %.0f s in all.\n\n", rep.Date, rep.Rounds, rep.Duration, rep.Seconds)
	if rep.Mode == "smoke" {
		b.WriteString("**Smoke run: 1 round of short cells beside checked loads; the figures exercise the code paths and mean nothing.**\n\n")
	}
	lays := reportLayouts(rep)
	if len(lays) > 0 {
		targetsTable(&b, rep, lays[0].name())
	}
	for i, l := range lays {
		c := cells(rep, l.name(), false)
		if len(c) == 0 {
			continue
		}
		main := ""
		if i == 0 && len(rep.Layouts) > 0 {
			main = " — the main table"
		}
		fmt.Fprintf(&b, "### Small requests, %s layout%s (medians over the rounds)\n\n%s.\n\n", l.name(), main, layoutAbout(l))
		smallTable(&b, rep, c)
		b.WriteString("\nCPU µs/req: user+system CPU time of the proxy's process tree (workers included; mxedge's TLS instance for TLS cells) over the cell, from /proc/PID/stat (10 ms ticks), divided by the requests completed; user and sys split it. upstream µs/req: the same for the upstream (direct: its whole cost). For get-h2, h2load reports no percentiles: the p50 column holds its mean request time.\n\n")
	}
	if hasGoLoad(rep) && len(lays) > 0 {
		fmt.Fprintf(&b, "### Checked Go load (smoke: 8 workers, every answer checked; %s layout)\n\n", lays[0].name())
		smallTable(&b, rep, cells(rep, lays[0].name(), true))
		b.WriteString("\n")
	}
	if len(rep.Holds) > 0 {
		memoryTable(&b, rep)
	}
	if len(rep.Transfers) > 0 {
		transferTable(&b, rep)
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
	for _, l := range rep.Layouts {
		fmt.Fprintf(&b, "- layout %s: %s\n", l.name(), layoutAbout(l))
	}
	return b.String()
}

func layoutAbout(l layout) string {
	if l.About != "" {
		return l.About
	}
	return layouts[l.name()].About
}

func memoryTable(b *strings.Builder, rep *report) {
	b.WriteString("\n### Memory per held /sync long-poll and per idle keep-alive connection (RSS of the whole process tree)\n\n")
	b.WriteString("| target | kind | connections | RSS before MiB | RSS after MiB | KB per connection | × nginx | × caddy | CPU ms/s while held | note |\n|---|---|--:|--:|--:|--:|--:|--:|--:|---|\n")
	per := map[string]float64{}
	for _, h := range rep.Holds {
		per[fmt.Sprintf("%s/%s/%d", h.Target, kind(h), h.N)] = h.PerConnB
	}
	for _, h := range rep.Holds {
		fmt.Fprintf(b, "| %s | %s | %d | %.1f | %.1f | %.1f | %s | %s | %.1f | %s |\n", h.Target, kind(h), h.N, float64(h.BaseKB)/1024,
			float64(h.HeldKB)/1024, h.PerConnB/1000, ratio(h.PerConnB, per[fmt.Sprintf("nginx/%s/%d", kind(h), h.N)]),
			ratio(h.PerConnB, per[fmt.Sprintf("caddy/%s/%d", kind(h), h.N)]), h.CPUmsPerS, h.Note)
	}

}

func transferTable(b *strings.Builder, rep *report) {
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
			fmt.Fprintf(b, "| %s | %s | %.0f | %s | %s | %s | %s | %.1f | %.1f | verified ×%d |\n", t, dir, median(a.mbps),
				ratio(median(a.mbps), dm), ratio(median(a.mbps), nm), cpu, ratio(median(a.cpu), nc), median(a.grow), g[len(g)-1], len(a.mbps))
		}
	}
}

// kind names a hold: sync or idle, with -tls over TLS; results from before idle
// connections were measured have none (sync).
func kind(h holdResult) string {
	k := h.Kind
	if k == "" {
		k = "sync"
	}
	if h.TLS {
		k += "-tls"
	}
	return k
}

// targetsTable writes mxedge's standing against issue 13's targets, from the cells of
// the main layout and the memory readings (the largest count of each kind), with
// mxedge-base's beside it when a second binary was measured. It writes nothing unless
// both mxedge and nginx were measured.
func targetsTable(b *strings.Builder, rep *report, lay string) {
	c := cells(rep, lay, false)
	if len(c) == 0 {
		c = cells(rep, lay, true)
	}
	has := map[string]bool{}
	for _, t := range rep.Targets {
		has[t] = true
	}
	if !has["mxedge"] || !has["nginx"] {
		return
	}
	who := []string{"mxedge"}
	fmt.Fprintf(b, "### Issue 13 targets: mxedge against nginx in the same run (%s layout)\n\n", lay)
	if has["mxedge-base"] {
		who = append(who, "mxedge-base")
		b.WriteString("| target | floor / aim | mxedge | status | mxedge-base | status |\n|---|---|--:|---|--:|---|\n")
	} else {
		b.WriteString("| target | floor / aim | measured | status |\n|---|---|--:|---|\n")
	}
	// higher: higher is better (floor ≤ aim); else lower is better (floor ≥ aim).
	// v gives the value for a target and whether it was measured.
	row := func(what, bounds string, v func(string) (float64, bool), floor, aim float64, higher bool, unit string) {
		fmt.Fprintf(b, "| %s | %s |", what, bounds)
		for _, t := range who {
			x, ok := v(t)
			if !ok || x <= 0 {
				b.WriteString(" – | not measured |")
				continue
			}
			status := "**missed**"
			if bounds == "–" {
				status = "–"
			} else if higher && x >= aim || !higher && x <= aim {
				status = "aim met"
			} else if higher && x >= floor || !higher && x <= floor {
				status = "floor met"
			}
			fmt.Fprintf(b, " %.2f%s | %s |", x, unit, status)
		}
		b.WriteString("\n")
	}
	rel := func(s string, cpu bool) func(string) (float64, bool) {
		return func(t string) (float64, bool) {
			m, ok1 := c[t+"/"+s]
			n, ok2 := c["nginx/"+s]
			if !ok1 || !ok2 {
				return 0, false
			}
			if cpu {
				return m.cpu / n.cpu, n.cpu > 0
			}
			return m.rps / n.rps, n.rps > 0
		}
	}
	for _, s := range []string{"get", "put", "get-tls", "put-tls"} {
		row(s+" req/s × nginx", "≥ 0.8× / ≥ 1.0×", rel(s, false), 0.8, 1.0, true, "×")
	}
	for _, s := range []string{"get", "put", "get-tls", "put-tls"} {
		row(s+" CPU per request × nginx", "≤ 1.25× / ≤ 1.0×", rel(s, true), 1.25, 1.0, false, "×")
	}
	row("get-h2 req/s × nginx's HTTP/2", "≥ 0.8× / ≥ 1.0×", rel("get-h2", false), 0.8, 1.0, true, "×")
	row("get-h2 CPU per request × nginx (no target)", "–", rel("get-h2", true), 0, 0, false, "×")
	for _, s := range []string{"wellknown", "preflight"} {
		row(s+" (local answer) req/s × nginx", "≥ 0.8× / ≥ 1.0×", rel(s, false), 0.8, 1.0, true, "×")
	}
	// Memory: the reading at the largest count of each kind.
	mem := func(target, k string) (float64, int, bool) {
		best, n := 0.0, 0
		for _, h := range rep.Holds {
			if h.Target == target && kind(h) == k && h.N > n {
				best, n = h.PerConnB/1000, h.N
			}
		}
		return best, n, n > 0
	}
	kb := func(k string) func(string) (float64, bool) {
		return func(t string) (float64, bool) {
			v, _, ok := mem(t, k)
			return v, ok
		}
	}
	_, n, _ := mem("mxedge", "sync")
	row("held /sync, plain, KB per connection"+count(n), "≤ 12 KB / ≤ 8 KB", kb("sync"), 12, 8, false, " KB")
	nv, n, _ := mem("nginx", "sync-tls")
	row(fmt.Sprintf("held /sync, TLS, × nginx's KB per connection%s (nginx: %.1f KB)", count(n), nv), "≤ 1.0× / ≤ 1.0×",
		func(t string) (float64, bool) {
			v, _, ok := mem(t, "sync-tls")
			return v / nv, ok && nv > 0
		}, 1, 1, false, "×")
	for _, k := range []string{"idle", "idle-tls"} {
		_, n, _ := mem("mxedge", k)
		row(fmt.Sprintf("%s keep-alive, KB per connection%s", k, count(n)), "≤ 8 KB / ≤ 4 KB", kb(k), 8, 4, false, " KB")
	}
	b.WriteString("\n")
}

func count(n int) string {
	if n <= 0 {
		return ""
	}
	return fmt.Sprintf(" (N=%d)", n)
}
