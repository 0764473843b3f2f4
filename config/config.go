package config

import (
	"net/url"
)

// Config is the whole mxedge configuration: one YAML file, flags and MXEDGE_*
// environment variables. The zero value is not usable; start from Defaults.
// A Config is read-only once Load has returned it and is safe to share.
type Config struct {
	// ServerName is the Matrix server name (the part after ':' in user IDs). Required.
	ServerName string `yaml:"server_name"`
	// Upstream is the homeserver: an http:// or https:// URL, or unix:/path/to.sock.
	// Default http://127.0.0.1:8008. The short form of upstreams.homeserver
	// with this one member.
	Upstream string `yaml:"upstream"`
	// Upstreams are named pools of upstream members. The pool "homeserver"
	// is where Matrix traffic goes (default: upstream as its one member).
	Upstreams map[string]Upstream `yaml:"upstreams"`
	// PublicBaseURL is the client-facing base URL advertised in
	// /.well-known/matrix/client. Default https://<server_name>/.
	PublicBaseURL string `yaml:"public_baseurl"`
	// Listen holds the listener addresses.
	Listen Listen `yaml:"listen"`
	// WellKnown holds the documents served under /.well-known/matrix/.
	WellKnown WellKnown `yaml:"well_known"`
	// CORS holds the cross-origin policy for /_matrix/ and /.well-known/matrix/.
	CORS CORS `yaml:"cors"`
	// TrustedProxies are CIDRs or bare addresses whose X-Forwarded-*/Forwarded
	// headers are believed. Like every list of addresses, IPv4-mapped IPv6 is
	// unmapped ("::ffff:10.0.0.0/104" is 10.0.0.0/8) and host bits are masked.
	// Default none: the socket peer is the client.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// AdminAPI gates /_synapse/admin/.
	AdminAPI AdminAPI `yaml:"admin_api"`
	// MAS configures the Matrix Authentication Service (issue: front a real deployment).
	MAS MAS `yaml:"mas"`
	// RTC configures MatrixRTC: lk-jwt-service and the LiveKit SFU.
	RTC RTC `yaml:"rtc"`
	// Routes are extra routing rules to pools (Element Web, admin UIs),
	// checked before the Matrix table.
	Routes []Route `yaml:"routes"`
	// Federation says whether the homeserver federates.
	Federation Federation `yaml:"federation"`
	// Workers routes requests to Synapse's workers by Synapse's rules.
	Workers Workers `yaml:"workers"`
	// Forward lists what is forwarded besides the Matrix prefixes.
	Forward Forward `yaml:"forward"`
	// Limits bounds request sizes.
	Limits Limits `yaml:"limits"`
	// Timeouts bounds slow clients and upstreams.
	Timeouts Timeouts `yaml:"timeouts"`
	// Log selects the log level and format.
	Log Log `yaml:"log"`
	// TLS selects how certificates are obtained (issue: TLS at the edge).
	TLS TLS `yaml:"tls"`
	// RateLimits holds the rc_* limiters (issue: rate limiting).
	RateLimits RateLimits `yaml:"rate_limits"`

	// File is the path the configuration was read from; empty without a file.
	File string `yaml:"-"`

	// Where values came from, filled by Load for Validate's messages: the
	// file line of every key, and the flag or variable that set a key.
	lines   map[string]int
	sources map[string]string

	// Parsed forms, filled once by Validate (see parsed.go).
	upstreamURL    *url.URL
	upstreamSocket string
	publicBaseURL  *url.URL
	pools          []*PoolSpec
	edge           edgeForms
	masAdmin       Prefixes
	trustedProxies Prefixes
	adminAllow     Prefixes
	corsOrigins    Origins
}

// Listen holds listener addresses ("host:port"; empty = not served).
type Listen struct {
	// HTTP is the plain HTTP listener. Default ":8080". With TLS on it only answers
	// ACME HTTP-01 challenges and redirects to https.
	HTTP string `yaml:"http"`
	// HTTPS is the TLS listener for clients. Default ":443"; used only when tls.mode is not off.
	HTTPS string `yaml:"https"`
	// Federation is the TLS listener for federation (usually ":8448"). Default empty: not served.
	Federation string `yaml:"federation"`
	// Ops serves /healthz, /readyz and /metrics. Default "127.0.0.1:9100". Never public by default.
	Ops string `yaml:"ops"`
}

