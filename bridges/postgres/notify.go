package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// notifier forwards FraiseQL's legacy NOTIFY envelopes. It is
// fire-and-forget, as LISTEN/NOTIFY is: PostgreSQL keeps no notification
// for a listener that is not connected, so what is sent while no bridge
// listens (PostgreSQL or the leader restarting, a lease changing hands)
// is lost. Once received, a notification is retried until the stream has
// it; PostgreSQL queues later ones for the connection meanwhile. Use the
// outbox where nothing may be lost.
type notifier struct {
	b *Bridge
}

func (n *notifier) session(ctx context.Context, conn *pgx.Conn) error {
	for _, ch := range n.b.cfg.NotifyChannels {
		if _, err := conn.Exec(ctx, `LISTEN `+quoteIdent(ch)); err != nil {
			return fmt.Errorf("listen %s: %w", ch, err)
		}
	}
	for {
		note, err := conn.WaitForNotification(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			return fmt.Errorf("wait for notification: %w", err)
		}
		if err := n.handle(ctx, conn, note.Channel, note.Payload); err != nil {
			return err
		}
	}
}

func (n *notifier) handle(ctx context.Context, conn *pgx.Conn, channel, payload string) error {
	ev, err := ParseEnvelope(channel, []byte(payload), n.b.cfg.Tenant)
	reason := ""
	if err != nil {
		reason = err.Error()
		n.b.m.rejected.WithLabelValues(sourceNotify, reason).Inc()
	} else {
		res, r, err := n.b.publish(ctx, sourceNotify, ev)
		if err != nil {
			return err
		}
		if res != poisoned {
			return nil
		}
		reason = r
	}
	n.b.log.Warn("notify: event can never be published; moved to dead_letter", "channel", channel, "reason", reason)
	// Best effort: the dead letter is for operators; failing to write it
	// must not stop the channel.
	qctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	if _, err := conn.Exec(qctx, `INSERT INTO `+quoteIdent(n.b.cfg.Schema)+`.dead_letter (source, tenant, topic, payload, reason) VALUES ($1, $2, $3, $4, $5)`,
		"notify:"+channel, ev.Tenant, ev.Topic, payload, reason); err != nil {
		n.b.log.Warn("notify: could not write dead_letter", "err", err)
		if conn.IsClosed() {
			return err
		}
	}
	return nil
}
