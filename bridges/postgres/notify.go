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
//
// NOTIFY needs no privilege: any role that can connect to the database
// can send on a listened channel. So every channel belongs to a
// legacySource, which bounds the tenants and topics its envelopes may
// name (see LegacySource).
type notifier struct {
	b        *Bridge
	channels []string                 // LISTENed, in declaration order
	sources  map[string]*legacySource // by channel
}

func newNotifier(b *Bridge) *notifier {
	return &notifier{b: b, channels: b.cfg.notifyChannelList(), sources: b.cfg.resolveLegacy()}
}

func (n *notifier) session(ctx context.Context, conn *pgx.Conn) error {
	for _, ch := range n.channels {
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
	src := n.sources[channel]
	if src == nil { // only LISTENed channels arrive; a server that sends others is ignored
		n.b.log.Warn("notify: notification on a channel not listened to; ignored", "channel", channel)
		return nil
	}
	ev, err := src.notifyEvent(channel, []byte(payload))
	reason := ""
	if err != nil {
		reason = reasonOf(err)
		n.b.m.Rejected.WithLabelValues(sourceNotify, reason).Inc()
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
	n.b.log.Warn("notify: event can never be published; moved to dead_letter", "channel", channel, "config", src.name,
		"reason", reason, "tenant", ev.Tenant, "topic", ev.Topic, "err", err)
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
