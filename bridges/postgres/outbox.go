package postgres

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// lagCap bounds the lag count, so that a huge backlog costs a bounded scan.
const lagCap = 1_000_000

// pruneChunk is how many forwarded rows one prune statement deletes.
const pruneChunk = 10_000

// outbox forwards <schema>.outbox rows in id order.
//
// The source of truth is forwarded_at: a row is read while it is NULL, and
// it is set only after JetStream acknowledged the row. An id checkpoint
// alone would lose rows: ids are taken at insert but become visible at
// commit, so a transaction holding id 5 may commit after id 6 was read.
// Reading "forwarded_at IS NULL" picks such a row up on the next read. The
// checkpoint table records the highest forwarded id, for operators.
//
// Between the ack and the commit of forwarded_at the row is in flight: if
// PostgreSQL fails then, the ids are kept in memory and committed on the
// next connection before anything is read again, so they are not re-sent
// however long the outage. If this node dies then, the next leader re-sends
// those rows, and the stream drops them as duplicates of "pg-<id>" as long
// as the takeover (about LeaseTTL) is shorter than the stream's duplicate
// window (nats.duplicate_window, 2m by default).
type outbox struct {
	b   *Bridge
	src string

	sqlRead, sqlForward, sqlDelete, sqlDead, sqlCheckpoint, sqlLag, sqlPrune string

	// In flight: acknowledged by JetStream, not yet recorded in PostgreSQL.
	// Only the session goroutine touches these (sessions never overlap).
	forwarded []int64
	poison    []poisonRow
	lastPrune time.Time
}

type poisonRow struct {
	id                     int64
	tenant, topic, payload string
	reason                 string
}

type outboxRow struct {
	id                     int64
	tenant, topic, payload string
	traceparent            *string // NULL: none
}

func newOutbox(b *Bridge) *outbox {
	s := quoteIdent(b.cfg.Schema)
	return &outbox{
		b:             b,
		src:           sourceOutbox,
		sqlRead:       `SELECT id, tenant, topic, payload::text, traceparent FROM ` + s + `.outbox WHERE forwarded_at IS NULL ORDER BY id LIMIT $1`,
		sqlForward:    `UPDATE ` + s + `.outbox SET forwarded_at = now() WHERE id = ANY($1) AND forwarded_at IS NULL`,
		sqlDelete:     `DELETE FROM ` + s + `.outbox WHERE id = $1`,
		sqlDead:       `INSERT INTO ` + s + `.dead_letter (source, source_id, tenant, topic, payload, reason) VALUES ($1, $2, $3, $4, $5, $6)`,
		sqlCheckpoint: `INSERT INTO ` + s + `.checkpoint (source, last_id) VALUES ($1, $2) ON CONFLICT (source) DO UPDATE SET last_id = greatest(checkpoint.last_id, excluded.last_id), updated_at = now()`,
		sqlLag:        `SELECT count(*) FROM (SELECT 1 FROM ` + s + `.outbox WHERE forwarded_at IS NULL LIMIT ` + strconv.Itoa(lagCap) + `) pending`,
		sqlPrune:      `DELETE FROM ` + s + `.outbox WHERE id IN (SELECT id FROM ` + s + `.outbox WHERE forwarded_at < now() - make_interval(secs => $1) LIMIT ` + strconv.Itoa(pruneChunk) + `)`,
	}
}

// session LISTENs for wake-ups and forwards until an error or ctx is done.
func (o *outbox) session(ctx context.Context, conn *pgx.Conn) (err error) {
	// Record what is in flight before giving up the lease or the connection.
	defer func() {
		if len(o.forwarded)+len(o.poison) > 0 && !conn.IsClosed() {
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flushTimeout)
			if ferr := o.flush(fctx, conn); ferr != nil {
				o.b.log.Warn("outbox: could not record forwarded rows", "rows", len(o.forwarded), "err", ferr)
			}
			cancel()
		}
	}()
	if err := o.flush(ctx, conn); err != nil { // what a failed connection left in flight
		return err
	}
	if _, err := conn.Exec(ctx, `LISTEN `+quoteIdent(outboxChannel(o.b.cfg.Schema))); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	for {
		if err := o.drain(ctx, conn); err != nil {
			return err
		}
		o.updateLag(ctx, conn)
		o.maybePrune(ctx, conn)
		// Sleep until a wake-up or the poll interval. Notifications that
		// arrived while we were reading are returned at once.
		wctx, cancel := context.WithTimeout(ctx, o.b.cfg.PollInterval)
		_, err := conn.WaitForNotification(wctx)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil && (wctx.Err() == nil || conn.IsClosed()) {
			return fmt.Errorf("wait for notification: %w", err)
		}
		// Any number of wake-ups is answered by one drain.
		for drainNotifications(conn) {
		}
	}
}

// drainNotifications consumes notifications already received, without
// blocking; it reports whether it consumed any.
func drainNotifications(conn *pgx.Conn) bool {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	n, _ := conn.WaitForNotification(ctx) // returns a buffered one, else fails at once
	return n != nil
}

