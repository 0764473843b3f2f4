package proxy

// Class is a request's route class: a small fixed set used for metrics labels,
// timeouts and body limits. Random paths never create a new class.
type Class uint8

// The route classes. ClassNames gives their label values.
const (
	ClassOther         Class = iota // forwarded through forward.extra_prefixes
	ClassClient                     // other /_matrix/client/ requests
	ClassSync                       // /sync, /events, /initialSync: long-polls
	ClassSend                       // sending events: send, redact
	ClassState                      // state events
	ClassLogin                      // /login, /logout
	ClassRegister                   // /register and its sub-endpoints
	ClassMediaUpload                // media upload and create
	ClassMediaDownload              // media download and thumbnails (authenticated and legacy)
	ClassMedia                      // other media (config, preview_url)
	ClassFederation                 // /_matrix/federation/ and /_matrix/key/
	ClassWellKnown                  // /.well-known/matrix/*
	ClassAdmin                      // /_synapse/admin/ (gated)
	ClassSynapseClient              // /_synapse/client/
	ClassPreflight                  // OPTIONS answered by mxedge
	ClassRefused                    // not forwarded: 404/400 without touching the upstream
	ClassMAS                        // MAS's own host (mas.public_base)
	ClassRTC                        // MatrixRTC: lk-jwt-service and the LiveKit SFU (/livekit/)
	ClassRoute                      // an extra route (routes[])
	NumClasses
)

// ClassNames are the metric label values of the classes, indexed by Class.
var ClassNames = [NumClasses]string{
	"other", "client", "sync", "send", "state", "login", "register",
	"media_upload", "media_download", "media", "federation", "well_known",
	"admin", "synapse_client", "preflight", "refused", "mas", "rtc", "route",
}

// String returns the class's label value.
func (c Class) String() string { return ClassNames[c] }
