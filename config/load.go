package config

import (
	"fmt"
	"net"
	"os"
	"strings"
)

// Overrides are values given on the command line; they override the file.
// An empty field is not given.
type Overrides struct {
	ServerName    string // --server-name → server_name
	Upstream      string // --upstream → upstream
	PublicBaseURL string // --public-baseurl → public_baseurl
	ListenHTTP    string // --listen → listen.http
	ListenOps     string // --listen-ops → listen.ops
	LogLevel      string // --log-level → log.level
	LogFormat     string // --log-format → log.format
}

// each calls f for every override with its value, key, flag name and setter.
func (o Overrides) each(f func(value, key, flag string, set func(c *Config))) {
	f(o.ServerName, "server_name", "--server-name", func(c *Config) { c.ServerName = o.ServerName })
	f(o.Upstream, "upstream", "--upstream", func(c *Config) { c.Upstream = o.Upstream })
	f(o.PublicBaseURL, "public_baseurl", "--public-baseurl", func(c *Config) { c.PublicBaseURL = o.PublicBaseURL })
	f(o.ListenHTTP, "listen.http", "--listen", func(c *Config) { c.Listen.HTTP = o.ListenHTTP })
	f(o.ListenOps, "listen.ops", "--listen-ops", func(c *Config) { c.Listen.Ops = o.ListenOps })
	f(o.LogLevel, "log.level", "--log-level", func(c *Config) { c.Log.Level = o.LogLevel })
	f(o.LogFormat, "log.format", "--log-format", func(c *Config) { c.Log.Format = o.LogFormat })
}

// LoadOptions says where Load reads from. The zero value loads defaults only
// (and fails validation: server_name is required).
type LoadOptions struct {
	// Path is the YAML file. Empty: MXEDGE_CONFIG; both empty: no file.
	Path string
	// Getenv reads MXEDGE_* variables (os.Getenv in main). Nil: none.
	Getenv func(string) string
	// Flags are command-line values; they override the file.
	Flags Overrides
}

// Load builds a Config: Defaults, then MXEDGE_* environment variables, then
// the file, then flags (each overriding the previous), then fills
// public_baseurl from server_name when unset and validates. Every problem
// (unknown or misspelt keys, wrong types, invalid values) is reported at
// once as an *Error whose Problems carry file, line and full key; a problem
// with a value from a flag or variable names it instead. An empty file, or
// keys it omits, leave the defaults. A file that cannot be read is a plain
// error. The returned Config is read-only and safe to share.
func Load(o LoadOptions) (*Config, error) {
	getenv := o.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	path := o.Path
	if path == "" {
		path = getenv(EnvConfig)
	}
	var data []byte
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return nil, fmt.Errorf("read config: %w", err)
		}
	}
	return load(data, path, getenv, o.Flags)
}

// load is Load on file content already read (data nil: no file).
func load(data []byte, path string, getenv func(string) string, flags Overrides) (*Config, error) {
	c := Defaults()
	sources := map[string]string{}
	for _, v := range EnvVars() {
		if v.set == nil {
			continue
		}
		if val := getenv(v.Name); val != "" {
			v.set(c, val)
			sources[v.Key] = "environment variable " + v.Name
		}
	}
	p := &problems{file: path, lines: map[string]int{}}
	if len(data) > 0 {
		decodeFile(data, c, p)
	}
	for k := range sources {
		if _, inFile := p.lines[k]; inFile {
			delete(sources, k) // the file overrides the environment
		}
	}
	flags.each(func(value, key, flag string, set func(*Config)) {
		if value != "" {
			set(c)
			sources[key] = "flag " + flag
		}
	})
	if c.PublicBaseURL == "" && c.ServerName != "" && CheckServerName(c.ServerName) == nil {
		c.PublicBaseURL = DefaultPublicBaseURL(c.ServerName)
		sources["public_baseurl"] = "the default from server_name"
	}
	c.File = path
	c.lines = p.lines
	c.sources = sources
	p.sources = sources
	if !p.bad[""] { // the file as a whole is unreadable: validating it says nothing
		c.validate(p)
	}
	if err := p.err(); err != nil {
		return nil, err
	}
	return c, nil
}

// DefaultPublicBaseURL returns the default public_baseurl for a server name:
// https://<host>/, the port dropped (a server name's port is for federation).
func DefaultPublicBaseURL(serverName string) string {
	host := serverName
	if h, _, err := net.SplitHostPort(serverName); err == nil {
		host = h
		if strings.Contains(h, ":") {
			host = "[" + h + "]"
		}
	}
	return "https://" + host + "/"
}
