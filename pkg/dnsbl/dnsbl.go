// Package dnsbl looks client addresses up in DNS block lists (DNSBLs) such
// as zen.spamhaus.org, without ever blocking the caller.
//
// A jail configured with dnsbl = ["zen.spamhaus.org"] adds dnsbl_weight
// strikes, once, on the first event of an address that a list names. The
// look-up is asynchronous: Lookup queues it and returns at once, a bounded
// pool of workers asks DNS with a timeout, and the result is handed to a
// callback and kept in a cache (positive and negative TTLs) that Cached reads
// without blocking. A slow or dead DNS server therefore only means no extra
// strikes: look-ups time out, and when the queue is full they are dropped
// and counted.
//
// The query for 203.0.113.7 in zen.spamhaus.org is the A record of
// 7.113.0.203.zen.spamhaus.org.; IPv6 addresses are written as their 32
// reversed nibbles, IPv4-mapped IPv6 addresses are looked up as IPv4. An
// NXDOMAIN answer means "not listed". An answer in 127.255.255.0/24 is the
// list refusing the query (Spamhaus does so for queries from public or open
// resolvers): it never counts as listed, is logged at most once a minute,
// and is cached as "not listed" for a short while. Answers outside
// 127.0.0.0/8 are ignored, and with return codes configured
// ("zen.spamhaus.org=127.0.0.2-127.0.0.7") only answers within them count.
package dnsbl

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Options.
const (
	DefaultTimeout     = 2 * time.Second
	DefaultWorkers     = 16
	DefaultQueue       = 4096
	DefaultPositiveTTL = time.Hour
	DefaultNegativeTTL = 10 * time.Minute
	DefaultMaxCache    = 100_000
)

// maxRefusedTTL caps how long a refused query is cached as "not listed".
const maxRefusedTTL = time.Minute

// refusedLogInterval is how often at most the refusal warning is logged.
const refusedLogInterval = time.Minute

// Options configure a Resolver. Zero values mean the defaults.
type Options struct {
	Lists       []List        // the lists to ask, all of them for each address; at least one
	Server      string        // "host:port" or "host" (port 53); "" = the system resolver (/etc/resolv.conf)
	Timeout     time.Duration // per query, default 2s
	Workers     int           // concurrent look-ups, default 16
	Queue       int           // pending look-ups beyond the workers, default 4096; Lookup drops (and counts) beyond it
	PositiveTTL time.Duration // how long "listed" is cached, default 1h
	NegativeTTL time.Duration // how long "not listed" is cached, default 10m (refusals: at most 1m)
	MaxCache    int           // cached addresses, default 100,000 (the oldest are evicted)
}

// Answer is one list that lists an address, with the code it answered.
type Answer struct {
	List string     // the list's zone
	Code netip.Addr // the answer, e.g. 127.0.0.2
}

// Result is the outcome of looking an address up in all lists.
type Result struct {
	// Addr is the address looked up, unmapped (an IPv4-mapped IPv6
	// address is looked up, and reported, as IPv4) and without IPv6 zone.
	Addr netip.Addr
	// Listed holds one Answer for each list that lists Addr, in the order
	// of Options.Lists; empty: not listed.
	Listed []Answer
	// Err is set when a list could not be asked (timeout, SERVFAIL, ...);
	// Listed then still holds the lists that did answer "listed". Results
	// with an Err are not cached. Err wraps context.DeadlineExceeded on a
	// timeout.
	Err error
}

// Stats are counters since New; see Resolver.Stats.
type Stats struct {
	Lookups   uint64 // calls of Lookup, whatever became of them
	CacheHits uint64 // Lookup calls answered from the cache
	Listed    uint64 // DNS look-ups (one per address, all lists) that found the address listed
	NotListed uint64 // DNS look-ups that found it listed nowhere, without errors
	Refused   uint64 // queries answered with 127.255.255.x, the list refusing to answer
	Errors    uint64 // queries that failed (timeout, SERVFAIL, network error...)
	Dropped   uint64 // Lookup calls dropped because the queue was full or Run had returned
}

// Resolver looks addresses up in DNSBLs asynchronously; make one with New
// and start its workers with Run. All its methods are safe for concurrent
// use.
type Resolver struct {
	lists       []List
	q           querier
	timeout     time.Duration
	workers     int
	positiveTTL time.Duration
	negativeTTL time.Duration
	refusedTTL  time.Duration
	log         *slog.Logger
	now         func() time.Time

	queue chan job
	state atomic.Int32 // 0 new, 1 running, 2 done

	mu       sync.Mutex
	stopped  bool // Run has returned
	inflight map[netip.Addr]*flight
	cache    *cache

	lastRefusedLog atomic.Int64 // unix nanoseconds

	lookups, cacheHits, listed, notListed, refused, errs, dropped atomic.Uint64
}

// job is one queued look-up: either a DNS look-up shared by the callbacks
// of a flight, or a cached result to hand to one callback.
type job struct {
	addr netip.Addr
	f    *flight // nil: res is a cached result for done
	res  Result
	done func(Result)
}

