package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mxedge/mxedge/bench/pattern"
)

type options struct {
	mode       string
	bin        string
	mxedge     string
	mxedgeMode string // auto | require | off
	mxedgeBase string // a second mxedge binary, measured as mxedge-base
	out        string
	duration   time.Duration
	rounds     int
	targets    []string
	holds      []int
	transferMB int
	keep       bool
	layouts    []layout // the first is the main one; transfers and memory run in it
	wrk        string   // smoke: require | auto | off (the short wrk/h2load round)
}

func main() {
	var o options
	var targets, holds, lays string
	flag.StringVar(&o.mode, "mode", "all", "all | smoke")
	flag.StringVar(&o.bin, "bin", "bench/bin", "directory holding the upstream and goproxy binaries")
	flag.StringVar(&o.mxedge, "mxedge", "bin/mxedge", "mxedge binary")
	flag.StringVar(&o.mxedgeBase, "mxedge-base", "", "a second mxedge binary (e.g. built from the commit before a change), measured interleaved as target mxedge-base")
	flag.StringVar(&o.mxedgeMode, "with-mxedge", "auto", "auto (measure when it starts, else say why not) | require | off")
	flag.StringVar(&o.out, "out", "bench/out", "results directory")
	flag.DurationVar(&o.duration, "duration", 0, "length of one load run (default 2s, smoke 1s)")
	flag.IntVar(&o.rounds, "rounds", 3, "interleaved rounds (A B C A B C …)")
	flag.StringVar(&targets, "targets", "", "comma-separated subset of direct,goproxy,nginx,haproxy,caddy,mxedge")
	flag.StringVar(&holds, "holds", "2000,9800", "held /sync counts (9,800: see docs/PERFORMANCE.md on the 20,000 descriptor limit)")
	flag.IntVar(&o.transferMB, "transfer-mb", 100, "upload/download size in MiB")
	flag.BoolVar(&o.keep, "keep", false, "keep the temp prefix (configs, logs)")
	flag.StringVar(&lays, "layouts", "sidecar,split", "core layouts of the small-request rounds, the main one first (sidecar: proxy and upstream share CPU 0; split: proxy alone on CPU 0, upstream with the load on CPU 1)")
	flag.StringVar(&o.wrk, "smoke-wrk", "auto", "smoke: the short wrk/h2load round: require | auto (run when wrk and h2load are installed) | off")
	replot := flag.String("replot", "", "only rewrite results.md and plot.png in -out from this results.json")
	flag.Parse()
	if *replot != "" {
		if err := rerender(*replot, o.out); err != nil {
			fmt.Fprintln(os.Stderr, "bench: FAIL:", err)
			os.Exit(1)
		}
		return
	}
	if targets != "" {
		o.targets = strings.Split(targets, ",")
	}
	for _, l := range strings.Split(lays, ",") {
		ly, ok := layouts[strings.TrimSpace(l)]
		if !ok {
			fmt.Fprintf(os.Stderr, "bench: unknown layout %q (sidecar, split)\n", l)
			os.Exit(2)
		}
		o.layouts = append(o.layouts, ly)
	}
	if os.Getenv("MXEDGE_REQUIRE_COMPONENTS") == "1" && o.wrk == "auto" {
		o.wrk = "require"
	}
	for _, h := range strings.Split(holds, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(h)); err == nil && n > 0 {
			o.holds = append(o.holds, n)
		}
	}
	if o.duration == 0 {
		o.duration = 2 * time.Second
		if o.mode == "smoke" {
			o.duration = time.Second
		}
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench: FAIL:", err)
		os.Exit(1)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

func run(o options) error {
	root, err := os.MkdirTemp("", "mxedge-bench-")
	if err != nil {
		return err
	}
	// nginx workers run as nobody when the master is root: the prefix must be traversable.
	os.Chmod(root, 0o755)
	if !o.keep {
		defer os.RemoveAll(root)
	} else {
		logf("temp prefix kept: %s", root)
	}
	e := &env{root: root, bin: o.bin, lay: o.layouts[0]}
	if e.bin, err = filepath.Abs(o.bin); err != nil {
		return err
	}
	if o.mxedgeMode != "off" {
		if _, err := os.Stat(o.mxedge); err == nil {
			e.mxedge, _ = filepath.Abs(o.mxedge)
		} else if o.mxedgeMode == "require" {
			return fmt.Errorf("mxedge binary %s: %v", o.mxedge, err)
		} else {
			logf("SKIP mxedge: no binary at %s", o.mxedge)
		}
	}
	if o.mxedgeBase != "" {
		if _, err := os.Stat(o.mxedgeBase); err != nil {
			return fmt.Errorf("-mxedge-base: %v", err)
		}
		e.mxedgeBase, _ = filepath.Abs(o.mxedgeBase)
	}
	if o.mode == "all" {
		for _, tool := range []string{"taskset", "wrk", "h2load", "nginx", "haproxy", "caddy"} {
			if _, err := exec.LookPath(tool); err != nil {
				return fmt.Errorf("%s not found: apt-get install nginx haproxy caddy wrk nghttp2-client util-linux", tool)
			}
		}
	} else if _, err := exec.LookPath("taskset"); err != nil {
		return fmt.Errorf("taskset not found (util-linux)")
	}
	if err := e.makeCert(); err != nil {
		return err
	}
	if o.mode == "smoke" && len(o.targets) == 0 {
		o.targets = []string{"direct", "goproxy", "mxedge"}
		if e.mxedgeBase != "" {
			o.targets = append(o.targets, "mxedge-base")
		}
	}
	ts, err := e.targets(o.targets)
	if err != nil {
		return err
	}
	for _, t := range ts {
		for _, a := range []string{t.plain, t.tls} {
			if a != "" && !portFree(a) {
				return fmt.Errorf("port %s is already in use (another bench run?)", a)
			}
		}
	}

	// Stop every started process on SIGINT/SIGTERM too.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	defer func() {
		for _, t := range ts {
			e.stopTarget(t)
		}
		e.upstream.stop()
	}()
	if err := e.startUpstream(); err != nil {
		return err
	}
	var live []*target
	for _, t := range ts {
		if err := e.startTarget(t); err != nil {
			e.stopTarget(t)
			if t.name == "mxedge" && o.mxedgeMode == "auto" {
				logf("SKIP mxedge: it did not start: %v", err)
				continue
			}
			return err
		}
		logf("started %s (%s)", t.name, t.version)
		live = append(live, t)
	}
	ts = live
	sigc := make(chan os.Signal, 1)
	signal.Notify(sigc, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		<-sigc
		stop()
		logf("interrupted: stopping")
		for _, t := range ts {
			e.stopTarget(t)
		}
		e.upstream.stop()
		os.Exit(130)
	}()
	if o.mode == "smoke" {
		return smoke(e, ts, o)
	}
	return full(ctx, e, ts, o)
}

