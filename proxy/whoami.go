package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/mxedge/mxedge/config"
	"github.com/mxedge/mxedge/h1"
	"github.com/mxedge/mxedge/ratelimit"
	"github.com/mxedge/mxedge/workers"
)

// maxWhoAmIBody bounds a whoami answer read by the resolver.
const maxWhoAmIBody = 16 << 10

// newResolver makes the token-to-user resolver of cfg, asking whoami on the
// homeserver pool in service at the time of each question.
func (s *Server) newResolver(cfg *config.Config) *workers.Resolver {
	rc := cfg.Workers.Resolver
	return workers.NewResolver(s.whoami, workers.ResolverOptions{
		TTL: rc.CacheTTL.D(), InvalidTTL: rc.InvalidTTL.D(), Timeout: rc.Timeout.D(), MaxEntries: rc.MaxEntries,
	})
}

// whoami asks the homeserver pool who token belongs to
// (GET /_matrix/client/v3/account/whoami). The token never reaches a log.
func (s *Server) whoami(ctx context.Context, token string) (string, bool, error) {
	pool := s.snap.Load().table.pools[0]
	m, err := pool.Acquire(ctx)
	if err != nil {
		return "", false, err
	}
	req := h1.Request{
		Method: http.MethodGet, Path: "/_matrix/client/v3/account/whoami", Host: m.Endpoint().Host,
		Header: http.Header{"Authorization": {"Bearer " + token}},
	}
	res, err := m.Conns().RoundTrip(ctx, &req)
	if err != nil {
		pool.Release(m, err)
		return "", false, err
	}
	defer res.Close()
	body, err := io.ReadAll(io.LimitReader(res, maxWhoAmIBody))
	pool.Release(m, err)
	switch {
	case err != nil:
		return "", false, err
	case res.Status == http.StatusUnauthorized || res.Status == http.StatusForbidden:
		return "", false, nil
	case res.Status != http.StatusOK:
		return "", false, fmt.Errorf("whoami answered %d", res.Status)
	}
	var doc struct {
		UserID string `json:"user_id"`
	}
	if err := json.Unmarshal(body, &doc); err != nil || doc.UserID == "" {
		return "", false, errors.New("whoami answered no user_id")
	}
	return doc.UserID, true, nil
}

// resolveUser finds the balancing key and the user of rq's access token, when
// the route balances by user or is rate limited (so that limits keyed by user
// are). Without a resolver the key is the token's hash. Requests neither
// balanced by user nor rate limited never wait for the resolver.
func (s *Server) resolveUser(r *http.Request, rq *request) {
	limited := rq.route.Limits != 0 && s.limiter != nil && !rq.snap.noRateLimit
	if rq.route.By != workers.KeyUser && (!limited || rq.snap.resolver == nil) {
		return
	}
	token := ratelimit.AccessToken(r)
	if token == "" {
		return
	}
	if rq.snap.resolver == nil {
		rq.userKey = workers.Hash(token)
		return
	}
	key, res, user := rq.snap.resolver.User(r.Context(), token)
	rq.userKey = key
	if res == workers.Resolved {
		rq.user = user
	}
}
