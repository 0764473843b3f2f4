package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/mxedge/mxedge/config"
	"github.com/mxedge/mxedge/workers"
)

// routeTable is what `mxedge routes` prints: where each request of a
// configuration goes, in the order the proxy checks (proxy/table.go): the
// routes before the Matrix table, then Synapse's worker rules for requests
// bound for the homeserver, then the default.
type routeTable struct {
	Config   string `json:"config"`
	Synapse  string `json:"synapse"` // version of workers/synapse.yaml
	Commit   string `json:"commit"`
	Resolver bool   `json:"resolver"` // workers.resolver.enabled
	// First are the routes checked before the Matrix table, in order.
	First []edgeRow `json:"first"`
	// Workers are the compiled worker rules in priority order; empty when no
	// role is configured.
	Workers []workerRow `json:"workers"`
	// Default is where the rest goes.
	Default []edgeRow `json:"default"`
}

// edgeRow is one route that is not a worker rule.
type edgeRow struct {
	Match     string `json:"match"`
	Pool      string `json:"pool"`                 // "" answered by mxedge
	Strip     string `json:"strip,omitempty"`      // prefix removed before forwarding
	CORS      string `json:"cors,omitempty"`       // matrix (mxedge's) or upstream (untouched)
	RateLimit string `json:"rate_limit,omitempty"` // rc_* category
	WebSocket bool   `json:"websocket,omitempty"`
	Note      string `json:"note,omitempty"`
}

// workerRow is one compiled worker rule.
type workerRow struct {
	Rule     int    `json:"rule"` // priority, from 1
	Role     string `json:"role"`
	Pool     string `json:"pool"`
	By       string `json:"by"`       // user, token, room, origin, one, or the pool's balance
	GetOnly  bool   `json:"get_only"` // GET and HEAD only
	Fallback string `json:"fallback"` // main, "none: 502", or "-" for main itself
	Section  string `json:"section"`
	// Paths are the rule's patterns as written in synapse.yaml.
	Paths []string `json:"paths"`
	// When qualifies the paths (initial_synchrotron: which syncs).
	When []string `json:"when,omitempty"`
}

// runRoutes is `mxedge routes --config FILE [--json]`: print the effective
// routing table of a configuration.
func runRoutes(args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var o config.LoadOptions
	var asJSON bool
	err := parseFlags("routes", args, &o.Path, &o.Flags, stdout, func(fs *flag.FlagSet) {
		fs.BoolVar(&asJSON, "json", false, "print the table as JSON")
	})
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	c, err := loadReported("routes", o, getenv, stderr)
	if err != nil {
		return err
	}
	t, err := buildRouteTable(c)
	if err != nil {
		return &cliError{code: exitFailure, err: err}
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(t)
	}
	writeRouteTable(stdout, t)
	return nil
}

