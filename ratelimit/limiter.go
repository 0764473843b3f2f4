package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mxedge/mxedge/config"
)

// probeEvery is how often a failing shared store is tried again.
const probeEvery = time.Second

// Options are the Limiter's dependencies.
type Options struct {
	// Logger receives warnings (unenforced options, store failures). Default: discard.
	Logger *slog.Logger
	// Registerer receives the mxedge_ratelimit_* metrics. Default: none registered.
	Registerer prometheus.Registerer
	// Now is the clock (monotonic readings expected). Default time.Now.
	Now func() time.Time
	// Store is the shared store, required when cfg.Store is "redis"
	// (redisstore.New); ignored with "memory". The Limiter closes it.
	Store Store
}

// Decision is the answer to one request, returned by Check (the zero value
// is a refusal without a status: never build one by hand). The proxy keeps it
// until the upstream answered and passes it to Done.
type Decision struct {
	// Allowed tells whether the request may go on.
	Allowed bool
	// Status is the answer for a refused request: 429 (limited) or 503
	// (shared store failing with on_error: deny). 0 when Allowed.
	Status int
	// RetryAfter is how long the client must wait: exact from the bucket for a
	// 429 (use RetryAfterMillis and RetryAfterHeader), one second for a 503.
	RetryAfter time.Duration
	// Category is the category that refused (the one with the longest wait).
	Category Category
	// Rule is the admin rule's name when Category >= NumBuiltin, else "".
	Rule string

	acct    string   // login target account, when rc_login.failed_attempts applies
	regAddr [16]byte // client bucket address, when rc_registration applies
	flags   uint8
}

const (
	flagFailed = 1 << iota // Done feeds rc_login.failed_attempts on 401/403
	flagReg                // Done feeds rc_registration on 200
)

// outcomes of mxedge_ratelimit_decisions_total.
const (
	outAllowed = iota
	outLimited
	outExempt
	outFailOpen    // store failing, on_error: allow
	outUnavailable // store failing, on_error: deny
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"allowed", "limited", "exempt", "fail_open", "unavailable"}

// Limiter decides requests against the configured limits. Build it with New;
// it is safe for concurrent use; Close stops it.
type Limiter struct {
	log    *slog.Logger
	now    func() time.Time
	base   time.Time
	mem    *Memory
	remote Store

	mu sync.Mutex // serialises Commit
	st atomic.Pointer[state]

	down    atomic.Bool
	probeAt atomic.Int64

	decisions   *prometheus.CounterVec
	builtinCtr  [numBuiltin][numOutcomes]prometheus.Counter
	storeErrors prometheus.Counter
	fallback    prometheus.Gauge
}

// state is one compiled configuration; a reload's Commit swaps it atomically.
type state struct {
	cfg     config.RateLimits
	limits  [numBuiltin]Limit
	exempt  config.Prefixes
	as      map[string]appservice // by as_token
	rules   []rule
	ipv6    int
	onError string
	ctr     [][numOutcomes]prometheus.Counter // by category: built-ins, then rules
}

type appservice struct {
	rateLimited bool
	sender      string // key of the appservice's own user
}

