package ratelimit

// Category is one rate-limit category, named after Synapse's rc_* option (or an
// admin-defined rule). The route table in proxy/routes.go says which categories a
// request falls into; the limiter never matches paths itself.
type Category uint8

// The built-in categories, one per rc_* limiter an edge can observe.
const (
	Message                   Category = iota // rc_message: per token
	Registration                              // rc_registration: per IP
	RegistrationTokenValidity                 // rc_registration_token_validity: per IP
	LoginAddress                              // rc_login.address: per IP
	LoginAccount                              // rc_login.account: per target account (login body)
	LoginFailedAttempts                       // rc_login.failed_attempts: per target account, fed by upstream 401/403
	JoinsLocal                                // rc_joins.local: per token
	InvitesPerIssuer                          // rc_invites.per_issuer: per token
	InvitesPerUser                            // rc_invites.per_user: per invitee (body) — see docs
	ThreePIDValidation                        // rc_3pid_validation: per IP
	MediaCreate                               // rc_media_create: per token
	RoomCreation                              // rc_room_creation: per token
	Reports                                   // rc_reports: per token
	UserDirectory                             // rc_user_directory: per token
	PresencePerUser                           // rc_presence.per_user: per token
	DelayedEventMgmt                          // rc_delayed_event_mgmt: per token (IP if unauthenticated)
	numBuiltin
)

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