// buildRouteTable compiles c's worker rules as the proxy does
// (workers.NewRouter) and lists the other routes in proxy/table.go's order.
func buildRouteTable(c *config.Config) (*routeTable, error) {
	data, err := workers.Synapse()
	if err != nil {
		return nil, err
	}
	name := c.File
	if name == "" {
		name = "configuration"
	}
	t := &routeTable{Config: name, Synapse: data.Synapse, Commit: data.Commit, Resolver: c.Workers.Resolver.Enabled}
	balance := func(pool string) string {
		if p := c.Pool(pool); p != nil {
			return p.Balance
		}
		return "?"
	}

	// Routes checked before the Matrix table.
	if c.MASEnabled() {
		host := c.MASHost()
		t.First = append(t.First,
			edgeRow{Match: "host " + host + " /api/admin/**", Pool: c.MAS.Upstream, CORS: "upstream", RateLimit: "mas_address", Note: "MAS admin API, gated by mas.admin_api.allow_from"},
			edgeRow{Match: "host " + host, Pool: c.MAS.Upstream, CORS: "upstream", RateLimit: "mas_address", Note: "MAS's own host, whole"})
	}
	routes := c.EdgeRoutes()
	for _, r := range routes {
		if r.Host != "" {
			t.First = append(t.First, edgeRouteRow(r))
		}
	}
	for _, p := range c.Forward.ExtraPrefixes {
		t.First = append(t.First, edgeRow{Match: "path " + p, Pool: config.HomeserverPool, CORS: "upstream", Note: "forward.extra_prefixes"})
	}
	if c.RTCEnabled() {
		t.First = append(t.First,
			edgeRow{Match: "path " + config.RTCJWTPrefix + "/", Pool: c.RTC.JWTUpstream, Strip: config.RTCJWTPrefix, CORS: "upstream", Note: "lk-jwt-service (rtc.jwt_upstream)"},
			edgeRow{Match: "path " + config.RTCSFUPrefix + "/", Pool: c.RTC.SFUUpstream, Strip: config.RTCSFUPrefix, CORS: "upstream", WebSocket: true, Note: "LiveKit SFU (rtc.sfu_upstream)"})
	}
	for _, r := range routes {
		if r.Host == "" {
			t.First = append(t.First, edgeRouteRow(r))
		}
	}
	if c.MASCompatLogin() {
		t.First = append(t.First, edgeRow{Match: "/_matrix/client/*/{login,logout,refresh}{,/**}", Pool: c.MAS.Upstream, CORS: "matrix", RateLimit: "rc_login (POST /login)", Note: "MAS compat login (mas.compat_login)"})
	}

	// Synapse's worker rules, for the requests still bound for the homeserver.
	if roles := c.WorkerRoles(); len(roles) > 0 {
		router, err := workers.NewRouter(data, roles)
		if err != nil {
			return nil, err
		}
		rules := make([]workers.Rule, 0, len(data.Rules))
		for _, r := range data.Rules {
			if _, ok := roles[r.Role]; ok || r.Role == workers.Main {
				rules = append(rules, r)
			}
		}
		targets := router.Targets()
		if len(targets) != len(rules) {
			return nil, fmt.Errorf("routes: %d compiled targets for %d rules", len(targets), len(rules))
		}
		for i, tg := range targets {
			rule := rules[i]
			if rule.Role != tg.Role {
				return nil, fmt.Errorf("routes: target %d is %s, rule %s", i, tg.Role, rule.Role)
			}
			row := workerRow{Rule: i + 1, Role: tg.Role, Pool: tg.Pool, GetOnly: len(rule.Methods) == 1 && rule.Methods[0] == "GET", Section: rule.Section}
			for _, p := range rule.Patterns {
				row.Paths = append(row.Paths, p.Path)
			}
			switch {
			case tg.Role == workers.Main:
				row.Pool, row.Fallback = config.HomeserverPool, "-"
			case tg.Strict:
				row.Fallback = "none: 502"
			default:
				row.Fallback = workers.Main
			}
			row.By = byName(tg.Key, t.Resolver, balance(row.Pool))
			t.Workers = append(t.Workers, row)
			if pool, ok := roles["initial_synchrotron"]; ok && tg.Role == "synchrotron" {
				init := row
				init.Role, init.Pool, init.By = "initial_synchrotron", pool, byName(tg.Key, t.Resolver, balance(pool))
				init.Section = "mxedge: the initial syncs among rule " + fmt.Sprint(row.Rule) + "'s requests (workers.Initial)"
				init.Paths, init.When = nil, nil
				for _, p := range row.Paths {
					init.Paths = append(init.Paths, p)
					init.When = append(init.When, initialWhen(p))
				}
				t.Workers = append(t.Workers, init)
			}
		}
	}

	// The rest: the Matrix table's own gates.
	hs := config.HomeserverPool
	fed := edgeRow{Match: "/_matrix/federation/**, /_matrix/key/**", Pool: hs, CORS: "matrix", Note: "federation"}
	if !c.FederationEnabled() {
		fed.Pool, fed.Note = "", "refused 404 (federation.enabled: false), except /_matrix/federation/v1/openid/userinfo → "+hs
	}
	t.Default = []edgeRow{
		{Match: "/_matrix/**", Pool: hs, CORS: "matrix", RateLimit: "rc_* by endpoint", Note: "the main process"},
		fed,
		{Match: "/_synapse/client/**", Pool: hs, CORS: "upstream", Note: "the main process"},
		{Match: "/_synapse/admin/**", Pool: hs, CORS: "upstream", Note: "gated by admin_api.allow_from"},
		{Match: "/.well-known/matrix/**", CORS: "matrix", Note: "answered by mxedge"},
		{Match: "anything else", Note: "404"},
	}
	return t, nil
}

