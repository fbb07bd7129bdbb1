package node

import (
	"slices"
	"sync"

	"github.com/fraiseql/subscriptions/query"
)

// index routes events to subscriptions: subject → plan group → subscriptions.
// Subscriptions whose plans have the same Key share one group, so an event
// is filtered, projected and encoded once per group, not once per subscriber.
type index struct {
	mu       sync.RWMutex
	subjects map[string]*route // guarded by mu
	plans    int               // number of groups; guarded by mu
}

// route holds the plan groups of one subject.
type route struct {
	groups map[string]*group // by plan Key
}

// group is the subscriptions of one plan on one subject.
type group struct {
	plan *query.Plan
	subs []*subscription // each sub's pos is its index here
}

func newIndex() *index {
	return &index{subjects: make(map[string]*route)}
}

func (ix *index) add(s *subscription) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	r := ix.subjects[s.subject]
	if r == nil {
		r = &route{groups: make(map[string]*group)}
		ix.subjects[s.subject] = r
	}
	g := r.groups[s.plan.Key]
	if g == nil {
		g = &group{plan: s.plan}
		r.groups[s.plan.Key] = g
		ix.plans++
	}
	s.group, s.pos = g, len(g.subs)
	g.subs = append(g.subs, s)
}

// remove takes s out of the index; it is a no-op if s is not in it.
func (ix *index) remove(s *subscription) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	g := s.group
	if g == nil {
		return
	}
	last := len(g.subs) - 1
	g.subs[s.pos] = g.subs[last]
	g.subs[s.pos].pos = s.pos
	g.subs[last] = nil
	g.subs = g.subs[:last]
	s.group = nil
	if len(g.subs) > 0 {
		return
	}
	r := ix.subjects[s.subject]
	delete(r.groups, s.plan.Key)
	ix.plans--
	if len(r.groups) == 0 {
		delete(ix.subjects, s.subject)
	}
}

// has reports whether any subscription is on subject.
func (ix *index) has(subject string) bool {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return ix.subjects[subject] != nil
}

// counts returns the number of subjects and plan groups.
func (ix *index) counts() (subjects, plans int) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return len(ix.subjects), ix.plans
}

// subjectList returns the subjects in the index, sorted.
func (ix *index) subjectList() []string {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	out := make([]string, 0, len(ix.subjects))
	for s := range ix.subjects {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}
