package ws

import "log/slog"

// QueueStats is a snapshot of the connections' write queues.
type QueueStats struct {
	Conns     int   // connections tracked
	Frames    int   // frames queued, summed over connections
	MaxFrames int   // the most frames one connection has queued
	MaxBytes  int64 // the most payload bytes one connection has queued
}

// QueueStats reads every connection's write queue (for /metrics: it locks
// each queue in turn, so call it per scrape, not per event). Lock order:
// it copies the connection set under Server.mu, then takes each queue's
// lock without it.
func (s *Server) QueueStats() QueueStats {
	s.mu.Lock()
	conns := make([]*Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	st := QueueStats{Conns: len(conns)}
	for _, c := range conns {
		c.queue.mu.Lock()
		n, b := c.queue.n, c.queue.bytes
		c.queue.mu.Unlock()
		st.Frames += n
		st.MaxFrames = max(st.MaxFrames, n)
		st.MaxBytes = max(st.MaxBytes, b)
	}
	return st
}

// QueuedBytesLimit is the node-wide budget of queued bytes that
// QueuedBytes is counted against (Options.NodeQueuedBytes, defaults applied).
func (s *Server) QueuedBytesLimit() int64 { return s.budget.limit }

// SessionLogger is an optional Session capability: a Session that
// implements it gives the logger of every line ws logs about its
// connection, typically with the connection's id, tenant and user. Logger
// may be called from any of the connection's goroutines.
type SessionLogger interface {
	Logger() *slog.Logger
}