// New builds a Limiter for cfg, the rate_limits section of a Config that
// config.Load or Config.Validate accepted: exempt addresses, rule paths and
// appservice registrations are taken parsed from it (ExemptPrefixes,
// RulePaths, Appservices), and a section whose lists were never validated
// is refused. With cfg.Store "redis", o.Store must be the shared store.
func New(cfg config.RateLimits, o Options) (*Limiter, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	injectedNow := o.Now
	if o.Now == nil {
		o.Now = time.Now
	}
	l := &Limiter{log: o.Logger, now: o.Now, base: o.Now()}
	switch cfg.Store {
	case config.RateLimitStoreRedis:
		if o.Store == nil {
			return nil, errors.New("rate_limits.store is redis but no shared store was given")
		}
		l.remote = o.Store
	case config.RateLimitStoreMemory, "":
	default:
		return nil, fmt.Errorf("rate_limits.store: unknown store %q", cfg.Store)
	}
	l.decisions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mxedge_ratelimit_decisions_total",
		Help: "Rate limit decisions by category (rc_* option or rule:<name>) and outcome.",
	}, []string{"category", "outcome"})
	l.storeErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mxedge_ratelimit_store_errors_total",
		Help: "Failed or timed-out calls to the shared rate limit store.",
	})
	l.fallback = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "mxedge_ratelimit_fallback_active",
		Help: "1 while the shared rate limit store is failing and rate_limits.redis.on_error applies.",
	})
	for c := range numBuiltin {
		for o := range numOutcomes {
			l.builtinCtr[c][o] = l.decisions.WithLabelValues(categoryNames[c], outcomeNames[o])
		}
	}
	st, err := l.compile(cfg)
	if err != nil {
		return nil, err
	}
	mo := MemoryOptions{MaxKeys: cfg.MaxKeys, Now: o.Now}
	if injectedNow == nil {
		mo.Now = nil // the store's faster monotonic-only clock
	}
	l.mem = NewMemory(mo)
	tracked := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "mxedge_ratelimit_tracked_keys",
		Help: "Buckets tracked in memory (bounded by rate_limits.max_keys).",
	}, func() float64 { return float64(l.mem.Tracked()) })
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{l.decisions, l.storeErrors, l.fallback, tracked} {
			if err := o.Registerer.Register(c); err != nil {
				l.mem.Close()
				return nil, fmt.Errorf("register rate limit metrics: %w", err)
			}
		}
	}
	l.bindCounters(st)
	l.st.Store(st)
	l.warnUnenforced(cfg)
	return l, nil
}

func (l *Limiter) warnUnenforced(cfg config.RateLimits) {
	for _, k := range cfg.Unenforced() {
		l.log.Warn("rate limit option is not enforced at the edge, only by the homeserver", "key", k)
	}
}

func (l *Limiter) compile(cfg config.RateLimits) (*state, error) {
	// Addresses, rule paths and registrations come parsed by Config.Validate;
	// lists without their parsed forms were never validated.
	if len(cfg.ExemptPrefixes()) != len(cfg.Exempt.Addresses) || len(cfg.RulePaths()) != len(cfg.Rules) ||
		len(cfg.Appservices()) != len(cfg.Exempt.AppserviceRegistrations) {
		return nil, errors.New("rate_limits: not validated: build the Limiter from a Config that config.Load or Config.Validate accepted")
	}
	st := &state{cfg: cfg, ipv6: cfg.IPv6Prefix, onError: cfg.Redis.OnError}
	if st.ipv6 <= 0 || st.ipv6 > 128 {
		st.ipv6 = config.DefaultRateLimitIPv6Prefix
	}
	if st.onError == "" {
		st.onError = config.RedisOnErrorLocal
	}
	lim := func(b config.Bucket) Limit { return NewLimit(b.PerSecond, b.BurstCount) }
	for _, nb := range cfg.Buckets() {
		if !(nb.Bucket.PerSecond > 0) || !(nb.Bucket.BurstCount >= 1) {
			return nil, fmt.Errorf("%s: per_second must be > 0 and burst_count >= 1", nb.Key)
		}
	}
	st.limits = [numBuiltin]Limit{
		Message:                   lim(cfg.RCMessage),
		Registration:              lim(cfg.RCRegistration),
		RegistrationTokenValidity: lim(cfg.RCRegistrationTokenValidity),
		LoginAddress:              lim(cfg.RCLogin.Address),
		LoginAccount:              lim(cfg.RCLogin.Account),
		LoginFailedAttempts:       lim(cfg.RCLogin.FailedAttempts),
		JoinsLocal:                lim(cfg.RCJoins.Local),
		InvitesPerIssuer:          lim(cfg.RCInvites.PerIssuer),
		InvitesPerUser:            lim(cfg.RCInvites.PerUser),
		ThreePIDValidation:        lim(cfg.RC3PIDValidation),
		MediaCreate:               lim(cfg.RCMediaCreate),
		RoomCreation:              lim(cfg.RCRoomCreation),
		Reports:                   lim(cfg.RCReports),
		UserDirectory:             lim(cfg.RCUserDirectory),
		PresencePerUser:           lim(cfg.RCPresence.PerUser),
		DelayedEventMgmt:          lim(cfg.RCDelayedEventMgmt),
		InvitesPerRoom:            lim(cfg.RCInvites.PerRoom),
		JoinsPerRoom:              lim(cfg.RCJoinsPerRoom),
		MASAddress:                lim(cfg.MASAddress),
	}
	st.exempt = cfg.ExemptPrefixes()
	st.as = make(map[string]appservice)
	for _, reg := range cfg.Appservices() {
		st.as[reg.ASToken] = appservice{
			rateLimited: reg.RateLimited == nil || *reg.RateLimited,
			sender:      "as:" + reg.ID + ":" + reg.SenderLocalpart,
		}
	}
	if NumBuiltin+len(cfg.Rules) > maxTables {
		return nil, fmt.Errorf("rate_limits.rules: at most %d rules, got %d", maxTables-NumBuiltin, len(cfg.Rules))
	}
	paths := cfg.RulePaths()
	for i, r := range cfg.Rules {
		cr := compileRule(r, paths[i])
		st.rules = append(st.rules, cr)
	}
	return st, nil
}