// smoke runs each scenario about o.duration per target with checked answers and the
// CPU meter, holds and idles 200 connections plain and over TLS with the memory
// reading, runs one short wrk/h2load round in each layout (every scenario in the main
// one, GET in the others), and writes the report and plot into o.out/smoke. It fails
// on a wrong answer or a measurement that came out empty, never on speed.
func smoke(e *env, ts []*target, o options) error {
	start := time.Now()
	rep := newReport(o, ts, start)
	block := pattern.Block()
	const size = 32 << 20
	want := patternSHA(block, size)
	for _, t := range ts {
		for _, s := range scenarios {
			if !s.applies(t) {
				continue
			}
			m := startCPU(e, t, s.tls)
			t0 := time.Now()
			n, err := goLoad(t, s, o.duration, 8)
			if err != nil {
				return fmt.Errorf("%s %s after %d requests: %w", t.name, s.name, n, err)
			}
			r := result{Target: t.name, Scenario: s.name, Round: 1, Layout: e.lay.name(), Tool: "go", Requests: n,
				RPS: float64(n) / time.Since(t0).Seconds(), P50ms: -1, P99ms: -1}
			m.finish(&r)
			if err := measured(r); err != nil {
				return err
			}
			rep.Results = append(rep.Results, r)
			logf("ok %-8s %-10s %6d requests, all checked, proxy CPU %.1f µs/req (upstream %.1f)", t.name, s.name, n, r.CPUus, r.UpCPUus)
		}
		// Long-polls: 200 held (plain, then TLS), counted at the upstream, memory read,
		// then each answered 200; 200 idle keep-alive connections, memory read.
		for _, tlsOn := range []bool{false, true} {
			addr := t.plain
			if tlsOn {
				if addr = t.tls; addr == "" {
					continue
				}
			}
			pid := e.pidFor(t, tlsOn)
			h := holdResult{Target: t.name, N: 200, Kind: "sync", TLS: tlsOn, BaseKB: treeRSS(pid)}
			conns, err := holdSyncs(context.Background(), addr, tlsOn, 200, 3000)
			if err != nil {
				return fmt.Errorf("%s hold (tls %v): %w", t.name, tlsOn, err)
			}
			_, herr := waitHeld(200, 10*time.Second)
			h.HeldKB = treeRSS(pid)
			h.PerConnB = float64(h.HeldKB-h.BaseKB) * 1024 / 200
			rerr := readAllOK(conns, 10*time.Second)
			closeAll(conns)
			if herr != nil || rerr != nil {
				return fmt.Errorf("%s hold (tls %v): %v %v", t.name, tlsOn, herr, rerr)
			}
			if h.HeldKB <= 0 {
				return fmt.Errorf("%s hold (tls %v): no RSS read for pid %d", t.name, tlsOn, pid)
			}
			rep.Holds = append(rep.Holds, h)
			logf("ok %-8s %-10s 200 held /sync counted upstream, all answered 200; %.1f KB each (noise at 200)", t.name, holdName("hold", tlsOn), h.PerConnB/1000)

			h = holdResult{Target: t.name, N: 200, Kind: "idle", TLS: tlsOn, BaseKB: treeRSS(pid)}
			conns, err = idleConns(context.Background(), addr, tlsOn, 200)
			if err != nil {
				return fmt.Errorf("%s idle (tls %v): %w", t.name, tlsOn, err)
			}
			h.HeldKB = treeRSS(pid)
			h.PerConnB = float64(h.HeldKB-h.BaseKB) * 1024 / 200
			closeAll(conns)
			rep.Holds = append(rep.Holds, h)
			logf("ok %-8s %-10s 200 idle keep-alive connections, each answered 200 first; %.1f KB each", t.name, holdName("idle", tlsOn), h.PerConnB/1000)
		}
		c := newClient(false, 1)
		if _, d, err := upload(c, t, block, size, want); err != nil {
			return err
		} else {
			logf("ok %-8s %-10s 32 MiB, sha256 verified, %.0f MB/s", t.name, "upload", size/1e6/d.Seconds())
		}
		if _, d, err := download(c, t, size, want); err != nil {
			return err
		} else {
			logf("ok %-8s %-10s 32 MiB, sha256 verified, %.0f MB/s", t.name, "download", size/1e6/d.Seconds())
		}
		c.CloseIdleConnections()
	}
	// One short round with the real load tools, in every layout (the layout switch
	// and the wrk/h2load parsers are what the full run depends on).
	if err := smokeWrk(e, ts, o, rep); err != nil {
		return err
	}
	if err := e.setLayout(o.layouts[0]); err != nil {
		return err
	}
	rep.Seconds = time.Since(start).Seconds()
	dir := filepath.Join(o.out, "smoke")
	if err := writeReport(rep, dir, nil); err != nil {
		return err
	}
	logf("smoke passed for %s in %.1fs (report: %s/results.md, plot.png; figures not meaningful)", names(ts), time.Since(start).Seconds(), dir)
	return nil
}

