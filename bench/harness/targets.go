package main

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Ports (the bench range is 18000-18999). The upstream listens on 18001 (direct and
// health) and on one port per proxy (18002…): each proxy's upstream connections then
// have their own 4-tuple space, so the TIME_WAIT sockets one target's 9,900 held
// connections leave behind never starve the next target of ephemeral ports.
const (
	portUpstream = 18001
	cpuProxy     = "0" // every proxy runs pinned here
	cpuLoad      = "1" // wrk, h2load and this harness run here
)

// layout says where the upstream runs; the proxies are always on cpuProxy and the load
// generator on cpuLoad.
type layout struct {
	Name     string `json:"name"`
	Proxy    string `json:"proxy_cpu"`
	Upstream string `json:"upstream_cpu"`
	Load     string `json:"load_cpu"`
	About    string `json:"about"`
}

// name is the layout's name ("split" for the zero layout, the one before issue 13).
func (l layout) name() string {
	if l.Name == "" {
		return "split"
	}
	return l.Name
}

var layouts = map[string]layout{
	// A proxy in front of a homeserver on the same host, as deployed: the load
	// generator alone on the other core, so that the measured core is the one the
	// proxy and the upstream share, and a proxy's CPU per request shows in req/s.
	"sidecar": {Name: "sidecar", Proxy: cpuProxy, Upstream: cpuProxy, Load: cpuLoad,
		About: "proxy and upstream share CPU " + cpuProxy + "; wrk/h2load alone on CPU " + cpuLoad},
	// The proxy alone on its core, the upstream beside the load generator: CPU 1 is
	// the bottleneck for the faster proxies, which then all look close to nginx.
	"split": {Name: "split", Proxy: cpuProxy, Upstream: cpuLoad, Load: cpuLoad,
		About: "proxy alone on CPU " + cpuProxy + "; upstream and wrk/h2load share CPU " + cpuLoad},
}

const wellKnownBody = `{"m.homeserver":{"base_url":"https://bench.local/"}}`

// The CORS headers every target sets on /_matrix/ and well-known answers.
var corsHeaders = [][2]string{
	{"Access-Control-Allow-Origin", "*"},
	{"Access-Control-Allow-Methods", "GET, HEAD, POST, PUT, DELETE, OPTIONS"},
	{"Access-Control-Allow-Headers", "X-Requested-With, Content-Type, Authorization"},
	{"Access-Control-Expose-Headers", "Retry-After"},
}

// target is one thing measured: the upstream directly or a proxy in front of it.
type target struct {
	name    string
	plain   string // host:port
	tls     string // host:port, "" when not served
	h2      bool   // TLS listener offers h2
	up      int    // upstream port this target forwards to
	version string
	dir     string // its own temp prefix
	start   func(t *target) (*proc, error)
	proc    *proc // the measured process (tree)
	extra   *proc // mxedge's TLS instance
}

// procFor is the process that serves t's plain or TLS listener (nil for direct).
func (t *target) procFor(tlsOn bool) *proc {
	if tlsOn && t.extra != nil {
		return t.extra
	}
	return t.proc
}

// url is the address of path on t. TLS URLs name localhost (127.0.0.1 in /etc/hosts,
// a name of the harness's certificate) because wrk's OpenSSL sends the URL's host as
// SNI even when it is an IP literal (RFC 6066 forbids that), and a server may refuse a
// handshake for an IP name; every client sends a DNS name in real use.
func (t *target) url(tlsOn bool, path string) string {
	if tlsOn {
		return "https://localhost:" + port(t.tls) + path
	}
	return "http://" + t.plain + path
}

// env is what every target needs from the harness.
type env struct {
	root   string // temp root
	bin    string // bench/bin with upstream, goproxy
	mxedge string // path to bin/mxedge, "" if not measured
	// mxedgeBase is a second mxedge binary measured as target mxedge-base, "" if none.
	mxedgeBase string
	cert       string
	key        string
	combined   string
	upstream   *proc
	lay        layout // the current layout
}

// setLayout moves the running upstream to l's core (the proxies never move).
func (e *env) setLayout(l layout) error {
	e.lay = l
	if e.upstream == nil || e.upstream.exited() {
		return nil
	}
	if err := setAffinity(e.upstream.pid(), l.Upstream); err != nil {
		return err
	}
	if got := affinity(e.upstream.pid()); got != l.Upstream {
		return fmt.Errorf("upstream runs on CPUs %q after the move, want %q", got, l.Upstream)
	}
	return nil
}

func (e *env) startUpstream() error {
	var ls []string
	for p := portUpstream; p <= portUpstream+7; p++ {
		ls = append(ls, fmt.Sprintf("127.0.0.1:%d", p))
	}
	cpu := e.lay.Upstream
	if cpu == "" {
		cpu = cpuLoad
	}
	p, err := startProc("upstream", cpu, filepath.Join(e.root, "upstream.log"), nil,
		filepath.Join(e.bin, "upstream"), "-listen", strings.Join(ls, ","))
	if err != nil {
		return err
	}
	e.upstream = p
	return waitReady(p, fmt.Sprintf("http://127.0.0.1:%d/health", portUpstream), 200)
}

func output(name string, args ...string) string {
	b, err := exec.Command(name, args...).CombinedOutput()
	if err != nil && len(b) == 0 {
		return "not found"
	}
	s := strings.TrimSpace(string(b))
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// targets builds the list; names filters it (empty = all available).
func (e *env) targets(names []string) ([]*target, error) {
	all := []*target{
		{name: "direct", plain: fmt.Sprintf("127.0.0.1:%d", portUpstream), up: portUpstream, version: "bench/upstream (Go net/http)"},
		{name: "goproxy", up: portUpstream + 2, plain: "127.0.0.1:18010", tls: "127.0.0.1:18011", h2: true, start: e.startGoproxy,
			version: "bench/goproxy: httputil.ReverseProxy, " + output("go", "env", "GOVERSION")},
		{name: "nginx", up: portUpstream + 3, plain: "127.0.0.1:18020", tls: "127.0.0.1:18021", h2: true, start: e.startNginx,
			version: strings.TrimPrefix(output("nginx", "-v"), "nginx version: ")},
		{name: "haproxy", up: portUpstream + 4, plain: "127.0.0.1:18030", tls: "127.0.0.1:18031", h2: true, start: e.startHAProxy,
			version: output("haproxy", "-v")},
		{name: "caddy", up: portUpstream + 5, plain: "127.0.0.1:18040", tls: "127.0.0.1:18041", h2: true, start: e.startCaddy,
			version: "caddy " + output("caddy", "version")},
		{name: "mxedge", up: portUpstream + 6, plain: "127.0.0.1:18050", tls: "127.0.0.1:18051", h2: true, start: e.startMxedge,
			version: output(e.mxedgeOrTrue(), "version")},
	}
	// A second mxedge binary (-mxedge-base, e.g. the commit before a change), measured
	// interleaved with the first: a before/after comparison that the machine's drift
	// touches far less than two runs minutes apart.
	if e.mxedgeBase != "" {
		all = append(all, &target{name: "mxedge-base", up: portUpstream + 7, plain: "127.0.0.1:18060", tls: "127.0.0.1:18061", h2: true,
			start: e.startMxedge, version: output(e.mxedgeBase, "version") + " at " + e.mxedgeBase})
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	var out []*target
	for _, t := range all {
		if len(want) > 0 && !want[t.name] {
			continue
		}
		if t.name == "mxedge" && e.mxedge == "" {
			continue
		}
		t.dir = filepath.Join(e.root, t.name)
		if err := os.MkdirAll(t.dir, 0o755); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

func (e *env) mxedgeOrTrue() string {
	if e.mxedge == "" {
		return "true"
	}
	return e.mxedge
}

// startTarget starts t (direct has no process of its own) and waits until it serves.
func (e *env) startTarget(t *target) error {
	if t.start == nil {
		return nil
	}
	p, err := t.start(t)
	if err != nil {
		return err
	}
	t.proc = p
	if err := waitReady(p, t.url(false, "/_matrix/client/versions"), 200); err != nil {
		return err
	}
	if t.tls != "" {
		if t.extra != nil {
			p = t.extra
		}
		if err := waitReady(p, t.url(true, "/_matrix/client/versions"), 200); err != nil {
			return err
		}
	}
	return nil
}

func (e *env) stopTarget(t *target) {
	if t.proc != nil {
		t.proc.stop()
		t.proc = nil
	}
	if t.extra != nil {
		t.extra.stop()
		t.extra = nil
	}
}

// pid is the process whose tree is measured: the proxy, or the upstream for direct.
func (e *env) pid(t *target) int { return e.pidFor(t, false) }

// pidFor is the process serving t's plain or TLS listener (mxedge runs one of each).
func (e *env) pidFor(t *target, tlsOn bool) int {
	if p := t.procFor(tlsOn); p != nil {
		return p.pid()
	}
	return e.upstream.pid()
}

var insecure = &http.Client{
	Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
	Timeout:   2 * time.Second,
}

// waitReady polls url until it answers want (no sleeps to synchronise beyond the poll).
func waitReady(p *proc, url string, want int) error {
	deadline := time.Now().Add(20 * time.Second)
	var last error
	for time.Now().Before(deadline) {
		if p.exited() {
			return fmt.Errorf("%s exited: %v\n%s", p.name, p.err, p.tail())
		}
		res, err := insecure.Get(url)
		if err == nil {
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode == want {
				return nil
			}
			last = fmt.Errorf("%s: status %d", url, res.StatusCode)
		} else {
			last = err
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready: %v\n%s", p.name, last, p.tail())
}

func portFree(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return true
	}
	c.Close()
	return false
}

func port(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

func write(path, s string) error { return os.WriteFile(path, []byte(s), 0o644) }

func (e *env) startGoproxy(t *target) (*proc, error) {
	return startProc(t.name, cpuProxy, filepath.Join(t.dir, "log"), nil, filepath.Join(e.bin, "goproxy"),
		"-listen", t.plain, "-listen-tls", t.tls, "-cert", e.cert, "-key", e.key,
		"-upstream", fmt.Sprintf("http://127.0.0.1:%d", t.up))
}

func nginxCORS(indent string) string {
	var b strings.Builder
	for _, h := range corsHeaders {
		fmt.Fprintf(&b, "%sadd_header %s \"%s\" always;\n", indent, h[0], h[1])
	}
	return b.String()
}

func (e *env) startNginx(t *target) (*proc, error) {
	var hide strings.Builder
	for _, h := range corsHeaders {
		fmt.Fprintf(&hide, "            proxy_hide_header %s;\n", h[0])
	}
	conf := fmt.Sprintf(`# generated by bench/harness: production-style, one worker for the one pinned core.
daemon off;
master_process on;
worker_processes 1;
worker_rlimit_nofile 20000;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events {
    worker_connections 21000;  # slots, not descriptors (those stop at the 20,000 hard limit)
}
http {
    access_log off;  # access logs off for the benchmark
    client_body_temp_path %[1]s/client_body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 120s;
    keepalive_requests 100000;  # h2load does not reconnect after nginx's GOAWAY at the default 1,000
    server_tokens off;

    upstream synapse {
        server 127.0.0.1:%[2]d;
        keepalive 256;
        keepalive_requests 100000;
        keepalive_timeout 120s;
    }
    server {
        listen %[3]s backlog=4096;
        listen %[4]s ssl http2 backlog=4096;
        server_name bench.local;
        ssl_certificate %[5]s;
        ssl_certificate_key %[6]s;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:SSL:10m;
        ssl_session_timeout 1h;
        client_max_body_size 128m;

        location = /.well-known/matrix/client {
            default_type application/json;
%[7]s            add_header Cache-Control "public, max-age=3600" always;
            return 200 '%[8]s';
        }
        location /_matrix/ {
            if ($request_method = OPTIONS) {
%[9]s                add_header Access-Control-Max-Age 86400 always;
                return 204;
            }
            proxy_pass http://synapse;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_read_timeout 600s;
            proxy_send_timeout 600s;
%[10]s%[7]s        }
    }
}
`, t.dir, t.up, t.plain, t.tls, e.cert, e.key, nginxCORS("            "), wellKnownBody,
		nginxCORS("                "), hide.String())
	cf := filepath.Join(t.dir, "nginx.conf")
	if err := write(cf, conf); err != nil {
		return nil, err
	}
	return startProc(t.name, cpuProxy, filepath.Join(t.dir, "log"), nil,
		"nginx", "-p", t.dir, "-c", cf, "-e", filepath.Join(t.dir, "error.log"))
}

func (e *env) startHAProxy(t *target) (*proc, error) {
	var ret, set strings.Builder
	for _, h := range corsHeaders {
		fmt.Fprintf(&ret, " hdr %s \"%s\"", h[0], h[1])
		fmt.Fprintf(&set, "    http-response set-header %s \"%s\"\n", h[0], h[1])
	}
	conf := fmt.Sprintf(`# generated by bench/harness: production-style, one thread for the one pinned core.
global
    nbthread 1
    maxconn 9950
    ssl-default-bind-options ssl-min-ver TLSv1.2
    tune.ssl.cachesize 20000
    # no log line: access logs off for the benchmark

defaults
    mode http
    option http-keep-alive
    http-reuse safe
    timeout connect 5s
    timeout client 180s
    timeout server 600s
    timeout http-request 10s
    timeout http-keep-alive 120s

frontend matrix
    bind %[1]s
    bind %[2]s ssl crt %[3]s alpn h2,http/1.1
    http-request return status 200 content-type application/json string '%[4]s'%[5]s hdr Cache-Control "public, max-age=3600" if { path /.well-known/matrix/client }
    http-request return status 204%[5]s hdr Access-Control-Max-Age 86400 if METH_OPTIONS { path_beg /_matrix/ }
    http-request set-header X-Forwarded-For %%[src]
    http-request set-header X-Forwarded-Proto https if { ssl_fc }
    http-request set-header X-Forwarded-Proto http if !{ ssl_fc }
%[6]s    default_backend synapse

backend synapse
    server synapse 127.0.0.1:%[7]d
`, t.plain, t.tls, e.combined, wellKnownBody, ret.String(), set.String(), t.up)
	cf := filepath.Join(t.dir, "haproxy.cfg")
	if err := write(cf, conf); err != nil {
		return nil, err
	}
	return startProc(t.name, cpuProxy, filepath.Join(t.dir, "log"), nil, "haproxy", "-db", "-f", cf)
}

func (e *env) startCaddy(t *target) (*proc, error) {
	var hdr, down strings.Builder
	for _, h := range corsHeaders {
		fmt.Fprintf(&hdr, "\t\theader %s \"%s\"\n", h[0], h[1])
		fmt.Fprintf(&down, "\t\t\theader_down %s \"%s\"\n", h[0], h[1])
	}
	conf := fmt.Sprintf(`# generated by bench/harness: production-style; Caddy logs no access lines unless told.
{
	admin off
	auto_https off
	storage file_system %[1]s/data
	servers {
		protocols h1 h2
	}
}
(matrix) {
	bind 127.0.0.1
	@wk path /.well-known/matrix/client
	handle @wk {
%[2]s		header Content-Type application/json
		header Cache-Control "public, max-age=3600"
		respond `+"`%[3]s`"+` 200
	}
	@preflight {
		method OPTIONS
		path /_matrix/*
	}
	handle @preflight {
%[2]s		header Access-Control-Max-Age 86400
		respond 204
	}
	handle /_matrix/* {
		reverse_proxy 127.0.0.1:%[4]d {
%[5]s			transport http {
				keepalive 120s
				keepalive_idle_conns 1024
				keepalive_idle_conns_per_host 1024
			}
		}
	}
}
http://:%[6]s {
	import matrix
}
https://:%[7]s {
	tls %[8]s %[9]s
	import matrix
}
`, t.dir, hdr.String(), wellKnownBody, t.up, down.String(), port(t.plain), port(t.tls), e.cert, e.key)
	cf := filepath.Join(t.dir, "Caddyfile")
	if err := write(cf, conf); err != nil {
		return nil, err
	}
	envv := []string{"HOME=" + t.dir, "XDG_DATA_HOME=" + t.dir + "/data", "XDG_CONFIG_HOME=" + t.dir + "/config"}
	return startProc(t.name, cpuProxy, filepath.Join(t.dir, "log"), envv,
		"caddy", "run", "--config", cf, "--adapter", "caddyfile")
}

// startMxedge starts two instances: plain (tls.mode off) on t.plain, whose tree is the
// one measured, and one with tls.mode files on t.tls (with TLS on, mxedge's plain
// listener only redirects, so one process cannot serve both for the benchmark).
func (e *env) startMxedge(t *target) (*proc, error) {
	bin := e.mxedge
	if t.name == "mxedge-base" {
		bin = e.mxedgeBase
	}
	// Its other listeners follow the plain port: ops +2; with TLS, the redirect +3, ops +4.
	base := mustPort(t.plain)
	common := fmt.Sprintf(`# generated by bench/harness
server_name: bench.local
upstream: http://127.0.0.1:%[1]d
public_baseurl: https://bench.local/
cors:
  allow_origins: ["*"]
limits:
  max_body_size: 128M
log:
  level: warn
  format: json
  access: false   # access logs off for the benchmark
rate_limits:
  enabled: false  # throughput runs measure forwarding, not the limiter
`, t.up)
	plain := common + fmt.Sprintf(`listen:
  http: "%s"
  ops: "127.0.0.1:%d"
`, t.plain, base+2)
	withTLS := common + fmt.Sprintf(`listen:
  http: "127.0.0.1:%[5]d"
  https: "%[1]s"
  ops: "127.0.0.1:%[6]d"
tls:
  mode: files
  domains: [bench.local, localhost]
  cert_file: %[2]s
  key_file: %[3]s
  storage: %[4]s/storage
  hsts: 0
`, t.tls, e.cert, e.key, t.dir, base+3, base+4)
	cf := filepath.Join(t.dir, "mxedge.yaml")
	ct := filepath.Join(t.dir, "mxedge-tls.yaml")
	if err := write(cf, plain); err != nil {
		return nil, err
	}
	if err := write(ct, withTLS); err != nil {
		return nil, err
	}
	if t.tls != "" {
		p, err := startProc(t.name+"-tls", cpuProxy, filepath.Join(t.dir, "log-tls"), nil, bin, "run", "--config", ct)
		if err != nil {
			return nil, err
		}
		t.extra = p
	}
	return startProc(t.name, cpuProxy, filepath.Join(t.dir, "log"), nil, bin, "run", "--config", cf)
}