// bindCounters gives st its decision counters. It is the visible half of
// compiling (a rule's series appear in the metrics), done only for a state
// that is put in service.
func (l *Limiter) bindCounters(st *state) {
	st.ctr = make([][numOutcomes]prometheus.Counter, NumBuiltin, NumBuiltin+len(st.rules))
	copy(st.ctr, l.builtinCtr[:])
	for _, cr := range st.rules {
		var c [numOutcomes]prometheus.Counter
		for o := range numOutcomes {
			c[o] = l.decisions.WithLabelValues(cr.name, outcomeNames[o])
		}
		st.ctr = append(st.ctr, c)
	}
}

// Check decides one request. cats come from the route table; client is the
// trusted client address. For rc_login.account and rc_invites.per_user it
// reads up to PeekLimit bytes of the body and replaces r.Body with a reader
// yielding exactly the same bytes. It does not allocate in memory mode (body
// reads aside). Safe for concurrent use.
func (l *Limiter) Check(r *http.Request, client netip.Addr, cats Categories) (d Decision) {
	return l.CheckAs(r, client, cats, "")
}

// CheckAs is Check for a request whose access token is known to belong to
// user (a Matrix user ID, "" unknown): the categories Synapse keys by user
// are then keyed by user, as Synapse does, instead of by token (one device).
// An appservice's token is still keyed per puppeted user.
func (l *Limiter) CheckAs(r *http.Request, client netip.Addr, cats Categories, user string) (d Decision) {
	st := l.st.Load()
	if cats == 0 && len(st.rules) == 0 {
		d.Allowed = true
		return d
	}
	client = client.Unmap()
	if st.exempt.Contains(client) {
		st.countSet(cats, outExempt)
		d.Allowed = true
		return d
	}
	token := AccessToken(r)
	var subject Key
	if token != "" {
		if as, ok := st.as[token]; ok {
			if !as.rateLimited {
				st.countSet(cats, outExempt)
				d.Allowed = true
				return d
			}
			// Appservices are limited per puppeted user, as Synapse does.
			u := QueryParam(r.URL.RawQuery, "user_id")
			if u == "" {
				u = as.sender
			}
			subject = Key{Kind: KeyUser, S: u}
		} else if user != "" {
			subject = Key{Kind: KeyUser, S: user}
		} else {
			subject = Key{Kind: KeyToken, S: token}
		}
	}
	var ip Key
	if token == "" || cats&ipCategories != 0 || len(st.rules) > 0 {
		ip = Key{Kind: KeyIP, Addr: AddrKey(client, st.ipv6)}
	}
	if subject.Kind == 0 {
		subject = ip
	}

	var reqBuf [6]Request
	reqs := reqBuf[:0]
	for v := uint32(cats); v != 0; v &= v - 1 {
		c := Category(bits.TrailingZeros32(v))
		if c >= numBuiltin {
			continue
		}
		key, n := &subject, 1
		var k Key
		switch c {
		case Registration:
			// Synapse counts successful registrations only (Done), and refuses
			// once the bucket is empty.
			key, n = &ip, 0
			d.flags |= flagReg
			d.regAddr = ip.Addr
		case RegistrationTokenValidity, LoginAddress, ThreePIDValidation, MASAddress:
			key = &ip
		case LoginAccount, LoginFailedAttempts:
			if d.acct == "" {
				d.acct = loginAccount(r)
				if d.acct == "" {
					d.acct = noAccount
				}
			}
			if d.acct == noAccount {
				continue
			}
			k, key = Key{Kind: KeyAccount, S: d.acct}, &k
			if c == LoginFailedAttempts {
				n = 0
				d.flags |= flagFailed
			}
		case InvitesPerUser:
			u := invitee(r)
			if u == "" {
				continue
			}
			k, key = Key{Kind: KeyUser, S: u}, &k
		case InvitesPerRoom, JoinsPerRoom:
			room := roomFromPath(r.URL.Path)
			if room == "" || c == JoinsPerRoom && room[0] != '!' {
				continue
			}
			k, key = Key{Kind: KeyRoom, S: room}, &k
		}
		reqs = grow(reqs)
		rq := &reqs[len(reqs)-1]
		rq.Cat, rq.Key, rq.Limit, rq.N = c, *key, st.limits[c], n
	}
	for i := range st.rules {
		ru := &st.rules[i]
		if !ru.match(r.Method, r.URL.Path) {
			continue
		}
		reqs = grow(reqs)
		rq := &reqs[len(reqs)-1]
		rq.Cat, rq.Key, rq.Limit, rq.N = Category(NumBuiltin+i), ip, ru.limit, 1
		switch {
		case token == "":
		case ru.key == config.RuleKeyToken:
			rq.Key = subject
		case ru.key == config.RuleKeyIPToken:
			rq.Key = Key{Kind: KeyIPToken, Addr: ip.Addr, S: token}
		}
	}
	if d.flags&flagFailed == 0 {
		d.acct = ""
	}
	if len(reqs) == 0 {
		d.Allowed = true
		return d
	}
	var resBuf [6]Result
	var res []Result
	if len(reqs) <= len(resBuf) {
		res = resBuf[:len(reqs)]
	} else {
		res = make([]Result, len(reqs))
	}
	out := l.decide(r.Context(), reqs, res)
	st.finish(&d, reqs, res, out)
	return d
}

