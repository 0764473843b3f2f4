package deploy

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/mxedge/mxedge/config"
	"github.com/mxedge/mxedge/testkit"
	"go.yaml.in/yaml/v3"
)

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// loadConfig runs the config loader (what `mxedge validate` runs) on data.
func loadConfig(t *testing.T, name string, data []byte) {
	t.Helper()
	p := testkit.TempFile(t, filepath.Base(name), string(data))
	if _, err := config.Load(config.LoadOptions{Path: p}); err != nil {
		t.Errorf("%s: config does not validate:\n%v", name, err)
	}
}

func TestExampleConfigs(t *testing.T) {
	files, err := filepath.Glob("examples/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
	}
	for _, want := range []string{"acme-single.yaml", "behind-loadbalancer.yaml", "delegation.yaml", "synapse-mas.yaml", "synapse-mas-element-call.yaml", "full-deployment.yaml", "workers.yaml"} {
		if !slices.Contains(names, want) {
			t.Errorf("got examples %v, want %s among them", names, want)
		}
	}
	// The loader rejects a broken file, so a pass below means something.
	p := testkit.TempFile(t, "bad.yaml", "server_name: example.org\nno_such_key: 1\n")
	if _, err := config.Load(config.LoadOptions{Path: p}); err == nil {
		t.Fatal("config.Load accepted an unknown key: the example checks would prove nothing")
	}
	for _, f := range append(files, "container/mxedge.yaml") {
		t.Run(f, func(t *testing.T) { loadConfig(t, f, read(t, f)) })
	}
}

// unitDirectives parses a systemd unit into section → key → values.
func unitDirectives(t *testing.T, data []byte) map[string]map[string][]string {
	t.Helper()
	out := map[string]map[string][]string{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			out[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("bad unit line %q", line)
			}
			out[section][k] = append(out[section][k], v)
		}
	}
	return out
}

func TestSystemdUnit(t *testing.T) {
	data := read(t, "systemd/mxedge.service")
	u := unitDirectives(t, data)
	svc := u["Service"]
	want := map[string]string{
		"DynamicUser":             "yes",
		"StateDirectory":          "mxedge",
		"AmbientCapabilities":     "CAP_NET_BIND_SERVICE",
		"CapabilityBoundingSet":   "CAP_NET_BIND_SERVICE",
		"ProtectSystem":           "strict",
		"NoNewPrivileges":         "yes",
		"PrivateTmp":              "yes",
		"ProtectHome":             "yes",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
		"SystemCallFilter":        "@system-service",
		"ExecReload":              "/bin/kill -HUP $MAINPID",
		"LimitNOFILE":             "1048576",
	}
	for k, v := range want {
		if !slices.Contains(svc[k], v) {
			t.Errorf("[Service] %s: got %q, want %q among them", k, svc[k], v)
		}
	}
	if es := svc["ExecStart"]; len(es) != 1 || !strings.Contains(es[0], "mxedge run --config ") {
		t.Errorf("ExecStart: got %q, want mxedge run --config …", es)
	}
	if len(u["Install"]["WantedBy"]) == 0 {
		t.Error("[Install] WantedBy: missing")
	}

	// systemd-analyze verify, with the binary path pointing at a stub.
	sa := testkit.Require(t, "systemd-analyze")
	dir := t.TempDir()
	bin := filepath.Join(dir, "mxedge")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	unit := filepath.Join(dir, "mxedge.service")
	if err := os.WriteFile(unit, bytes.ReplaceAll(data, []byte("/usr/local/bin/mxedge"), []byte(bin)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sa, "verify", "--man=no", unit).CombinedOutput()
	// verify exits 0 on unknown keys but prints them: any output is a failure.
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// dockerInstructions parses a Dockerfile into (instruction, arguments) pairs,
// joining continuation lines and dropping comments.
func dockerInstructions(data []byte) [][2]string {
	var out [][2]string
	var cur strings.Builder
	for _, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		if cur.Len() == 0 && (trimmed == "" || strings.HasPrefix(trimmed, "#")) {
			continue
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur.WriteString(strings.TrimSuffix(trimmed, "\\") + " ")
			continue
		}
		cur.WriteString(trimmed)
		ins, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, [2]string{strings.ToUpper(ins), strings.TrimSpace(args)})
		cur.Reset()
	}
	return out
}

