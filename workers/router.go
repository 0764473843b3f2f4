package workers

import (
	"fmt"
	"slices"
)

// Roles are the worker roles mxedge routes to, in Synapse's vocabulary: the
// worker groups of docs/workers.md and the stream writers by their stream
// names. "main" is the main process, where everything else goes.
var Roles = [...]string{
	"synchrotron", "initial_synchrotron", "client_reader", "event_creator",
	"federation_inbound", "federation_reader", "media_repository",
	"events", "typing", "to_device", "account_data", "receipts", "presence", "push_rules", "device_lists",
}

// Main is the main process's role.
const Main = "main"

// Target is where a rule sends requests.
type Target struct {
	Role string // a Roles entry, or Main
	Pool string // the pool configured for Role ("" for Main: the caller's homeserver pool)
	Key  Key    // the balancing key
	// Strict: when the pool has no member available the request fails
	// rather than falling back to the main process (the media repository,
	// which the main process stops serving once a media worker runs, and
	// SSO, whose logins must stay on one process).
	Strict bool
}

// Key is a rule's balancing key, compiled from its "by" (Rule.By).
type Key uint8

// Balancing keys, as Rule.By names them (ByPool, ByUser, …).
const (
	KeyPool   Key = iota // the pool's own balancing
	KeyUser              // the user behind the access token, else the token
	KeyRoom              // the room in the path
	KeyOrigin            // the origin server of an X-Matrix Authorization header
	KeyOne               // always the same member
)

var keyNames = [...]string{KeyPool: ByPool, KeyUser: ByUser, KeyRoom: ByRoom, KeyOrigin: ByOrigin, KeyOne: ByOne}

// String returns the key as synapse.yaml names it ("" for the pool's own).
func (k Key) String() string { return keyNames[k] }

// keyOf compiles a Rule.By.
func keyOf(by string) (Key, bool) {
	for k, name := range keyNames {
		if name == by {
			return Key(k), true
		}
	}
	return 0, false
}

// Router classifies requests by Synapse's worker rules. Built once per
// configuration; safe for concurrent use.
type Router struct {
	root    node
	targets []Target // by rule priority
	Table   *Table
}

// NewRouter compiles t for the roles configured in pools (role → pool
// name). Rules of roles that are not configured are left out, so a request
// they would have taken goes to the next rule that matches, or to main.
// initial_synchrotron takes no rule of its own: Initial reports the syncs it
// takes.
func NewRouter(t *Table, pools map[string]string) (*Router, error) {
	for role := range pools {
		if !slices.Contains(Roles[:], role) {
			return nil, fmt.Errorf("workers: unknown role %q", role)
		}
	}
	r := &Router{Table: t}
	for i, rule := range t.Rules {
		if rule.Role != Main && !slices.Contains(Roles[:], rule.Role) {
			return nil, fmt.Errorf("workers: rule %d (%s): unknown role %q", i, rule.Section, rule.Role)
		}
		key, ok := keyOf(rule.By)
		if !ok {
			return nil, fmt.Errorf("workers: rule %d (%s): unknown key %q", i, rule.Section, rule.By)
		}
		getOnly := false
		switch {
		case len(rule.Methods) == 0:
		case len(rule.Methods) == 1 && rule.Methods[0] == "GET":
			getOnly = true
		default:
			return nil, fmt.Errorf("workers: rule %d (%s): methods must be [GET] or none", i, rule.Section)
		}
		pool, configured := pools[rule.Role]
		if rule.Role != Main && !configured {
			continue
		}
		prio := len(r.targets)
		r.targets = append(r.targets, Target{
			Role: rule.Role, Pool: pool, Key: key,
			Strict: rule.Role == "media_repository" || key == KeyOne,
		})
		for _, p := range rule.Patterns {
			paths, err := expand(p.Path)
			if err != nil {
				return nil, fmt.Errorf("workers: rule %d (%s): %w", i, rule.Section, err)
			}
			for _, path := range paths {
				if err := r.root.add(path, end{prio: prio, getOnly: getOnly}); err != nil {
					return nil, fmt.Errorf("workers: rule %d (%s): %w", i, rule.Section, err)
				}
			}
		}
	}
	return r, nil
}

// Route returns where a request of method for the raw path goes, as an
// index in Targets; ok is false when no rule of a configured role matches
// (the main process). It allocates nothing.
func (r *Router) Route(method, raw string) (i int, ok bool) {
	var buf [maxSegs]string
	prio := r.root.match(splitPath(raw, &buf), method == "GET" || method == "HEAD")
	return prio, prio >= 0
}

// Targets returns the compiled targets in priority order (for `mxedge routes`).
func (r *Router) Targets() []Target { return r.targets }
