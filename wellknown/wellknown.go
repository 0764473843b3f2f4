package wellknown

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/mxedge/mxedge/config"
)

// Paths of the documents the Handler serves.
const (
	ClientPath  = "/.well-known/matrix/client"
	ServerPath  = "/.well-known/matrix/server"
	SupportPath = "/.well-known/matrix/support"
)

// CacheControl is the Cache-Control value of every document: one hour, shareable. Matrix readers
// honour it (servers cache /server for 24 h by default, 48 h at most, when no header is sent); an
// hour keeps a changed delegation visible within the hour without re-fetching on every request.
const CacheControl = "public, max-age=3600"

// Prebuilt header values, assigned (never appended to) on every response. They are shared across
// responses: nothing may mutate them.
var (
	hdrJSON  = []string{"application/json"}
	hdrCache = []string{CacheControl}
	hdrAllow = []string{"GET, HEAD"}
)

// Options holds the Handler's dependencies.
type Options struct {
	// Error writes a Matrix JSON error ({"errcode","error"}) with the given status. Required: the
	// proxy injects its one error writer.
	Error func(w http.ResponseWriter, r *http.Request, status int, errcode, msg string)
}

// Handler serves the /.well-known/matrix/ documents. It is immutable after New and safe for
// concurrent use; on a configuration reload build a new Handler. The zero value is not usable.
type Handler struct {
	client, server, support document
	errorf                  func(w http.ResponseWriter, r *http.Request, status int, errcode, msg string)
}

// document is one serialised document; body == nil means not configured (404).
type document struct {
	body   []byte
	length []string // Content-Length header value
}

// New validates the well_known section of c and serialises the three documents once; c must have
// been validated (config.Load or Config.Validate), which parses public_baseurl. Errors name the
// configuration keys at fault. c is only read.
func New(c *config.Config, o Options) (*Handler, error) {
	if c == nil {
		return nil, errors.New("wellknown: nil config")
	}
	if o.Error == nil {
		return nil, errors.New("wellknown: Options.Error is required")
	}
	if err := c.ValidateWellKnown(); err != nil {
		return nil, fmt.Errorf("wellknown: %w", err)
	}
	base, err := baseURL(c)
	if err != nil {
		return nil, fmt.Errorf("wellknown: %w", err)
	}
	h := &Handler{errorf: o.Error}

	client := make(map[string]any, len(c.WellKnown.Client)+1)
	for k, v := range c.WellKnown.Client {
		client[k] = v
	}
	client["m.homeserver"] = map[string]any{"base_url": base}
	if b := c.MASPublicBase(); b != nil {
		// MSC2965: where clients find MAS (issuer) and its account page.
		client["org.matrix.msc2965.authentication"] = map[string]any{"issuer": b.String(), "account": c.MASAccountURL()}
	}
	if u := c.RTCServiceURL(); u != "" {
		// MSC4143: the LiveKit focus, for clients that read it here (Element
		// X, Element Web, Element Call before 0.24).
		client["org.matrix.msc4143.rtc_foci"] = []any{map[string]any{"type": "livekit", "livekit_service_url": u}}
	}
	if h.client, err = serialise(client); err != nil {
		return nil, fmt.Errorf("wellknown: well_known.client: %w", err)
	}
	if s := c.WellKnown.Server; s != "" {
		if h.server, err = serialise(map[string]any{"m.server": s}); err != nil {
			return nil, fmt.Errorf("wellknown: well_known.server: %w", err)
		}
	}
	if c.WellKnown.Support != nil {
		if h.support, err = serialise(c.WellKnown.Support); err != nil {
			return nil, fmt.Errorf("wellknown: well_known.support: %w", err)
		}
	}
	return h, nil
}

// baseURL returns the m.homeserver base_url: public_baseurl as config parsed it
// (Config.PublicBaseURLParsed) without trailing slashes, as in the spec's examples
// ("https://matrix.example.org"; clients strip a trailing slash anyway).
func baseURL(c *config.Config) (string, error) {
	u := c.PublicBaseURLParsed()
	if u == nil {
		return "", errors.New("public_baseurl: not parsed: build the Handler from a Config that config.Load or Config.Validate accepted")
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// serialise encodes v as compact JSON with sorted keys, '<', '>' and '&' left as they are.
func serialise(v any) (document, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return document{}, err
	}
	body := bytes.TrimSuffix(b.Bytes(), []byte("\n"))
	return document{body: body, length: []string{strconv.Itoa(len(body))}}, nil
}

// ServeHTTP answers GET and HEAD for ClientPath, ServerPath and SupportPath (r.URL.Path, exact).
// HEAD gets the GET headers without a body. Other paths and unconfigured documents get 404
// M_NOT_FOUND; other methods 405 M_UNRECOGNIZED with Allow: GET, HEAD. It allocates nothing
// beyond what w and the error writer do.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var d *document
	switch r.URL.Path {
	case ClientPath:
		d = &h.client
	case ServerPath:
		d = &h.server
	case SupportPath:
		d = &h.support
	}
	if d == nil || d.body == nil {
		h.errorf(w, r, http.StatusNotFound, "M_NOT_FOUND", "no such well-known document")
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header()["Allow"] = hdrAllow
		h.errorf(w, r, http.StatusMethodNotAllowed, "M_UNRECOGNIZED", "method not allowed")
		return
	}
	hd := w.Header()
	hd["Content-Type"] = hdrJSON
	hd["Cache-Control"] = hdrCache
	hd["Content-Length"] = d.length
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(d.body)
	}
}