// flight is a look-up queued or under way; more Lookups of the same address
// add their callbacks to it.
type flight struct {
	dones []func(Result)
}

// New checks opts and returns a Resolver; nothing is looked up until Run.
// logger may be nil (no logging).
func New(opts Options, logger *slog.Logger) (*Resolver, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if len(opts.Lists) == 0 {
		return nil, errors.New("dnsbl: no lists")
	}
	lists := make([]List, 0, len(opts.Lists))
	seen := make(map[string]bool)
	for _, l := range opts.Lists {
		z, err := normalizeZone(l.Zone)
		if err != nil {
			return nil, fmt.Errorf("dnsbl: list %q: %w", l.Zone, err)
		}
		if seen[z] {
			return nil, fmt.Errorf("dnsbl: list %q given twice", z)
		}
		seen[z] = true
		for _, c := range l.Codes {
			if err := checkRange(c); err != nil {
				return nil, fmt.Errorf("dnsbl: list %q: %w", z, err)
			}
		}
		lists = append(lists, List{Zone: z, Codes: slices.Clone(l.Codes)})
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"timeout", opts.Timeout}, {"positive TTL", opts.PositiveTTL}, {"negative TTL", opts.NegativeTTL}} {
		if d.v < 0 {
			return nil, fmt.Errorf("dnsbl: negative %s %v", d.name, d.v)
		}
	}
	for _, n := range []struct {
		name string
		v    int
	}{{"workers", opts.Workers}, {"queue", opts.Queue}, {"cache size", opts.MaxCache}} {
		if n.v < 0 {
			return nil, fmt.Errorf("dnsbl: negative %s %d", n.name, n.v)
		}
	}
	r := &Resolver{
		lists:       lists,
		timeout:     orDefault(opts.Timeout, DefaultTimeout),
		workers:     orDefault(opts.Workers, DefaultWorkers),
		positiveTTL: orDefault(opts.PositiveTTL, DefaultPositiveTTL),
		negativeTTL: orDefault(opts.NegativeTTL, DefaultNegativeTTL),
		log:         logger,
		now:         time.Now,
		queue:       make(chan job, orDefault(opts.Queue, DefaultQueue)),
		inflight:    make(map[netip.Addr]*flight),
		cache:       newCache(orDefault(opts.MaxCache, DefaultMaxCache)),
	}
	r.refusedTTL = min(r.negativeTTL, maxRefusedTTL)
	if opts.Server == "" {
		r.q = systemQuerier{r: net.DefaultResolver}
	} else {
		addr, err := serverAddr(opts.Server)
		if err != nil {
			return nil, err
		}
		r.q = newServerQuerier(addr, r.timeout)
	}
	return r, nil
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Run runs the workers until ctx is done, then returns nil once they all
// have returned. It may be called only once.
//
// When ctx is done, look-ups under way are abandoned and the callbacks of
// queued and abandoned look-ups are simply not called; no callback runs
// after Run has returned, and later Lookups are dropped.
func (r *Resolver) Run(ctx context.Context) error {
	if !r.state.CompareAndSwap(0, 1) {
		return errors.New("dnsbl: Run called more than once")
	}
	var wg sync.WaitGroup
	for range r.workers {
		wg.Go(func() {
			for {
				select {
				case <-ctx.Done():
					return
				case j := <-r.queue:
					r.process(ctx, j)
				}
			}
		})
	}
	wg.Wait()
	r.mu.Lock()
	r.stopped = true
	clear(r.inflight)
	r.mu.Unlock()
	for {
		select {
		case <-r.queue:
		default:
			r.state.Store(2)
			return nil
		}
	}
}

// Cached returns the cached result of a, if there is an unexpired one,
// without blocking on DNS.
func (r *Resolver) Cached(a netip.Addr) (Result, bool) {
	a = normalize(a)
	r.mu.Lock()
	res, ok := r.cache.get(a, r.now())
	r.mu.Unlock()
	return cloneResult(res), ok
}

// Lookup queues a look-up of a in all lists and returns at once. done, if
// not nil, is called later from a worker goroutine with the result; this
// holds for a cached result too, which is still delivered asynchronously,
// never from within Lookup.
//
// Several Lookups of one address while a look-up of it is queued or under
// way share that look-up (and one queue slot); done is called for each.
//
// Lookup returns false, and counts the look-up as dropped, when the queue is
// full or Run has returned; done is then never called. Callbacks of queued
// look-ups are not called once Run's context is done.
func (r *Resolver) Lookup(a netip.Addr, done func(Result)) bool {
	r.lookups.Add(1)
	a = normalize(a)
	r.mu.Lock()
	defer r.mu.Unlock()
	// Only Lookup sends, always under mu: a queue with room now still has
	// room for the send below.
	if r.stopped || len(r.queue) == cap(r.queue) {
		r.dropped.Add(1)
		return false
	}
	if res, ok := r.cache.get(a, r.now()); ok {
		select {
		case r.queue <- job{addr: a, res: res, done: done}:
			r.cacheHits.Add(1)
			return true
		default:
			r.dropped.Add(1)
			return false
		}
	}
	if f := r.inflight[a]; f != nil {
		f.dones = append(f.dones, done)
		return true
	}
	f := &flight{dones: []func(Result){done}}
	select {
	case r.queue <- job{addr: a, f: f}:
		r.inflight[a] = f
		return true
	default:
		r.dropped.Add(1)
		return false
	}
}

