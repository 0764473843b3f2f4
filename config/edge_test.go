package config

import (
	"strings"
	"testing"

	"github.com/mxedge/mxedge/testkit"
)

const pools = "upstreams: {homeserver: {members: [\"http://127.0.0.1:8008\"]}, mas: {members: [\"http://127.0.0.1:8080\"]}, lk: {members: [\"http://127.0.0.1:8081\"]}, sfu: {members: [\"http://127.0.0.1:7880\"]}, web: {members: [\"unix:/run/web.sock\"]}}\n"

func TestEdgeRules(t *testing.T) {
	tests := []struct {
		name, yaml, wantKey, wantMsg string
	}{
		{"pools ok", pools, "", ""},
		{"upstream and homeserver pool", "upstream: http://10.0.0.1:8008\n" + pools, "upstream", "keep one"},
		{"pool name", "upstreams: {Home: {members: [\"http://a:1\"]}}\n", "upstreams.Home", "pool names"},
		{"no members", "upstreams: {x: {members: []}}\n", "upstreams.x.members", "at least one"},
		{"member path", "upstreams: {x: {members: [\"http://a:1/p\"]}}\n", "upstreams.x.members[0]", "path"},
		{"member scheme", "upstreams: {x: {members: [\"ftp://a\"]}}\n", "upstreams.x.members[0]", "http://host"},
		{"member dup", "upstreams: {x: {members: [\"http://a:80\", \"http://a\"]}}\n", "upstreams.x.members[1]", "duplicate"},
		{"balance", "upstreams: {x: {members: [\"http://a:1\"], balance: random}}\n", "upstreams.x.balance", "least_conn"},
		{"health path", "upstreams: {x: {members: [\"http://a:1\"], health: {path: health}}}\n", "upstreams.x.health.path", "starting with /"},
		{"health interval without path", "upstreams: {x: {members: [\"http://a:1\"], health: {interval: 1s}}}\n", "upstreams.x.health", "need a path"},
		{"queue without cap", "upstreams: {x: {members: [\"http://a:1\"], queue_timeout: 1s}}\n", "upstreams.x.max_connections", "need max_connections"},
		{"ca file", "upstreams: {x: {members: [\"https://a:1\"], tls: {ca_file: /nonexistent.pem}}}\n", "upstreams.x.tls.ca_file", "cannot read"},
		{"mas ok", pools + "mas: {upstream: mas, public_base: \"https://auth.example.org/\"}\n", "", ""},
		{"mas unknown pool", pools + "mas: {upstream: auth, public_base: \"https://auth.example.org/\"}\n", "mas.upstream", "names no pool"},
		{"mas no base", pools + "mas: {upstream: mas}\n", "mas.public_base", "required"},
		{"mas base path", pools + "mas: {upstream: mas, public_base: \"https://auth.example.org/auth/\"}\n", "mas.public_base", "without path"},
		{"mas base on matrix host", "public_baseurl: https://matrix.example.org/\n" + pools + "mas: {upstream: mas, public_base: \"https://matrix.example.org/\"}\n", "mas.public_base", "host of its own"},
		{"mas well-known conflict", pools + "mas: {upstream: mas, public_base: \"https://auth.example.org/\"}\nwell_known: {client: {org.matrix.msc2965.authentication: {issuer: x}}}\n", "well_known.client.org.matrix.msc2965.authentication", "mas fills it"},
		{"rtc ok", pools + "rtc: {jwt_upstream: lk, sfu_upstream: sfu}\n", "", ""},
		{"rtc no sfu", pools + "rtc: {jwt_upstream: lk}\n", "rtc.sfu_upstream", "required"},
		{"rtc url path", "public_baseurl: https://matrix.example.org/\n" + pools + "rtc: {jwt_upstream: lk, sfu_upstream: sfu, livekit_service_url: \"https://matrix.example.org/jwt\"}\n", "rtc.livekit_service_url", "/livekit/jwt"},
		{"route ok", pools + "routes: [{host: element.example.org, upstream: web}, {path_prefix: /admin/, upstream: web, strip_prefix: true, cors: matrix, rate_limit: rc_login.address}]\n", "", ""},
		{"route unknown pool", pools + "routes: [{host: element.example.org, upstream: nope}]\n", "routes[0].upstream", "names no pool"},
		{"route nothing", pools + "routes: [{upstream: web}]\n", "routes[0]", "needs a host"},
		{"route overlaps matrix", pools + "routes: [{path_prefix: /_matrix/client/, upstream: web}]\n", "routes[0].path_prefix", "overlaps"},
		{"route covers matrix", pools + "routes: [{path_prefix: /, upstream: web}]\n", "routes[0].path_prefix", "overlaps"},
		{"route on livekit", pools + "rtc: {jwt_upstream: lk, sfu_upstream: sfu}\nroutes: [{path_prefix: /livekit, upstream: web}]\n", "routes[0].path_prefix", "overlaps"},
		{"route matrix host", "public_baseurl: https://matrix.example.org/\n" + pools + "routes: [{host: matrix.example.org, upstream: web}]\n", "routes[0].host", "shadow"},
		{"route other host any path", "public_baseurl: https://matrix.example.org/\n" + pools + "routes: [{host: element.example.org, path_prefix: /_matrix, upstream: web}]\n", "", ""},
		{"route cors", pools + "routes: [{host: e.example.org, upstream: web, cors: both}]\n", "routes[0].cors", "matrix or upstream"},
		{"route rate limit", pools + "routes: [{host: e.example.org, upstream: web, rate_limit: rc_nope}]\n", "routes[0].rate_limit", "rc_* category"},
		{"route strip without prefix", pools + "routes: [{host: e.example.org, upstream: web, strip_prefix: true}]\n", "routes[0].strip_prefix", "path_prefix"},
		{"route duplicate", pools + "routes: [{host: e.example.org, upstream: web}, {host: E.example.org, upstream: web}]\n", "routes[1]", "same requests"},
		{"route host not in tls.domains", pools + "tls: {mode: files, cert_file: /c, key_file: /k, domains: [example.org]}\nroutes: [{host: e.example.org, upstream: web}]\n", "routes[0].host", "tls.domains"},
		{"extra prefix exposes synapse mas", "forward: {extra_prefixes: [/_synapse/]}\n", "forward.extra_prefixes[0]", "never public"},
		{"extra prefix names synapse mas", "forward: {extra_prefixes: [/_synapse/mas/]}\n", "forward.extra_prefixes[0]", "never public"},
		{"extra prefix another synapse path", "forward: {extra_prefixes: [/_synapse/custom/]}\n", "", ""},
		{"federation off with listener", "federation: {enabled: false}\ntls: {mode: files, cert_file: /c, key_file: /k}\nlisten: {federation: \":8448\"}\n", "listen.federation", "federation.enabled false"},
		{"federation off with delegation", "federation: {enabled: false}\nwell_known: {server: \"matrix.example.org:443\"}\n", "well_known.server", "federation.enabled false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testkit.TempFile(t, "c.yaml", base+tt.yaml)
			c, err := Load(LoadOptions{Path: p})
			if tt.wantKey == "" {
				if err != nil {
					t.Fatalf("got %v, want nil", err)
				}
				return
			}
			probs := problemsOf(t, err)
			found := false
			for _, pr := range probs {
				if pr.Key == tt.wantKey && strings.Contains(pr.Msg, tt.wantMsg) {
					found = true
				}
			}
			if !found {
				t.Errorf("got %v, want %s: …%s…", probs, tt.wantKey, tt.wantMsg)
			}
			_ = c
		})
	}
}

