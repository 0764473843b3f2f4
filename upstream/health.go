package upstream

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/mxedge/mxedge/h1"
)

// checkHealth probes every member each interval until ctx is done: a GET of
// health.path answered 2xx or 3xx within health.timeout makes the member up
// (and lifts a passive ejection); anything else makes it down. The pool owns
// the goroutine: close stops it.
func (p *Pool) checkHealth(ctx context.Context) {
	defer p.checking.Done()
	t := time.NewTicker(p.spec.Interval)
	defer t.Stop()
	for {
		var wg sync.WaitGroup
		for _, m := range p.members {
			wg.Add(1)
			go func() {
				defer wg.Done()
				m.probe(ctx)
			}()
		}
		wg.Wait()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// probe checks the member once and records the result.
func (m *Member) probe(ctx context.Context) {
	p := m.pool
	ctx, cancel := context.WithTimeout(ctx, p.spec.Timeout)
	defer cancel()
	req := &h1.Request{Method: http.MethodGet, Path: p.spec.HealthPath, Host: m.ep.Host, Header: http.Header{}, HeaderTimeout: p.spec.Timeout}
	res, err := m.conns.RoundTrip(ctx, req)
	ok := false
	if err == nil {
		ok = res.Status >= 200 && res.Status < 400
		res.WriteBody(discard{})
		res.Close()
	}
	if ctx.Err() != nil && ctx.Err() != context.DeadlineExceeded {
		return // stopping
	}
	was := m.up.Swap(ok)
	if ok {
		m.ejectedUntil.Store(0)
		m.fails.Store(0)
	}
	if was != ok {
		if ok {
			p.log.Info("upstream member healthy", "member", m.ep.URL)
		} else {
			status := 0
			if res != nil {
				status = res.Status
			}
			p.log.Warn("upstream member unhealthy", "member", m.ep.URL, "status", status, "error", errString(err))
		}
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// discard is a body sink for health answers.
type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
func (discard) FlushError() error           { return nil }