func TestDockerfile(t *testing.T) {
	ins := dockerInstructions(read(t, "container/Dockerfile"))
	var froms []string
	var user, healthcheck, entrypoint string
	var cgoOff, copyFromBuild bool
	for _, in := range ins {
		switch in[0] {
		case "FROM":
			froms = append(froms, in[1])
		case "USER":
			user = in[1]
		case "HEALTHCHECK":
			healthcheck = in[1]
		case "ENTRYPOINT":
			entrypoint = in[1]
		case "RUN":
			if strings.Contains(in[1], "CGO_ENABLED=0") && strings.Contains(in[1], "go build") {
				cgoOff = true
			}
		case "COPY":
			if strings.Contains(in[1], "--from=build") && strings.Contains(in[1], "/mxedge") {
				copyFromBuild = true
			}
		}
	}
	if len(froms) < 2 || !strings.HasPrefix(froms[0], "golang:1.26") || !strings.HasSuffix(froms[0], " AS build") {
		t.Errorf("got FROM %q, want a golang:1.26 build stage followed by a runtime stage", froms)
	}
	if len(froms) > 0 {
		last := froms[len(froms)-1]
		if !strings.HasPrefix(last, "gcr.io/distroless/static") && last != "scratch" {
			t.Errorf("got final FROM %q, want distroless/static or scratch", last)
		}
	}
	if !cgoOff {
		t.Error("got no RUN with CGO_ENABLED=0 go build, want a static binary")
	}
	if !copyFromBuild {
		t.Error("got no COPY --from=build of the binary")
	}
	if name, _, _ := strings.Cut(user, ":"); user == "" || name == "0" || name == "root" {
		t.Errorf("got USER %q, want a non-root user", user)
	}
	if !strings.Contains(healthcheck, `CMD ["/mxedge", "healthcheck"]`) {
		t.Errorf("got HEALTHCHECK %q, want the exec form CMD [\"/mxedge\", \"healthcheck\"] (no shell in the image)", healthcheck)
	}
	if !strings.HasPrefix(entrypoint, `["/mxedge"`) {
		t.Errorf("got ENTRYPOINT %q, want [\"/mxedge\"]", entrypoint)
	}
}

func TestCompose(t *testing.T) {
	var c struct {
		Services map[string]struct {
			Image string `yaml:"image"`
			Build *struct {
				Context    string `yaml:"context"`
				Dockerfile string `yaml:"dockerfile"`
			} `yaml:"build"`
			Ports     []string       `yaml:"ports"`
			Volumes   []string       `yaml:"volumes"`
			DependsOn map[string]any `yaml:"depends_on"`
		} `yaml:"services"`
		Volumes map[string]any `yaml:"volumes"`
	}
	if err := yaml.Unmarshal(read(t, "container/compose.yaml"), &c); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"postgres", "synapse", "mxedge"} {
		if _, ok := c.Services[s]; !ok {
			t.Errorf("got services %v, want %s", keys(c.Services), s)
		}
	}
	mx := c.Services["mxedge"]
	for _, p := range []string{"80:8080", "443:8443", "8448:8448"} {
		if !slices.Contains(mx.Ports, p) {
			t.Errorf("mxedge ports: got %v, want %s", mx.Ports, p)
		}
	}
	if _, ok := mx.DependsOn["synapse"]; !ok {
		t.Error("mxedge: want depends_on synapse")
	}
	if _, ok := c.Services["synapse"].DependsOn["postgres"]; !ok {
		t.Error("synapse: want depends_on postgres")
	}
	if len(c.Services["synapse"].Ports) > 0 || len(c.Services["postgres"].Ports) > 0 {
		t.Error("synapse and postgres must not publish ports: only mxedge faces the network")
	}
	if mx.Build == nil {
		t.Fatal("mxedge: want a build section")
	}
	if _, err := os.Stat(filepath.Join("container", mx.Build.Context, mx.Build.Dockerfile)); err != nil {
		t.Errorf("mxedge build: %v", err)
	}
	// Named volumes are declared; bind mounts exist; the state directory is a volume.
	var state bool
	for name, s := range c.Services {
		for _, v := range s.Volumes {
			src, dst, _ := strings.Cut(v, ":")
			dst, _, _ = strings.Cut(dst, ":")
			if strings.HasPrefix(src, ".") {
				if _, err := os.Stat(filepath.Join("container", src)); err != nil && name == "mxedge" {
					t.Errorf("%s: bind mount %s: %v", name, src, err)
				}
				continue
			}
			if _, ok := c.Volumes[src]; !ok {
				t.Errorf("%s: volume %q is not declared under volumes", name, src)
			}
			if name == "mxedge" && dst == "/var/lib/mxedge" {
				state = true
			}
		}
	}
	if !state {
		t.Error("mxedge: want a named volume on /var/lib/mxedge (certificates)")
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// k8sObject is the part of a manifest the test reads.
type k8sObject struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name   string            `yaml:"name"`
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Data map[string]string `yaml:"data"`
	Spec struct {
		Replicas *int             `yaml:"replicas"`
		Selector yaml.Node        `yaml:"selector"`
		Ports    []k8sServicePort `yaml:"ports"`
		Template *k8sPodTemplate  `yaml:"template"`
		Extra    map[string]any   `yaml:",inline"`
	} `yaml:"spec"`
	Resources []string `yaml:"resources"`
}

