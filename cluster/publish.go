package cluster

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// PubResult is what the stream said about a Publish.
type PubResult struct {
	// Seq is the event's stream sequence. For a duplicate it is the
	// sequence of the original event.
	Seq uint64
	// Duplicate is true when the stream had already stored an event with
	// the same msgID within Config.DuplicateWindow; nothing new was stored.
	Duplicate bool
}

// Publish stores data as an event on "<prefix>.<tenant>.<topic>" and
// returns once JetStream has acknowledged it (at-least-once; exactly-once
// within the duplicate window when msgID is set, as it becomes the
// Nats-Msg-Id header). A body larger than MaxMsgSize fails with
// ErrPayloadTooLarge and a bad tenant or topic with ErrBadTenant or
// ErrBadTopic, in both cases before anything is sent. Events published
// to one subject by one caller are stored in call order.
func (c *Cluster) Publish(ctx context.Context, tenant, topic string, data []byte, msgID string) (PubResult, error) {
	return c.PublishTraced(ctx, tenant, topic, data, msgID, "")
}

// PublishTraced is Publish with the W3C traceparent of the event's source
// as the message's traceparent header, so that the trace continues
// through the nodes (docs/monitoring.md, Traces). A traceparent that is
// not a valid one (ValidTraceParent) is left out; the event is published.
func (c *Cluster) PublishTraced(ctx context.Context, tenant, topic string, data []byte, msgID, traceparent string) (PubResult, error) {
	if c.closed.Load() {
		return PubResult{}, ErrClosed
	}
	subj, err := c.Subject(tenant, topic)
	if err != nil {
		c.metrics.pubInvalid.Inc()
		return PubResult{}, err
	}
	if len(data) > c.maxMsgSize {
		c.metrics.pubTooLarge.Inc()
		return PubResult{}, fmt.Errorf("%w: %d bytes (max %d)", ErrPayloadTooLarge, len(data), c.maxMsgSize)
	}
	if len(msgID) > maxMsgIDLen {
		c.metrics.pubInvalid.Inc()
		return PubResult{}, fmt.Errorf("publish %s: msg id is %d bytes (max %d)", subj, len(msgID), maxMsgIDLen)
	}
	msg := &nats.Msg{Subject: subj, Data: data}
	if traceparent != "" && ValidTraceParent(traceparent) {
		msg.Header = nats.Header{"traceparent": []string{traceparent}}
	}
	var ack *jetstream.PubAck
	if msgID != "" {
		ack, err = c.js.PublishMsg(ctx, msg, jetstream.WithMsgID(msgID))
	} else {
		ack, err = c.js.PublishMsg(ctx, msg)
	}
	if err != nil {
		c.metrics.pubError.Inc()
		return PubResult{}, fmt.Errorf("publish %s: %w", subj, err)
	}
	if ack.Duplicate {
		c.metrics.pubDuplicate.Inc()
	} else {
		c.metrics.pubOK.Inc()
	}
	return PubResult{Seq: ack.Sequence, Duplicate: ack.Duplicate}, nil
}