func TestEdgeParsed(t *testing.T) {
	p := testkit.TempFile(t, "c.yaml", base+"public_baseurl: https://matrix.example.org/\n"+pools+
		"mas: {upstream: mas, public_base: \"https://Auth.example.org\"}\nrtc: {jwt_upstream: lk, sfu_upstream: sfu}\n"+
		"routes: [{host: Element.Example.org, upstream: web}, {path_prefix: /admin/, upstream: web, strip_prefix: true}]\n")
	c, err := Load(LoadOptions{Path: p})
	if err != nil {
		t.Fatal(err)
	}
	if c.MASHost() != "auth.example.org" || c.MASAccountURL() != "https://Auth.example.org/account/" || !c.MASCompatLogin() {
		t.Errorf("mas: host %q account %q compat %v", c.MASHost(), c.MASAccountURL(), c.MASCompatLogin())
	}
	if c.RTCServiceURL() != "https://matrix.example.org/livekit/jwt" {
		t.Errorf("rtc url %q", c.RTCServiceURL())
	}
	r := c.EdgeRoutes()
	if len(r) != 2 || r[0].Host != "element.example.org" || r[1].PathPrefix != "/admin" || !r[1].StripPrefix {
		t.Errorf("routes %+v", r)
	}
	want := []string{"matrix.example.org", "example.org", "auth.example.org", "element.example.org"}
	if got := c.TLSDomains(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("TLSDomains %v, want %v", got, want)
	}
	if names := []string{}; len(c.Pools()) != 5 {
		t.Errorf("pools %v", names)
	}
	hs := c.Pool("homeserver")
	if hs == nil || hs.Members[0].Addr != "127.0.0.1:8008" || hs.Balance != BalanceRoundRobin || hs.MaxFails != 1 {
		t.Errorf("homeserver pool %+v", hs)
	}
	if web := c.Pool("web"); web.Members[0].Network != "unix" || web.Members[0].Host != "localhost" {
		t.Errorf("web pool %+v", web)
	}
	if rc := rcCategoryNames(); !rc["rc_login.address"] || !rc["rc_message"] || rc["rc_login"] || rc["rc_federation"] {
		t.Errorf("category names %v", rc)
	}
}

func TestTLSCovers(t *testing.T) {
	names := []string{"example.org", "*.example.org"}
	for host, want := range map[string]bool{"example.org": true, "e.example.org": true, "a.b.example.org": false, "example.com": false} {
		if got := tlsCovers(names, host); got != want {
			t.Errorf("tlsCovers(%q) = %v, want %v", host, got, want)
		}
	}
}