// Stats returns the counters so far.
func (r *Resolver) Stats() Stats {
	return Stats{
		Lookups:   r.lookups.Load(),
		CacheHits: r.cacheHits.Load(),
		Listed:    r.listed.Load(),
		NotListed: r.notListed.Load(),
		Refused:   r.refused.Load(),
		Errors:    r.errs.Load(),
		Dropped:   r.dropped.Load(),
	}
}

// normalize unmaps IPv4-mapped addresses and drops IPv6 zones.
func normalize(a netip.Addr) netip.Addr {
	return a.Unmap().WithZone("")
}

func cloneResult(res Result) Result {
	res.Listed = slices.Clone(res.Listed)
	return res
}

// process runs one job in a worker.
func (r *Resolver) process(ctx context.Context, j job) {
	if ctx.Err() != nil {
		return
	}
	if j.f == nil {
		if j.done != nil {
			j.done(cloneResult(j.res))
		}
		return
	}
	res, ttl := r.resolve(ctx, j.addr)
	r.mu.Lock()
	delete(r.inflight, j.addr)
	dones := j.f.dones
	if ctx.Err() != nil {
		r.mu.Unlock()
		return
	}
	if res.Err == nil {
		r.cache.put(j.addr, res, r.now().Add(ttl))
	}
	r.mu.Unlock()
	for _, done := range dones {
		if done != nil {
			done(cloneResult(res))
		}
	}
}

// listAnswer is what one list said about an address.
type listAnswer struct {
	listed  netip.Addr // valid: listed with this code
	refused bool
	err     error
}

// resolve asks all lists about a (concurrently when there are several) and
// returns the result and how long to cache it.
func (r *Resolver) resolve(ctx context.Context, a netip.Addr) (Result, time.Duration) {
	res := Result{Addr: a}
	if !a.IsValid() {
		r.errs.Add(1)
		res.Err = errors.New("dnsbl: invalid address")
		return res, 0
	}
	answers := make([]listAnswer, len(r.lists))
	if len(r.lists) == 1 {
		answers[0] = r.ask(ctx, a, r.lists[0])
	} else {
		var wg sync.WaitGroup
		for i, l := range r.lists {
			wg.Go(func() { answers[i] = r.ask(ctx, a, l) })
		}
		wg.Wait()
	}
	var errs []error
	refused := false
	for i, ans := range answers {
		switch {
		case ans.err != nil:
			errs = append(errs, ans.err)
		case ans.listed.IsValid():
			res.Listed = append(res.Listed, Answer{List: r.lists[i].Zone, Code: ans.listed})
		case ans.refused:
			refused = true
		}
	}
	res.Err = errors.Join(errs...)
	if len(errs) == 1 {
		res.Err = errs[0]
	}
	switch {
	case len(res.Listed) > 0:
		r.listed.Add(1)
		return res, r.positiveTTL
	case res.Err != nil:
		return res, 0
	case refused:
		r.notListed.Add(1)
		return res, r.refusedTTL
	default:
		r.notListed.Add(1)
		return res, r.negativeTTL
	}
}

// ask queries one list about a.
func (r *Resolver) ask(ctx context.Context, a netip.Addr, l List) listAnswer {
	name := queryName(a, l.Zone)
	qctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	codes, err := r.q.query(qctx, name)
	if err != nil {
		if ctx.Err() == nil { // not counted when Run is stopping
			r.errs.Add(1)
			r.log.Debug("DNSBL query failed", "list", l.Zone, "query", name, "err", err)
		}
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("no answer within %v: %w", r.timeout, err)
		}
		return listAnswer{err: fmt.Errorf("dnsbl: %s: query %s: %w", l.Zone, name, err)}
	}
	slices.SortFunc(codes, netip.Addr.Compare)
	var ans listAnswer
	for _, c := range codes {
		if refusedCode(c) {
			r.refused.Add(1)
			r.logRefused(l.Zone, name, c)
			return listAnswer{refused: true}
		}
	}
	for _, c := range codes {
		switch {
		case !in127(c):
			r.log.Debug("DNSBL answer outside 127.0.0.0/8 ignored", "list", l.Zone, "query", name, "answer", c)
		case l.listed(c) && !ans.listed.IsValid():
			ans.listed = c
		}
	}
	return ans
}

// logRefused warns that a list refused a query, at most once a minute.
func (r *Resolver) logRefused(zone, name string, code netip.Addr) {
	now := time.Now().UnixNano()
	last := r.lastRefusedLog.Load()
	if last != 0 && now-last < int64(refusedLogInterval) {
		return
	}
	if !r.lastRefusedLog.CompareAndSwap(last, now) {
		return
	}
	r.log.Warn("the DNSBL refused the query (open resolver?)", "list", zone, "query", name, "code", code)
}