func holdName(kind string, tlsOn bool) string {
	if tlsOn {
		return kind + "-tls"
	}
	return kind
}

// measured checks that a cell measured something: requests, no errors and, for a
// proxy, some CPU time (1 s of load costs any proxy far more than one 10 ms tick).
func measured(r result) error {
	if r.Requests <= 0 {
		return fmt.Errorf("%s %s (%s, %s): no requests completed", r.Target, r.Scenario, r.Tool, layoutOf(r))
	}
	if r.Errors > 0 {
		return fmt.Errorf("%s %s (%s, %s): %d errors or non-2xx answers", r.Target, r.Scenario, r.Tool, layoutOf(r), r.Errors)
	}
	if r.Target != "direct" && r.CPUus <= 0 {
		return fmt.Errorf("%s %s (%s, %s): no CPU time read for the proxy over %d requests", r.Target, r.Scenario, r.Tool, layoutOf(r), r.Requests)
	}
	if r.UpCPUus <= 0 && r.Scenario != "wellknown" && r.Scenario != "preflight" {
		return fmt.Errorf("%s %s (%s, %s): no CPU time read for the upstream over %d requests", r.Target, r.Scenario, r.Tool, layoutOf(r), r.Requests)
	}
	return nil
}

// smokeRound is the scenarios of the smoke's wrk/h2load round in the main layout: one
// of each kind (wrk with a body, wrk over TLS, h2load, a local answer); the checked Go
// load covers every scenario.
var smokeRound = map[string]bool{"put": true, "get-tls": true, "get-h2": true, "preflight": true}