// ipCategories are the built-in categories keyed by client address.
const ipCategories = 1<<Registration | 1<<RegistrationTokenValidity | 1<<LoginAddress | 1<<ThreePIDValidation | 1<<MASAddress

// noAccount marks a login body that names no account (m.login.token).
const noAccount = "\x00none"

// grow extends reqs by one zeroed element, in place while it has room.
func grow(reqs []Request) []Request {
	if len(reqs) < cap(reqs) {
		reqs = reqs[:len(reqs)+1]
		reqs[len(reqs)-1] = Request{}
		return reqs
	}
	return append(reqs, Request{})
}

func loginAccount(r *http.Request) string {
	b, complete := peekBody(r)
	if !complete {
		return UnreadableKey
	}
	return LoginTarget(b)
}

func invitee(r *http.Request) string {
	b, complete := peekBody(r)
	if !complete {
		return UnreadableKey
	}
	return Invitee(b)
}

// decide asks the store. It returns outAllowed when res holds a decision
// (from the shared store or the local fallback), or the on_error outcome.
func (l *Limiter) decide(ctx context.Context, reqs []Request, res []Result) int {
	if l.remote == nil {
		l.mem.allow(reqs, res)
		return outAllowed
	}
	return l.decideRemote(ctx, reqs, res)
}

