package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fraiseql/subscriptions/bridges"
)

// gapProbeDelay is how long after first seeing a missing id the tail
// notes which transactions could still hold it (by then the transaction
// that took the id has written its row and so has a transaction id).
const gapProbeDelay = 200 * time.Millisecond

// changeLog tails FraiseQL's tb_entity_change_log by primary key, with
// its position in <schema>.checkpoint (source "changelog:<table>").
//
// Ids become visible in commit order, not id order, so a missing id may
// still appear. The tail stops at a missing id until every transaction
// that was running when the id was first missed has ended (then the id was
// rolled back, or skipped by a sequence) or until GapTimeout, and then
// reads once more before moving past it. A sequence with CACHE > 1 makes
// long-lived gaps: keep the default CACHE 1 on the change log's id.
type changeLog struct {
	b   *Bridge
	cfg ChangeLogConfig
	key string // checkpoint source

	sqlRead, sqlMax, sqlGetCP, sqlSetCP, sqlDead string

	// Session state; only the session goroutine touches it.
	cp      int64 // last id forwarded (possibly not yet recorded)
	dirty   bool  // cp or poison not yet recorded
	poison  []poisonRow
	gap     gapState
	pending int // rows forwarded since the last flush
}

type gapState struct {
	id      int64 // the missing id; 0 when none
	first   time.Time
	xmax    int64 // txid_snapshot_xmax probed after gapProbeDelay; 0 until then
	settled bool  // every transaction that could hold id has ended
}

type changeRow struct {
	pk                                     int64
	tenant, entityType, entityID, op, data string
}

func newChangeLog(b *Bridge) (*changeLog, error) {
	cfg := b.cfg.ChangeLog
	table, err := tableIdent(cfg.Table)
	if err != nil {
		return nil, fmt.Errorf("bridges.postgres.change_log.table: %w", err)
	}
	col := func(c string) string { return quoteIdent(c) }
	txt := func(c string) string { return "coalesce(" + col(c) + "::text, '')" }
	s := quoteIdent(b.cfg.Schema)
	return &changeLog{
		b:   b,
		cfg: cfg,
		key: "changelog:" + cfg.Table,
		sqlRead: `SELECT ` + col(cfg.IDColumn) + `::bigint, ` + txt(cfg.TenantColumn) + `, ` + txt(cfg.EntityTypeColumn) + `, ` +
			txt(cfg.EntityIDColumn) + `, ` + txt(cfg.OperationColumn) + `, ` + txt(cfg.PayloadColumn) +
			` FROM ` + table + ` WHERE ` + col(cfg.IDColumn) + ` > $1 ORDER BY ` + col(cfg.IDColumn) + ` LIMIT $2`,
		sqlMax:   `SELECT coalesce(max(` + col(cfg.IDColumn) + `), 0)::bigint FROM ` + table,
		sqlGetCP: `SELECT last_id FROM ` + s + `.checkpoint WHERE source = $1`,
		sqlSetCP: `INSERT INTO ` + s + `.checkpoint (source, last_id) VALUES ($1, $2) ON CONFLICT (source) DO UPDATE SET last_id = greatest(checkpoint.last_id, excluded.last_id), updated_at = now()`,
		sqlDead:  `INSERT INTO ` + s + `.dead_letter (source, source_id, tenant, topic, payload, reason) VALUES ($1, $2, $3, $4, $5, $6)`,
	}, nil
}

func (c *changeLog) session(ctx context.Context, conn *pgx.Conn) error {
	defer func() {
		if c.dirty && !conn.IsClosed() {
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flushTimeout)
			if err := c.flush(fctx, conn); err != nil {
				c.b.log.Warn("changelog: could not record checkpoint", "err", err)
			}
			cancel()
		}
	}()
	// Record what a failed connection left in flight, then take the
	// recorded position: another node may have moved it meanwhile.
	if err := c.flush(ctx, conn); err != nil {
		return err
	}
	if err := c.load(ctx, conn); err != nil {
		return err
	}
	for {
		full, blocked, err := c.step(ctx, conn)
		if err != nil {
			return err
		}
		if full && !blocked {
			continue
		}
		wait := c.b.cfg.PollInterval
		if blocked {
			wait = min(wait, 50*time.Millisecond)
		}
		if !bridges.Sleep(ctx, wait) {
			return ctx.Err()
		}
	}
}

func (c *changeLog) load(ctx context.Context, conn *pgx.Conn) error {
	qctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	err := conn.QueryRow(qctx, c.sqlGetCP, c.key).Scan(&c.cp)
	if errors.Is(err, pgx.ErrNoRows) {
		c.cp = 0
		if !c.cfg.FromStart {
			if err := conn.QueryRow(qctx, c.sqlMax).Scan(&c.cp); err != nil {
				return fmt.Errorf("changelog: %w", err)
			}
		}
		if _, err := conn.Exec(qctx, c.sqlSetCP, c.key, c.cp); err != nil {
			return fmt.Errorf("changelog: checkpoint: %w", err)
		}
		c.b.log.Info("changelog: first run", "table", c.cfg.Table, "from_id", c.cp)
	} else if err != nil {
		return fmt.Errorf("changelog: checkpoint: %w", err)
	}
	c.gap = gapState{}
	return nil
}

