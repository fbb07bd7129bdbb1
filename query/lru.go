package query

import (
	"container/list"
	"sync"
)

// lru is a bounded, least-recently-used cache of plans.
type lru struct {
	size int

	mu    sync.Mutex
	order *list.List // of *lruEntry, most recent first
	items map[[32]byte]*list.Element
}

type lruEntry struct {
	key  [32]byte
	plan *Plan
}

func newLRU(size int) *lru {
	return &lru{size: size, order: list.New(), items: make(map[[32]byte]*list.Element)}
}

func (c *lru) get(k [32]byte) *Plan {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[k]
	if !ok {
		return nil
	}
	c.order.MoveToFront(e)
	return e.Value.(*lruEntry).plan
}

func (c *lru) add(k [32]byte, p *Plan) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[k]; ok {
		c.order.MoveToFront(e)
		return
	}
	c.items[k] = c.order.PushFront(&lruEntry{key: k, plan: p})
	for c.order.Len() > c.size {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.items, last.Value.(*lruEntry).key)
	}
}

func (c *lru) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