// edgeRouteRow describes a routes[] entry.
func edgeRouteRow(r config.EdgeRoute) edgeRow {
	var match []string
	if r.Host != "" {
		match = append(match, "host "+r.Host)
	}
	if r.PathPrefix != "" {
		match = append(match, "path "+r.PathPrefix+"/")
	}
	row := edgeRow{Match: strings.Join(match, " "), Pool: r.Pool, CORS: "upstream", RateLimit: r.RateLimit, WebSocket: r.WebSocket, Note: "routes"}
	if r.StripPrefix {
		row.Strip = r.PathPrefix
	}
	if r.MatrixCORS {
		row.CORS = "matrix"
	}
	return row
}

// byName names a balancing key: the pool's own balance when the rule has
// none, and "token" for user when no resolver finds users.
func byName(key workers.Key, resolver bool, balance string) string {
	switch key {
	case workers.KeyPool:
		return balance
	case workers.KeyUser:
		if !resolver {
			return "token"
		}
	}
	return key.String()
}

// initialWhen says which requests of a synchrotron path are initial syncs
// (as workers.Initial decides).
func initialWhen(path string) string {
	switch {
	case strings.HasSuffix(path, "initialSync"):
		return "always"
	case strings.Contains(path, "simplified_msc3575"):
		return "without pos"
	case strings.HasSuffix(path, "/sync"):
		return "without since, or full_state=true"
	case strings.HasSuffix(path, "/events"):
		return "without from"
	}
	return "never"
}

// writeRouteTable prints t as text: a header, then one line per route and
// per path pattern, in plain columns (each line stands alone for grep).
func writeRouteTable(w io.Writer, t *routeTable) {
	fmt.Fprintf(w, "mxedge routes: %s\n", t.Config)
	fmt.Fprintf(w, "synapse worker rules: %s (commit %s), workers/synapse.yaml\n", t.Synapse, t.Commit)
	if t.Resolver {
		fmt.Fprintln(w, "resolver: on (by user: the user behind the access token, from /account/whoami, cached)")
	} else {
		fmt.Fprintln(w, "resolver: off (by token: the access token's hash, one device rather than one user)")
	}

	edge := func(rows []edgeRow) {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "MATCH\tPOOL\tSTRIP\tCORS\tRATE_LIMIT\tWEBSOCKET\tNOTE")
		for _, r := range rows {
			ws := "no"
			if r.WebSocket {
				ws = "yes"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Match, dash(r.Pool), dash(r.Strip), dash(r.CORS), dash(r.RateLimit), ws, r.Note)
		}
		tw.Flush()
	}

	fmt.Fprintln(w, "\nchecked first, in this order:")
	if len(t.First) == 0 {
		fmt.Fprintln(w, "none (no mas, rtc, routes or forward.extra_prefixes)")
	} else {
		edge(t.First)
	}

	fmt.Fprintln(w, "\nworker rules, for the Matrix requests bound for homeserver; first match wins:")
	if len(t.Workers) == 0 {
		fmt.Fprintln(w, "none: no worker role configured (workers:), every Matrix request goes to homeserver")
	} else {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "RULE\tROLE\tPOOL\tBY\tMETHODS\tFALLBACK\tPATH")
		for _, r := range t.Workers {
			methods := "any"
			if r.GetOnly {
				methods = "GET"
			}
			for i, p := range r.Paths {
				if r.When != nil {
					p += " (" + r.When[i] + ")"
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Rule, r.Role, r.Pool, r.By, methods, r.Fallback, p)
			}
		}
		tw.Flush()
	}

	fmt.Fprintln(w, "\nthe rest:")
	edge(t.Default)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