// smokeWrk runs wrk/h2load for 1 s per cell: smokeRound in the main layout, GET in each
// other one.
func smokeWrk(e *env, ts []*target, o options, rep *report) error {
	if o.wrk == "off" {
		return nil
	}
	for _, tool := range []string{"wrk", "h2load"} {
		if _, err := exec.LookPath(tool); err != nil {
			if o.wrk == "require" {
				return fmt.Errorf("%s not found (apt-get install wrk nghttp2-client; -smoke-wrk auto skips the round)", tool)
			}
			logf("SKIP the wrk/h2load round: %s not found", tool)
			return nil
		}
	}
	for i, l := range o.layouts {
		if err := e.setLayout(l); err != nil {
			return err
		}
		for _, s := range scenarios {
			if i == 0 && !smokeRound[s.name] || i > 0 && s.name != "get" {
				continue
			}
			for _, t := range ts {
				if !s.applies(t) {
					continue
				}
				r, out, err := runWrk(e, t, s, time.Second)
				if errors.Is(err, errEmpty) {
					// On a starved machine wrk may still be shaking hands with its 50 TLS
					// connections when a 1 s cell ends; a wrong answer shows as errors.
					logf("%s %s %s: no request completed in 1 s, once more for 3 s", t.name, s.name, r.Tool)
					r, out, err = runWrk(e, t, s, 3*time.Second)
				}
				if err != nil {
					return fmt.Errorf("%v\n%s", err, out)
				}
				r.Round = 1
				if err := measured(r); err != nil {
					return fmt.Errorf("%v\n%s", err, out)
				}
				rep.Results = append(rep.Results, r)
				logf("ok %-8s %-10s %s %-7s %6d requests, proxy CPU %.1f µs/req (upstream %.1f)", t.name, s.name, r.Tool, l.name(), r.Requests, r.CPUus, r.UpCPUus)
			}
		}
	}
	return nil
}

func names(ts []*target) string {
	var n []string
	for _, t := range ts {
		n = append(n, t.name)
	}
	return strings.Join(n, ", ")
}

// report is everything one full run measured.
type report struct {
	Date      string            `json:"date"`
	Mode      string            `json:"mode,omitempty"`
	Duration  string            `json:"duration"`
	Rounds    int               `json:"rounds"`
	Layouts   []layout          `json:"layouts,omitempty"`
	Versions  map[string]string `json:"versions"`
	Targets   []string          `json:"targets"`
	Results   []result          `json:"results"`
	Holds     []holdResult      `json:"holds"`
	Transfers []transferResult  `json:"transfers"`
	Notes     []string          `json:"notes"`
	Seconds   float64           `json:"seconds"`
}

func newReport(o options, ts []*target, start time.Time) *report {
	rep := &report{Date: start.UTC().Format("2006-01-02 15:04 UTC"), Mode: o.mode, Duration: o.duration.String(),
		Rounds: o.rounds, Layouts: o.layouts, Versions: map[string]string{}}
	if o.mode == "smoke" {
		rep.Rounds = 1
	}
	for _, t := range ts {
		rep.Targets = append(rep.Targets, t.name)
		rep.Versions[t.name] = t.version
	}
	rep.Versions["wrk"] = output("wrk", "-v")
	rep.Versions["h2load"] = output("h2load", "--version")
	rep.Versions["go"] = output("go", "version")
	rep.Versions["kernel"] = output("uname", "-sr")
	rep.Versions["cpu"] = cpuModel()
	rep.Versions["commit"] = output("git", "describe", "--always", "--dirty")
	return rep
}