func (l *Limiter) decideRemote(ctx context.Context, reqs []Request, res []Result) int {
	now := int64(l.now().Sub(l.base))
	if l.down.Load() {
		at := l.probeAt.Load()
		if now < at || !l.probeAt.CompareAndSwap(at, now+int64(probeEvery)) {
			return l.onError(reqs, res)
		}
	}
	// The interface call would make reqs escape: give it copies so that the
	// memory path stays allocation-free.
	rq := slices.Clone(reqs)
	st := l.st.Load()
	for i := range rq {
		rq[i].Name = st.name(rq[i].Cat)
	}
	rs := make([]Result, len(res))
	err := l.remote.Allow(ctx, rq, rs)
	if err == nil {
		copy(res, rs)
		if l.down.CompareAndSwap(true, false) {
			l.fallback.Set(0)
			l.log.Info("rate limit store recovered")
		}
		return outAllowed
	}
	if ctx.Err() != nil {
		// The client went away: not the store's fault.
		return l.onError(reqs, res)
	}
	l.storeErrors.Inc()
	if l.down.CompareAndSwap(false, true) {
		l.probeAt.Store(now + int64(probeEvery))
		l.fallback.Set(1)
		l.log.Warn("rate limit store failing, applying rate_limits.redis.on_error",
			"on_error", l.st.Load().onError, "error", err.Error())
	}
	return l.onError(reqs, res)
}

func (l *Limiter) onError(reqs []Request, res []Result) int {
	switch l.st.Load().onError {
	case config.RedisOnErrorAllow:
		return outFailOpen
	case config.RedisOnErrorDeny:
		return outUnavailable
	}
	l.mem.allow(reqs, res)
	return outAllowed
}

// finish turns store results into the Decision and counts it.
func (st *state) finish(d *Decision, reqs []Request, res []Result, out int) {
	switch out {
	case outFailOpen:
		for i := range reqs {
			st.count(reqs[i].Cat, outFailOpen)
		}
		d.Allowed = true
		return
	case outUnavailable:
		for i := range reqs {
			st.count(reqs[i].Cat, outUnavailable)
		}
		*d = Decision{Status: http.StatusServiceUnavailable, RetryAfter: probeEvery, Category: reqs[0].Cat}
		return
	}
	worst := -1
	for i := range res {
		if !res[i].Allowed && (worst < 0 || res[i].RetryAfter > res[worst].RetryAfter) {
			worst = i
		}
	}
	if worst < 0 {
		for i := range reqs {
			st.count(reqs[i].Cat, outAllowed)
		}
		d.Allowed = true
		return
	}
	for i := range res {
		if !res[i].Allowed {
			st.count(reqs[i].Cat, outLimited)
		}
	}
	*d = Decision{Status: http.StatusTooManyRequests, RetryAfter: res[worst].RetryAfter, Category: reqs[worst].Cat}
	if int(d.Category) >= NumBuiltin {
		d.Rule = st.rules[int(d.Category)-NumBuiltin].name[len("rule:"):]
	}
}

// name returns the label of category c: its rc_* name or "rule:<name>".
func (st *state) name(c Category) string {
	if c < numBuiltin {
		return categoryNames[c]
	}
	if i := int(c) - NumBuiltin; i < len(st.rules) {
		return st.rules[i].name
	}
	return "rule"
}

func (st *state) count(c Category, out int) {
	if int(c) < len(st.ctr) {
		st.ctr[c][out].Inc()
	}
}

func (st *state) countSet(cats Categories, out int) {
	for v := uint32(cats); v != 0; v &= v - 1 {
		if c := bits.TrailingZeros32(v); c < NumBuiltin {
			st.ctr[c][out].Inc()
		}
	}
}

