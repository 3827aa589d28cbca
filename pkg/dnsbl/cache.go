package dnsbl

import (
	"container/list"
	"net/netip"
	"time"
)

// cache holds results by address until they expire, at most max of them;
// when full, the entry stored longest ago is evicted. Not safe for
// concurrent use: the Resolver guards it with its mutex.
type cache struct {
	max   int
	m     map[netip.Addr]*list.Element
	order list.List // of *cacheEntry, front = stored longest ago
}

type cacheEntry struct {
	addr    netip.Addr
	res     Result
	expires time.Time
}

func newCache(max int) *cache {
	return &cache{max: max, m: make(map[netip.Addr]*list.Element)}
}

// get returns the unexpired result of a, dropping it if it has expired.
func (c *cache) get(a netip.Addr, now time.Time) (Result, bool) {
	el, ok := c.m[a]
	if !ok {
		return Result{}, false
	}
	e := el.Value.(*cacheEntry)
	if !now.Before(e.expires) {
		c.remove(el)
		return Result{}, false
	}
	return e.res, true
}

// put stores res for a until expires, evicting the oldest entries if full.
func (c *cache) put(a netip.Addr, res Result, expires time.Time) {
	if el, ok := c.m[a]; ok {
		e := el.Value.(*cacheEntry)
		e.res, e.expires = res, expires
		c.order.MoveToBack(el)
		return
	}
	for len(c.m) >= c.max && c.order.Len() > 0 {
		c.remove(c.order.Front())
	}
	c.m[a] = c.order.PushBack(&cacheEntry{addr: a, res: res, expires: expires})
}

func (c *cache) remove(el *list.Element) {
	delete(c.m, el.Value.(*cacheEntry).addr)
	c.order.Remove(el)
}