// writeReport writes results.json, results.md and plot.png into dir (and prints the
// markdown to w when w is not nil).
func writeReport(rep *report, dir string, w io.Writer) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(rep, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, "results.json"), b, 0o644); err != nil {
		return err
	}
	md := markdown(rep)
	if err := os.WriteFile(filepath.Join(dir, "results.md"), []byte(md), 0o644); err != nil {
		return err
	}
	if err := plot(rep, filepath.Join(dir, "plot.png")); err != nil {
		return err
	}
	if w != nil {
		fmt.Fprintln(w, md)
	}
	return nil
}

func full(ctx context.Context, e *env, ts []*target, o options) error {
	start := time.Now()
	rep := newReport(o, ts, start)
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	rawLog, err := os.Create(filepath.Join(o.out, "raw.log"))
	if err != nil {
		return err
	}
	defer rawLog.Close()

	// Check every cell once (right status, one CORS header, h2 where asked).
	skip := map[string]string{}
	for _, t := range ts {
		for _, s := range scenarios {
			if !s.applies(t) {
				continue
			}
			c := newClient(s.h2, 1)
			if err := check(c, t, s); err != nil {
				skip[t.name+"/"+s.name] = err.Error()
				rep.Notes = append(rep.Notes, fmt.Sprintf("%s %s not measured: %v", t.name, s.name, err))
				logf("WARN %s %s not measured: %v", t.name, s.name, err)
			}
			c.CloseIdleConnections()
		}
	}
	// For each layout: a warm-up (not recorded), then interleaved rounds: for each
	// scenario, every target in turn, the order rotated each round.
	for _, l := range o.layouts {
		if err := e.setLayout(l); err != nil {
			return err
		}
		logf("layout %s: %s", l.name(), l.About)
		for _, t := range ts {
			runWrk(e, t, scenarios[0], 500*time.Millisecond)
		}
		for r := 1; r <= o.rounds; r++ {
			for _, s := range scenarios {
				for _, t := range rotate(ts, r-1) {
					if !s.applies(t) || skip[t.name+"/"+s.name] != "" {
						continue
					}
					if ctx.Err() != nil {
						return ctx.Err()
					}
					res, out, err := runWrk(e, t, s, o.duration)
					fmt.Fprintf(rawLog, "=== %s round %d %s %s\n%s\n", l.name(), r, t.name, s.name, out)
					if err != nil {
						logf("WARN %s %s %s round %d: %v", l.name(), t.name, s.name, r, err)
						rep.Notes = append(rep.Notes, fmt.Sprintf("%s %s (%s) round %d failed: %v", t.name, s.name, l.name(), r, err))
						continue
					}
					res.Round = r
					rep.Results = append(rep.Results, res)
					logf("%s round %d %-8s %-10s %8.0f req/s p50 %.2fms p99 %.2fms cpu %.1f µs/req (upstream %.1f) errors %d",
						l.name(), r, t.name, s.name, res.RPS, res.P50ms, res.P99ms, res.CPUus, res.UpCPUus, res.Errors)
				}
			}
		}
	}
	// Transfers and memory in the main layout.
	if err := e.setLayout(o.layouts[0]); err != nil {
		return err
	}
	// 100 MB upload and download, interleaved, each target restarted and warmed first,
	// peak RSS of the proxy tree sampled every 5 ms.
	block := pattern.Block()
	size := int64(o.transferMB) << 20
	want := patternSHA(block, size)
	for r := 1; r <= o.rounds; r++ {
		for _, t := range rotate(ts, r-1) {
			if err := e.restart(t); err != nil {
				return err
			}
			for _, dir := range []string{"upload", "download"} {
				c := newClient(false, 1)
				pid := e.pid(t)
				base := treeRSS(pid)
				cpu0 := treeCPUTicks(pid)
				smp := sampleRSS(pid, 5*time.Millisecond)
				var d time.Duration
				var err error
				if dir == "upload" {
					_, d, err = upload(c, t, block, size, want)
				} else {
					_, d, err = download(c, t, size, want)
				}
				peak := smp.stop()
				cpu := float64(treeCPUTicks(pid)-cpu0) * 10
				if t.name == "direct" {
					cpu = 0
				}
				c.CloseIdleConnections()
				if err != nil {
					return err
				}
				tr := transferResult{Target: t.name, Dir: dir, Round: r, Bytes: size, Seconds: d.Seconds(),
					MBps: float64(size) / 1e6 / d.Seconds(), BaseKB: base, PeakKB: peak, GrowKB: peak - base, CPUms: cpu, SHA256: want}
				rep.Transfers = append(rep.Transfers, tr)
				logf("round %d %-8s %-8s %6.0f MB/s cpu %4.0f ms rss %d→%d KiB (+%d), sha256 ok", r, t.name, dir, tr.MBps, tr.CPUms, base, peak, tr.GrowKB)
			}
		}
	}
	// Held long-polls, plain then TLS: each target restarted fresh, warmed, then n held /sync.
	for _, tlsOn := range []bool{false, true} {
		for _, n := range o.holds {
			for _, t := range ts {
				if tlsOn && t.tls == "" {
					continue
				}
				if ctx.Err() != nil {
					return ctx.Err()
				}
				h, err := holdOne(ctx, e, t, n, tlsOn)
				if err != nil {
					logf("WARN %s %s %d: %v", t.name, holdName("hold", tlsOn), n, err)
					rep.Notes = append(rep.Notes, fmt.Sprintf("%s with %d held /sync (tls %v): %v", t.name, n, tlsOn, err))
				}
				if h.HeldKB > 0 {
					rep.Holds = append(rep.Holds, h)
					logf("%s %-8s n=%d rss %d→%d KiB: %.1f KB per held /sync, cpu %.1f ms/s %s", holdName("hold", tlsOn), t.name, n, h.BaseKB, h.HeldKB, h.PerConnB/1000, h.CPUmsPerS, h.Note)
				}
			}
		}
	}
	// Idle keep-alive connections, plain then TLS: memory and CPU at rest.
	if len(o.holds) > 0 {
		n := o.holds[len(o.holds)-1]
		for _, tlsOn := range []bool{false, true} {
			for _, t := range ts {
				if tlsOn && t.tls == "" {
					continue
				}
				if ctx.Err() != nil {
					return ctx.Err()
				}
				h, err := idleOne(ctx, e, t, n, tlsOn)
				if err != nil {
					logf("WARN %s %s %d: %v", t.name, holdName("idle", tlsOn), n, err)
					rep.Notes = append(rep.Notes, fmt.Sprintf("%s with %d idle connections (tls %v): %v", t.name, n, tlsOn, err))
					continue
				}
				rep.Holds = append(rep.Holds, h)
				logf("%s %-8s n=%d rss %d→%d KiB: %.1f KB per idle connection, cpu %.1f ms/s", holdName("idle", tlsOn), t.name, n, h.BaseKB, h.HeldKB, h.PerConnB/1000, h.CPUmsPerS)
			}
		}
	}
	rep.Seconds = time.Since(start).Seconds()
	if err := writeReport(rep, o.out, os.Stdout); err != nil {
		return err
	}
	logf("done in %.0fs: %s/results.md, results.json, plot.png, raw.log", rep.Seconds, o.out)
	return nil
}

