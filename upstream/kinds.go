package upstream

import "github.com/mxedge/mxedge/h1"

// Failure kinds counted per member (mxedge_upstream_failures_total{kind}).
const (
	kindNone = iota
	kindRefused
	kindReset
	kindTimeout
	kindProtocol
	kindOther
	kindClient // the client's fault: not counted against the member
	numKinds
)

var kindNames = [numKinds]string{"", "refused", "reset", "timeout", "protocol", "other", "client"}

func kindOf(err error) int {
	switch h1.Kind(err) {
	case "":
		return kindNone
	case "refused":
		return kindRefused
	case "reset":
		return kindReset
	case "timeout":
		return kindTimeout
	case "protocol":
		return kindProtocol
	case "client", "canceled":
		return kindClient
	}
	return kindOther
}