// Done reports the upstream status of an allowed request: a 401/403 answer
// to a login counts against rc_login.failed_attempts of its account, a 200
// answer to a registration against rc_registration of its address. It is
// cheap for every other request. Safe for concurrent use.
func (l *Limiter) Done(d *Decision, status int) {
	if d == nil || !d.Allowed || d.flags == 0 {
		return
	}
	st := l.st.Load()
	var rq Request
	switch {
	case d.flags&flagFailed != 0 && d.acct != "" && (status == http.StatusUnauthorized || status == http.StatusForbidden):
		rq = Request{Cat: LoginFailedAttempts, Name: categoryNames[LoginFailedAttempts],
			Key: Key{Kind: KeyAccount, S: d.acct}, Limit: st.limits[LoginFailedAttempts], N: 1}
	case d.flags&flagReg != 0 && status == http.StatusOK:
		rq = Request{Cat: Registration, Name: categoryNames[Registration],
			Key: Key{Kind: KeyIP, Addr: d.regAddr}, Limit: st.limits[Registration], N: 1}
	default:
		return
	}
	var res [1]Result
	ctx := context.Background()
	l.decide(ctx, []Request{rq}, res[:])
}

// Prepared is a rate-limit configuration compiled by Prepare and not yet
// deciding anything: Commit applies it, Discard drops it. One of the two must
// be called, once, before the next Prepare (reloads are serialised by the
// caller).
type Prepared struct {
	l  *Limiter
	st *state
}

// Prepare compiles cfg (validated by config.Load) for a reload: it reads the
// appservice registrations and compiles the rules, and fails, changing
// nothing, when one cannot be used. The store (rate_limits.store and
// rate_limits.redis except on_error) is the one New was given: Prepare does
// not read those keys, and whether a change to them needs a restart is the
// caller's decision.
func (l *Limiter) Prepare(cfg config.RateLimits) (*Prepared, error) {
	st, err := l.compile(cfg)
	if err != nil {
		return nil, err
	}
	return &Prepared{l: l, st: st}, nil
}

// Commit applies the prepared configuration to new decisions. It cannot
// fail. Buckets of categories whose limit is unchanged are kept; those of
// changed categories start full; admin rule buckets are kept only when the
// rules list is unchanged.
func (p *Prepared) Commit() {
	l, st := p.l, p.st
	l.mu.Lock()
	defer l.mu.Unlock()
	old := l.st.Load()
	for c := range numBuiltin {
		if st.limits[c] != old.limits[c] || st.ipv6 != old.ipv6 {
			l.mem.Reset(c)
		}
	}
	if !slices.EqualFunc(old.cfg.Rules, st.cfg.Rules, ruleEqual) || st.ipv6 != old.ipv6 {
		for i := range max(len(old.rules), len(st.rules)) {
			l.mem.Reset(Category(NumBuiltin + i))
		}
	}
	l.bindCounters(st)
	l.mem.SetMaxKeys(st.cfg.MaxKeys)
	l.st.Store(st)
	l.warnUnenforced(st.cfg)
}

// Discard drops the prepared configuration. It holds nothing to release: the
// store is never rebuilt by a reload.
func (p *Prepared) Discard() {}

func ruleEqual(a, b config.RateLimitRule) bool {
	return a.Name == b.Name && slices.Equal(a.Methods, b.Methods) && a.Path == b.Path && a.Key == b.Key &&
		a.PerSecond == b.PerSecond && a.BurstCount == b.BurstCount
}

// Close stops the memory store's sweeper and closes the shared store.
func (l *Limiter) Close() error {
	err := l.mem.Close()
	if l.remote != nil {
		err = errors.Join(err, l.remote.Close())
	}
	return err
}

// Tracked returns the number of buckets tracked in memory.
func (l *Limiter) Tracked() int64 { return l.mem.Tracked() }

// FallbackActive reports whether the shared store is failing.
func (l *Limiter) FallbackActive() bool { return l.down.Load() }