// step reads one batch and forwards its rows up to the first unsettled
// gap. full: the batch was full; blocked: it stopped at a gap.
func (c *changeLog) step(ctx context.Context, conn *pgx.Conn) (full, blocked bool, err error) {
	rows, err := c.read(ctx, conn)
	if err != nil {
		return false, false, err
	}
	for _, r := range rows {
		if r.pk != c.cp+1 {
			ok, err := c.gapSettled(ctx, conn, c.cp+1)
			if err != nil {
				return false, false, err
			}
			if !ok {
				blocked = true
				break
			}
		}
		c.gap = gapState{}
		if err := c.forward(ctx, r); err != nil {
			return false, false, err
		}
		c.cp, c.dirty = r.pk, true
		if c.pending++; c.pending >= 100 {
			if err := c.flush(ctx, conn); err != nil {
				return false, false, err
			}
		}
	}
	if err := c.flush(ctx, conn); err != nil {
		return false, false, err
	}
	return len(rows) == c.b.cfg.BatchSize, blocked, nil
}

// gapSettled reports whether the tail may move past the missing id.
func (c *changeLog) gapSettled(ctx context.Context, conn *pgx.Conn, id int64) (bool, error) {
	g := &c.gap
	if g.id != id {
		*g = gapState{id: id, first: time.Now()}
	}
	if g.settled {
		// We re-read after settling and the id is still missing.
		return true, nil
	}
	age := time.Since(g.first)
	if age >= c.cfg.GapTimeout {
		c.b.log.Warn("changelog: id missing for too long; moving past it", "id", id, "waited", age)
		g.settled = true
		return false, nil // read once more first
	}
	if age < gapProbeDelay {
		return false, nil
	}
	qctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	var xmin, xmax int64
	if err := conn.QueryRow(qctx, `SELECT txid_snapshot_xmin(txid_current_snapshot()), txid_snapshot_xmax(txid_current_snapshot())`).Scan(&xmin, &xmax); err != nil {
		return false, fmt.Errorf("changelog: snapshot: %w", err)
	}
	if g.xmax == 0 {
		g.xmax = xmax
		return false, nil
	}
	if xmin >= g.xmax {
		g.settled = true // every transaction that could hold id has ended
	}
	return false, nil // read once more first
}

func (c *changeLog) read(ctx context.Context, conn *pgx.Conn) ([]changeRow, error) {
	qctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	rs, err := conn.Query(qctx, c.sqlRead, c.cp, c.b.cfg.BatchSize)
	if err != nil {
		return nil, fmt.Errorf("changelog: read: %w", err)
	}
	rows, err := pgx.CollectRows(rs, func(row pgx.CollectableRow) (changeRow, error) {
		var r changeRow
		err := row.Scan(&r.pk, &r.tenant, &r.entityType, &r.entityID, &r.op, &r.data)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("changelog: read: %w", err)
	}
	return rows, nil
}

// event maps a change-log row to an event (see ChangeLogConfig).
func (c *changeLog) event(r changeRow) (Event, error) {
	tenant := r.tenant
	if tenant == "" {
		tenant = c.b.cfg.Tenant
	}
	topic, err := expandTemplate(c.cfg.TopicTemplate, map[string]string{
		"entity_type": r.entityType,
		"entity_id":   r.entityID,
		"operation":   strings.ToLower(r.op),
	})
	if err != nil {
		return Event{}, errPoison(reasonTemplateError)
	}
	data := []byte(r.data)
	if !isObject(data) {
		data, _ = json.Marshal(map[string]string{"id": r.entityID})
	}
	return Event{Tenant: tenant, Topic: topic, Data: data, MsgID: "pgcl-" + strconv.FormatInt(r.pk, 10)}, nil
}

func (c *changeLog) forward(ctx context.Context, r changeRow) error {
	ev, err := c.event(r)
	reason := ""
	if err != nil {
		reason = err.Error()
		c.b.m.Rejected.WithLabelValues(sourceChangeLog, reason).Inc()
	} else {
		res, rs, err := c.b.publish(ctx, sourceChangeLog, ev)
		if err != nil {
			return err
		}
		if res != poisoned {
			return nil
		}
		reason = rs
	}
	c.b.log.Warn("changelog: row can never be published; moved to dead_letter", "id", r.pk, "reason", reason)
	c.poison = append(c.poison, poisonRow{id: r.pk, tenant: ev.Tenant, topic: ev.Topic, payload: r.data, reason: reason})
	return nil
}

// flush records the checkpoint and dead letters in one transaction.
func (c *changeLog) flush(ctx context.Context, conn *pgx.Conn) error {
	if !c.dirty {
		return nil
	}
	batch := &pgx.Batch{}
	batch.Queue(`BEGIN`)
	for _, p := range c.poison {
		batch.Queue(c.sqlDead, c.key, strconv.FormatInt(p.id, 10), p.tenant, p.topic, p.payload, p.reason)
	}
	batch.Queue(c.sqlSetCP, c.key, c.cp)
	batch.Queue(`COMMIT`)
	qctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	if err := conn.SendBatch(qctx, batch).Close(); err != nil {
		return fmt.Errorf("changelog: record checkpoint: %w", err)
	}
	c.poison = c.poison[:0]
	c.dirty, c.pending = false, 0
	return nil
}
