package proxy

import "time"

// Observer receives the per-request figures that metrics are made of. The
// metrics package implements it; class indexes ClassNames. Implementations must
// be safe for concurrent use and cheap: they run on every request.
type Observer interface {
	Begin(class int)
	End(class int, method string, code int, d time.Duration, in, out int64)
	Upstream(class int, d time.Duration, errKind string)
	TunnelOpened()
	TunnelClosed(d time.Duration)
}

type nopObserver struct{}

func (nopObserver) Begin(int)                                         {}
func (nopObserver) End(int, string, int, time.Duration, int64, int64) {}
func (nopObserver) Upstream(int, time.Duration, string)               {}
func (nopObserver) TunnelOpened()                                     {}
func (nopObserver) TunnelClosed(time.Duration)                        {}