// drain forwards batches until a read returns less than a full batch.
func (o *outbox) drain(ctx context.Context, conn *pgx.Conn) error {
	for {
		rows, err := o.read(ctx, conn)
		if err != nil {
			return err
		}
		for _, r := range rows {
			if err := o.forward(ctx, r); err != nil {
				return err
			}
			// Record progress now and then within a batch, so that a NATS
			// outage half-way does not leave many rows in flight.
			if len(o.forwarded) >= 100 {
				if err := o.flush(ctx, conn); err != nil {
					return err
				}
			}
		}
		if err := o.flush(ctx, conn); err != nil {
			return err
		}
		if len(rows) < o.b.cfg.BatchSize {
			return nil
		}
	}
}

func (o *outbox) read(ctx context.Context, conn *pgx.Conn) ([]outboxRow, error) {
	qctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	rs, err := conn.Query(qctx, o.sqlRead, o.b.cfg.BatchSize)
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	out := make([]outboxRow, 0, o.b.cfg.BatchSize)
	for rs.Next() {
		var r outboxRow
		if err := rs.Scan(&r.id, &r.tenant, &r.topic, &r.payload, &r.traceparent); err != nil {
			rs.Close()
			return nil, fmt.Errorf("read outbox: %w", err)
		}
		out = append(out, r)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	return out, nil
}

// forward publishes one row, retrying transient failures, and records
// the outcome in memory for the next flush.
func (o *outbox) forward(ctx context.Context, r outboxRow) error {
	data := []byte(r.payload)
	if !isObject(data) {
		o.b.m.Rejected.WithLabelValues(o.src, reasonNotObject).Inc()
		o.setAside(r, reasonNotObject)
		return nil
	}
	ev := Event{Tenant: r.tenant, Topic: r.topic, Data: data, MsgID: "pg-" + strconv.FormatInt(r.id, 10)}
	if r.traceparent != nil {
		ev.TraceParent = *r.traceparent // PublishTraced drops an invalid one
	}
	res, reason, err := o.b.publish(ctx, o.src, ev)
	if err != nil {
		return err
	}
	if res == poisoned {
		o.setAside(r, reason)
		return nil
	}
	o.forwarded = append(o.forwarded, r.id)
	return nil
}

func (o *outbox) setAside(r outboxRow, reason string) {
	o.b.log.Warn("outbox: row can never be published; moved to dead_letter", "id", r.id, "tenant", r.tenant, "topic", r.topic, "reason", reason)
	o.poison = append(o.poison, poisonRow{id: r.id, tenant: r.tenant, topic: r.topic, payload: r.payload, reason: reason})
}

// flush records in one transaction the rows in flight: forwarded ones
// get forwarded_at, poison ones move to dead_letter, and the checkpoint
// advances past both.
func (o *outbox) flush(ctx context.Context, conn *pgx.Conn) error {
	if len(o.forwarded)+len(o.poison) == 0 {
		return nil
	}
	var last int64
	for _, id := range o.forwarded {
		last = max(last, id)
	}
	batch := &pgx.Batch{}
	batch.Queue(`BEGIN`)
	if len(o.forwarded) > 0 {
		batch.Queue(o.sqlForward, o.forwarded)
	}
	for _, p := range o.poison {
		last = max(last, p.id)
		batch.Queue(o.sqlDead, "outbox", strconv.FormatInt(p.id, 10), p.tenant, p.topic, p.payload, p.reason)
		batch.Queue(o.sqlDelete, p.id)
	}
	batch.Queue(o.sqlCheckpoint, "outbox", last)
	batch.Queue(`COMMIT`)
	qctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	if err := conn.SendBatch(qctx, batch).Close(); err != nil {
		return fmt.Errorf("record forwarded rows: %w", err)
	}
	o.forwarded = o.forwarded[:0]
	o.poison = o.poison[:0]
	return nil
}

func (o *outbox) updateLag(ctx context.Context, conn *pgx.Conn) {
	qctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	var n int64
	if err := conn.QueryRow(qctx, o.sqlLag).Scan(&n); err == nil {
		o.b.m.Lag.WithLabelValues(o.src).Set(float64(n))
	}
}

// maybePrune deletes forwarded rows older than Retention, at most once
// per minute (or Retention/10).
func (o *outbox) maybePrune(ctx context.Context, conn *pgx.Conn) {
	ret := o.b.cfg.Retention
	if ret < 0 || time.Since(o.lastPrune) < min(time.Minute, ret/10) {
		return
	}
	o.lastPrune = time.Now()
	for ctx.Err() == nil {
		qctx, cancel := context.WithTimeout(ctx, queryTimeout)
		tag, err := conn.Exec(qctx, o.sqlPrune, ret.Seconds())
		cancel()
		if err != nil {
			o.b.log.Warn("outbox: prune failed", "err", err)
			return
		}
		if tag.RowsAffected() < pruneChunk {
			return
		}
	}
}
