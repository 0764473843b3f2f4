package ratelimit

import (
	"fmt"
	"math/bits"
	"strings"
)

// Category is one rate-limit category, named after Synapse's rc_* option (or an
// admin-defined rule). The route table in proxy/routes.go says which categories a
// request falls into; the limiter never matches paths for them itself (admin
// rules excepted).
type Category uint8

// The built-in categories, one per rc_* limiter an edge can observe.
// docs/RATELIMITS.md says which paths fall in each and how each is keyed.
const (
	Message                   Category = iota // rc_message: per token
	Registration                              // rc_registration: per IP, counted on successful registration only
	RegistrationTokenValidity                 // rc_registration_token_validity: per IP
	LoginAddress                              // rc_login.address: per IP
	LoginAccount                              // rc_login.account: per target account (login body)
	LoginFailedAttempts                       // rc_login.failed_attempts: per target account, fed by upstream 401/403
	JoinsLocal                                // rc_joins.local: per token (applied to every join: see docs)
	InvitesPerIssuer                          // rc_invites.per_issuer: per token
	InvitesPerUser                            // rc_invites.per_user: per invitee (invite body)
	ThreePIDValidation                        // rc_3pid_validation: per IP
	MediaCreate                               // rc_media_create: per token
	RoomCreation                              // rc_room_creation: per token
	Reports                                   // rc_reports: per token
	UserDirectory                             // rc_user_directory: per token
	PresencePerUser                           // rc_presence.per_user: per token
	DelayedEventMgmt                          // rc_delayed_event_mgmt: per token (IP if unauthenticated)
	InvitesPerRoom                            // rc_invites.per_room: per room (room id in the path)
	JoinsPerRoom                              // rc_joins_per_room: per room (room id in the path; not for alias joins)
	MASAddress                                // mas_address: every request to MAS's host, per IP (not a Synapse option)
	numBuiltin
)

// NumBuiltin is the number of built-in categories; admin rules use the
// categories from NumBuiltin upwards (see Decision.Rule).
const NumBuiltin = int(numBuiltin)

var categoryNames = [numBuiltin]string{
	Message:                   "rc_message",
	Registration:              "rc_registration",
	RegistrationTokenValidity: "rc_registration_token_validity",
	LoginAddress:              "rc_login.address",
	LoginAccount:              "rc_login.account",
	LoginFailedAttempts:       "rc_login.failed_attempts",
	JoinsLocal:                "rc_joins.local",
	InvitesPerIssuer:          "rc_invites.per_issuer",
	InvitesPerUser:            "rc_invites.per_user",
	ThreePIDValidation:        "rc_3pid_validation",
	MediaCreate:               "rc_media_create",
	RoomCreation:              "rc_room_creation",
	Reports:                   "rc_reports",
	UserDirectory:             "rc_user_directory",
	PresencePerUser:           "rc_presence.per_user",
	DelayedEventMgmt:          "rc_delayed_event_mgmt",
	InvitesPerRoom:            "rc_invites.per_room",
	JoinsPerRoom:              "rc_joins_per_room",
	MASAddress:                "mas_address",
}

// String returns the Synapse option name of a built-in category
// ("rc_login.address"), or "rule" for an admin rule category.
func (c Category) String() string {
	if c < numBuiltin {
		return categoryNames[c]
	}
	return "rule"
}

// CategoryByName returns the built-in category named name (as String returns it).
func CategoryByName(name string) (Category, bool) {
	for i, n := range categoryNames {
		if n == name {
			return Category(i), true
		}
	}
	return 0, false
}

// Categories is a set of categories, one bit each. The zero value is the empty set.
type Categories uint32

// Of returns the set holding cs.
func Of(cs ...Category) Categories {
	var s Categories
	for _, c := range cs {
		s |= 1 << c
	}
	return s
}

// Has reports whether c is in s.
func (s Categories) Has(c Category) bool { return s&(1<<c) != 0 }

// Len returns the number of categories in s.
func (s Categories) Len() int { return bits.OnesCount32(uint32(s)) }

// Names returns the String names of the categories in s, in category order.
func (s Categories) Names() []string {
	var out []string
	for v := uint32(s); v != 0; v &= v - 1 {
		out = append(out, Category(bits.TrailingZeros32(v)).String())
	}
	return out
}

// String returns the names of s joined by "+", or "none".
func (s Categories) String() string {
	if s == 0 {
		return "none"
	}
	return strings.Join(s.Names(), "+")
}

// ParseCategories returns the set named by names (String names of built-in
// categories). It is meant for tests and tables, not the request path.
func ParseCategories(names []string) (Categories, error) {
	var s Categories
	for _, n := range names {
		c, ok := CategoryByName(n)
		if !ok {
			return 0, fmt.Errorf("unknown rate-limit category %q", n)
		}
		s |= 1 << c
	}
	return s, nil
}