// rerender writes results.md and plot.png into out from a saved results.json.
func rerender(path, out string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var rep report
	if err := json.Unmarshal(b, &rep); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "results.md"), []byte(markdown(&rep)), 0o644); err != nil {
		return err
	}
	return plot(&rep, filepath.Join(out, "plot.png"))
}

// holdOne restarts t, warms it, holds n /sync requests (over TLS when tlsOn) and
// reads the RSS of the tree serving that listener.
func holdOne(ctx context.Context, e *env, t *target, n int, tlsOn bool) (holdResult, error) {
	h := holdResult{Target: t.name, N: n, Kind: "sync", TLS: tlsOn}
	addr := t.plain
	if tlsOn {
		addr = t.tls
	}
	// 28,232 ephemeral ports per destination: wait until the last run's leave room.
	waitTimeWait(28000-n-2000, t.up, mustPort(addr))
	if err := e.restart(t); err != nil {
		return h, err
	}
	pid := e.pidFor(t, tlsOn)
	h.BaseKB = treeRSS(pid)
	conns, err := holdSyncs(ctx, addr, tlsOn, n, 60000)
	if err != nil {
		return h, fmt.Errorf("opening %d connections: %w", n, err)
	}
	defer func() {
		closeAll(conns)
		waitHeld(0, 20*time.Second)
	}()
	got, err := waitHeld(n, 60*time.Second)
	if err != nil {
		h.Note = fmt.Sprintf("only %d of %d reached the upstream", got, n)
		if got <= 0 {
			return h, err
		}
	}
	// Read the peak over a short window once all are held, and the CPU they cost.
	smp := sampleRSS(pid, 20*time.Millisecond)
	time.Sleep(300 * time.Millisecond)
	h.HeldKB = smp.stop()
	h.CPUmsPerS = cpuPerSecond(pid, 3*time.Second)
	held := got
	if held <= 0 {
		held = n
	}
	h.PerConnB = float64(h.HeldKB-h.BaseKB) * 1024 / float64(held)
	return h, err
}