// WellKnown holds the documents served under /.well-known/matrix/.
type WellKnown struct {
	// Client holds extra keys merged into {"m.homeserver":{"base_url":…}}. Default none.
	Client map[string]any `yaml:"client"`
	// Server is "host[:port]" for /.well-known/matrix/server. Default empty: 404.
	Server string `yaml:"server"`
	// Support is the MSC1929 document for /.well-known/matrix/support. Default null: 404.
	Support map[string]any `yaml:"support,omitempty"`
}

// CORS is the cross-origin policy.
type CORS struct {
	// AllowOrigins is ["*"] (default) or a list of origins ("https://app.example.org",
	// "http://localhost:3000"), normalised as browsers send them: any case, and
	// the default port and a trailing "/" may be written or not; no other path.
	AllowOrigins []string `yaml:"allow_origins"`
}

// AdminAPI gates the homeserver's admin API.
type AdminAPI struct {
	// AllowFrom are CIDRs or bare addresses, read like TrustedProxies, matched
	// against the socket peer (never a forwarding header), that may reach
	// /_synapse/admin/. Default ["127.0.0.1/32", "::1/128"]. Empty = closed to all.
	AllowFrom []string `yaml:"allow_from"`
}

// Forward lists what is forwarded besides /_matrix/, /_synapse/client/ and the gated /_synapse/admin/.
type Forward struct {
	// ExtraPrefixes are path prefixes also forwarded (e.g. "/" for a server's own pages). Default none.
	ExtraPrefixes []string `yaml:"extra_prefixes"`
	// AllowUnderscoresInHeaders forwards request header names containing '_'
	// (nginx's underscores_in_headers). Default false: they are dropped, since
	// servers that read '_' as '-' would see them as other headers. Even when
	// true, a name that reads as a header mxedge sets or strips
	// (X_Forwarded_For, Transfer_Encoding) is dropped.
	AllowUnderscoresInHeaders bool `yaml:"allow_underscores_in_headers"`
}

// Limits bounds request sizes. Sizes accept K, M, G suffixes (1024-based, as Synapse reads them).
type Limits struct {
	// MaxHeaderBytes bounds the request line plus headers. Default 32K. Above: 431 JSON.
	MaxHeaderBytes Size `yaml:"max_header_bytes"`
	// MaxBodySize bounds media uploads, federation and anything not a client JSON request. Default 50M.
	MaxBodySize Size `yaml:"max_body_size"`
	// MaxJSONBodySize bounds other client-server request bodies. Default 10M.
	MaxJSONBodySize Size `yaml:"max_json_body_size"`
}

// Timeouts bounds slow clients and upstreams. Durations are Go durations ("10s", "2m"); 0 = none.
type Timeouts struct {
	// ReadHeader bounds reading the request line and headers. Default 10s.
	ReadHeader Duration `yaml:"read_header"`
	// Idle bounds an idle keep-alive connection. Default 120s.
	Idle Duration `yaml:"idle"`
	// UpstreamResponseHeader bounds the wait for the upstream's response headers. Default 0 (none).
	// Never applied to long-poll routes (sync, events, initialSync) nor to media downloads.
	UpstreamResponseHeader Duration `yaml:"upstream_response_header"`
	// ReadBodyIdle aborts an upload that stops moving this long. Default 60s.
	ReadBodyIdle Duration `yaml:"read_body_idle"`
	// WriteIdle drops a client that stops reading this long. Default 60s.
	WriteIdle Duration `yaml:"write_idle"`
	// Shutdown bounds the drain of in-flight requests on SIGTERM. Default 60s.
	Shutdown Duration `yaml:"shutdown"`
	// UpstreamIdle is how long an idle upstream connection is kept for reuse.
	// Default 30s: below the keep-alive of common upstreams (nginx 75s), so
	// that mxedge, not the upstream, closes it. Set it below the upstream's
	// own keep-alive timeout (Node.js and Apache: 5s).
	UpstreamIdle Duration `yaml:"upstream_idle"`
	// WebSocketIdle closes a WebSocket tunnel (routes with websocket, the
	// LiveKit SFU) when neither side sent a byte this long. Default 5m.
	WebSocketIdle Duration `yaml:"websocket_idle"`
}

// Log selects logging.
type Log struct {
	// Level is debug, info (default), warn or error.
	Level string `yaml:"level"`
	// Format is json (default) or text.
	Format string `yaml:"format"`
	// Access logs one line per request. Default true.
	Access bool `yaml:"access"`
}