type k8sServicePort struct {
	Name       string    `yaml:"name"`
	Port       int       `yaml:"port"`
	TargetPort yaml.Node `yaml:"targetPort"`
}

type k8sProbe struct {
	HTTPGet *struct {
		Path string    `yaml:"path"`
		Port yaml.Node `yaml:"port"`
	} `yaml:"httpGet"`
}

type k8sPodTemplate struct {
	Metadata struct {
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Spec struct {
		Containers []struct {
			Name  string `yaml:"name"`
			Ports []struct {
				Name          string `yaml:"name"`
				ContainerPort int    `yaml:"containerPort"`
			} `yaml:"ports"`
			ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
			LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
		} `yaml:"containers"`
		Volumes []struct {
			Name      string `yaml:"name"`
			ConfigMap *struct {
				Name string `yaml:"name"`
			} `yaml:"configMap"`
		} `yaml:"volumes"`
	} `yaml:"spec"`
}

func subset(sel, labels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func TestKubernetes(t *testing.T) {
	files, _ := filepath.Glob("kubernetes/*.yaml")
	objs := map[string][]k8sObject{}
	var raw []byte
	for _, f := range files {
		data := read(t, f)
		raw = append(raw, data...)
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for {
			var o k8sObject
			err := dec.Decode(&o)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if o.Kind == "" {
				t.Errorf("%s: a document without kind", f)
			}
			objs[o.Kind] = append(objs[o.Kind], o)
		}
	}
	for _, k := range []string{"Deployment", "Service", "ConfigMap"} {
		if len(objs[k]) != 1 {
			t.Fatalf("got %d %s objects, want 1", len(objs[k]), k)
		}
	}
	dep, svc, cm := objs["Deployment"][0], objs["Service"][0], objs["ConfigMap"][0]
	if dep.Spec.Replicas == nil || *dep.Spec.Replicas != 2 {
		t.Errorf("Deployment replicas: got %v, want 2", dep.Spec.Replicas)
	}
	var depSel struct {
		MatchLabels map[string]string `yaml:"matchLabels"`
	}
	if err := dep.Spec.Selector.Decode(&depSel); err != nil {
		t.Fatal(err)
	}
	tmpl := dep.Spec.Template
	if tmpl == nil || len(tmpl.Spec.Containers) == 0 {
		t.Fatal("Deployment: no pod template with containers")
	}
	if !subset(depSel.MatchLabels, tmpl.Metadata.Labels) {
		t.Errorf("Deployment selector %v does not match template labels %v", depSel.MatchLabels, tmpl.Metadata.Labels)
	}
	var svcSel map[string]string
	if err := svc.Spec.Selector.Decode(&svcSel); err != nil {
		t.Fatal(err)
	}
	if !subset(svcSel, tmpl.Metadata.Labels) {
		t.Errorf("Service selector %v does not match template labels %v", svcSel, tmpl.Metadata.Labels)
	}

	c := tmpl.Spec.Containers[0]
	portExists := func(n yaml.Node) bool {
		for _, p := range c.Ports {
			if n.Value == p.Name || n.Value == itoa(p.ContainerPort) {
				return true
			}
		}
		return false
	}
	for name, pr := range map[string]*k8sProbe{"readinessProbe": c.ReadinessProbe, "livenessProbe": c.LivenessProbe} {
		if pr == nil || pr.HTTPGet == nil {
			t.Errorf("%s: want an httpGet probe", name)
			continue
		}
		if !portExists(pr.HTTPGet.Port) {
			t.Errorf("%s: port %q is not a container port", name, pr.HTTPGet.Port.Value)
		}
		if pr.HTTPGet.Port.Value != "ops" && pr.HTTPGet.Port.Value != "9100" {
			t.Errorf("%s: got port %q, want the ops port", name, pr.HTTPGet.Port.Value)
		}
	}
	if c.ReadinessProbe != nil && c.ReadinessProbe.HTTPGet != nil && c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("readinessProbe: got path %q, want /readyz", c.ReadinessProbe.HTTPGet.Path)
	}
	for _, p := range svc.Spec.Ports {
		if !portExists(p.TargetPort) {
			t.Errorf("Service port %s: targetPort %q is not a container port", p.Name, p.TargetPort.Value)
		}
	}
	var cmMounted bool
	for _, v := range tmpl.Spec.Volumes {
		if v.ConfigMap != nil && v.ConfigMap.Name == cm.Metadata.Name {
			cmMounted = true
		}
	}
	if !cmMounted {
		t.Errorf("Deployment does not mount ConfigMap %q", cm.Metadata.Name)
	}
	conf, ok := cm.Data["mxedge.yaml"]
	if !ok {
		t.Fatal("ConfigMap: no mxedge.yaml")
	}
	loadConfig(t, "configmap-mxedge.yaml", []byte(conf))
	if !strings.Contains(conf, "store: redis") || !strings.Contains(string(raw), "Redis") {
		t.Error("want the Redis store in the ConfigMap and a note that shared rate limits need it")
	}
	// kustomization lists every manifest.
	for _, k := range objs["Kustomization"] {
		for _, r := range k.Resources {
			if _, err := os.Stat(filepath.Join("kubernetes", r)); err != nil {
				t.Errorf("kustomization: %v", err)
			}
		}
	}
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

func TestPrometheusRules(t *testing.T) {
	promtool := testkit.Require(t, "promtool")
	if out, err := exec.Command(promtool, "check", "rules", "prometheus/alerts.yml").CombinedOutput(); err != nil {
		t.Errorf("promtool check rules: %v\n%s", err, out)
	}
	cmd := exec.Command(promtool, "test", "rules", "alerts_test.yml")
	cmd.Dir = "prometheus"
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool test rules: %v\n%s", err, out)
	}
}

// metricRef finds metric names in a PromQL expression.
var metricRef = regexp.MustCompile(`\b(?:mxedge_[a-z0-9_]+|go_[a-z0-9_]+|process_[a-z0-9_]+|up)\b`)

// documented returns the metric names in docs/METRICS.md's tables.
func documented(t *testing.T) map[string]bool {
	t.Helper()
	doc := string(read(t, "../docs/METRICS.md"))
	names := map[string]bool{"up": true} // Prometheus' own scrape health
	for _, m := range regexp.MustCompile("`((?:mxedge|go|process)_[a-z0-9_]+)`").FindAllStringSubmatch(doc, -1) {
		names[m[1]] = true
	}
	return names
}

func checkExpr(t *testing.T, where, expr string, docs map[string]bool) []string {
	t.Helper()
	refs := metricRef.FindAllString(expr, -1)
	if len(refs) == 0 {
		t.Errorf("%s: expression %q names no metric", where, expr)
	}
	for _, r := range refs {
		base := r
		for _, suf := range []string{"_bucket", "_count", "_sum"} {
			if s, ok := strings.CutSuffix(r, suf); ok && docs[s] {
				base = s
			}
		}
		if !docs[base] {
			t.Errorf("%s: metric %s is not in docs/METRICS.md", where, r)
		}
	}
	return refs
}

func TestGrafanaDashboard(t *testing.T) {
	var d struct {
		Title  string           `json:"title"`
		UID    string           `json:"uid"`
		Panels []map[string]any `json:"panels"`
	}
	if err := json.Unmarshal(read(t, "grafana/mxedge.json"), &d); err != nil {
		t.Fatalf("dashboard is not valid JSON: %v", err)
	}
	if d.Title == "" || d.UID == "" {
		t.Error("dashboard: want a title and a uid")
	}
	docs := documented(t)
	var all []map[string]any
	for _, p := range d.Panels {
		all = append(all, p)
		if sub, ok := p["panels"].([]any); ok {
			for _, s := range sub {
				all = append(all, s.(map[string]any))
			}
		}
	}
	ids := map[float64]bool{}
	var exprs []string
	for _, p := range all {
		title, _ := p["title"].(string)
		id, _ := p["id"].(float64)
		if ids[id] {
			t.Errorf("panel %q: duplicate id %v", title, id)
		}
		ids[id] = true
		if _, ok := p["gridPos"]; !ok {
			t.Errorf("panel %q: no gridPos", title)
		}
		if p["type"] == "row" {
			continue
		}
		targets, _ := p["targets"].([]any)
		if len(targets) == 0 {
			t.Errorf("panel %q: no queries", title)
		}
		for _, tg := range targets {
			expr, _ := tg.(map[string]any)["expr"].(string)
			checkExpr(t, "panel "+title, expr, docs)
			exprs = append(exprs, expr)
		}
	}
	// The views the issue asks for.
	joined := strings.Join(exprs, "\n")
	for _, want := range []string{
		"mxedge_http_requests_total",                                                // traffic, errors
		"histogram_quantile(0.99",                                                   // latency percentiles
		"mxedge_http_request_duration_seconds_bucket",                               // … by class
		`mxedge_ratelimit_decisions_total{instance=~"$instance",outcome="limited"}`, // 429s by category
		`class="sync"`, // long-polls in flight
		"mxedge_tls_certificate_expiry_timestamp_seconds", // certificate days left
		"mxedge_upstream_errors_total",
	} {
		if !strings.Contains(joined, want) {
			t.Errorf("dashboard: no query contains %q", want)
		}
	}
}

func TestAlertMetricsDocumented(t *testing.T) {
	var f struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(read(t, "prometheus/alerts.yml"), &f); err != nil {
		t.Fatal(err)
	}
	docs := documented(t)
	var names []string
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			names = append(names, r.Alert)
			checkExpr(t, "alert "+r.Alert, r.Expr, docs)
		}
	}
	for _, want := range []string{"MxedgeCertificateExpiringSoon", "MxedgeACMEFailures", "MxedgeUpstreamErrors", "MxedgeNotReady", "MxedgeRateLimitRedisFallback"} {
		if !slices.Contains(names, want) {
			t.Errorf("got alerts %v, want %s", names, want)
		}
	}
}

// TestWorkersDocExample: the config shown on docs/WORKERS.md is
// deploy/examples/workers.yaml, byte for byte.
func TestWorkersDocExample(t *testing.T) {
	const marker = "```yaml\n# deploy/examples/workers.yaml\n"
	doc := string(read(t, "../docs/WORKERS.md"))
	i := strings.Index(doc, marker)
	if i < 0 {
		t.Fatalf("docs/WORKERS.md has no yaml block beginning with # deploy/examples/workers.yaml")
	}
	block := doc[i+len("```yaml\n"):]
	end := strings.Index(block, "```")
	if end < 0 {
		t.Fatal("docs/WORKERS.md: the yaml block is not closed")
	}
	if got, want := block[:end], string(read(t, "examples/workers.yaml")); got != want {
		t.Errorf("docs/WORKERS.md block differs from examples/workers.yaml:\n--- doc\n%s\n--- file\n%s", got, want)
	}
}