// cpuPerSecond is the CPU time (ms) pid's tree uses per second over d.
func cpuPerSecond(pid int, d time.Duration) float64 {
	c0 := treeCPUTicks(pid)
	time.Sleep(d)
	return float64(treeCPUTicks(pid)-c0) * 10 / d.Seconds()
}

// idleOne restarts t, opens n keep-alive connections (TLS when tlsOn) that each had
// one answered request, and reads the tree's RSS and CPU while they sit idle.
func idleOne(ctx context.Context, e *env, t *target, n int, tlsOn bool) (holdResult, error) {
	h := holdResult{Target: t.name, N: n, Kind: "idle", TLS: tlsOn}
	addr := t.plain
	if tlsOn {
		addr = t.tls
	}
	waitTimeWait(28000-n-2000, t.up, mustPort(addr))
	if err := e.restart(t); err != nil {
		return h, err
	}
	pid := e.pidFor(t, tlsOn)
	h.BaseKB = treeRSS(pid)
	conns, err := idleConns(ctx, addr, tlsOn, n)
	if err != nil {
		return h, fmt.Errorf("opening %d idle connections: %w", n, err)
	}
	defer closeAll(conns)
	time.Sleep(500 * time.Millisecond) // let the upstream connections settle
	h.HeldKB = treeRSS(pid)
	h.PerConnB = float64(h.HeldKB-h.BaseKB) * 1024 / float64(n)
	h.CPUmsPerS = cpuPerSecond(pid, 3*time.Second)
	return h, nil
}

// restart starts t afresh (the upstream itself for direct) and warms it with 200
// small requests, so that memory is measured from the same state for every target.
func (e *env) restart(t *target) error {
	if t.name == "direct" {
		e.upstream.stop()
		if err := e.startUpstream(); err != nil {
			return err
		}
	} else {
		e.stopTarget(t)
		if err := e.startTarget(t); err != nil {
			return err
		}
	}
	c := newClient(false, 4)
	for i := 0; i < 200; i++ {
		check(c, t, scenarios[0])
	}
	c.CloseIdleConnections()
	time.Sleep(200 * time.Millisecond) // let the warm-up connections close
	return nil
}

func mustPort(addr string) int {
	n, _ := strconv.Atoi(port(addr))
	return n
}

func rotate(ts []*target, k int) []*target {
	out := make([]*target, 0, len(ts))
	for i := range ts {
		out = append(out, ts[(i+k)%len(ts)])
	}
	return out
}

func cpuModel() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "model name") {
			if i := strings.IndexByte(l, ':'); i >= 0 {
				return strings.TrimSpace(l[i+1:])
			}
		}
	}
	return "unknown"
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
