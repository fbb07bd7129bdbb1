package redis

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/fraiseql/subscriptions/cluster"
)

// Reasons an event is rejected: the label values of
// fraiseql_redis_bridge_rejected_total{reason} and the "reason" field of a
// dead-letter entry.
const (
	reasonNotJSONObject = "not_json_object" // the body (or an envelope's data) is not a JSON object
	reasonBadEnvelope   = "bad_envelope"    // an envelope field has the wrong type
	reasonBadChannel    = "bad_channel"     // a pub/sub channel is not "<prefix>:<tenant>:<topic>"
	reasonNoData        = "no_data"         // a stream entry has no "data" field
	reasonBadTenant     = "bad_tenant"
	reasonBadTopic      = "bad_topic"
	reasonTooLarge      = "too_large"
	reasonPublishFailed = "publish_failed" // pub/sub only: JetStream kept failing; the event is dropped
)

// rejectReasons lists every reason, so each counter exists from the start.
var rejectReasons = []string{reasonNotJSONObject, reasonBadEnvelope, reasonBadChannel, reasonNoData,
	reasonBadTenant, reasonBadTopic, reasonTooLarge, reasonPublishFailed}

// rejectError is an event that can never be published; reason is its label.
type rejectError struct {
	reason string
	err    error
}

func (e *rejectError) Error() string { return e.reason + ": " + e.err.Error() }
func (e *rejectError) Unwrap() error { return e.err }

func reject(reason, format string, args ...any) error {
	return &rejectError{reason: reason, err: fmt.Errorf(format, args...)}
}

// reasonOf returns the reject reason of err, classifying the cluster's
// "can never be published" sentinels; "" means err is transient.
func reasonOf(err error) string {
	var re *rejectError
	switch {
	case errors.As(err, &re):
		return re.reason
	case errors.Is(err, cluster.ErrBadTenant):
		return reasonBadTenant
	case errors.Is(err, cluster.ErrBadTopic):
		return reasonBadTopic
	case errors.Is(err, cluster.ErrPayloadTooLarge):
		return reasonTooLarge
	}
	return ""
}

// event is what one Redis message or entry becomes in JetStream.
type event struct {
	tenant, topic string
	data          []byte
	msgID         string // "" for none
}

// envelope is FraiseQL's legacy event envelope, as its Redis event bus
// writes it: {"id","event_type","data","channel","timestamp",
// "correlation_id"} and optionally "tenant_id". Only id, data, channel and
// tenant_id matter here.
type envelope struct {
	id       string // "" when absent
	channel  string
	tenantID string // "" when absent
	data     json.RawMessage
}

// decodeObject parses body as a JSON object, keeping the values raw.
func decodeObject(body []byte) (map[string]json.RawMessage, error) {
	var obj map[string]json.RawMessage
	b := bytes.TrimSpace(body)
	if len(b) == 0 || b[0] != '{' {
		return nil, reject(reasonNotJSONObject, "body is not a JSON object")
	}
	if err := json.Unmarshal(b, &obj); err != nil {
		return nil, reject(reasonNotJSONObject, "body is not a JSON object: %v", err)
	}
	return obj, nil
}

// isEnvelope reports whether obj is shaped as a legacy envelope: it has
// "event_type", "channel" and "data". An event body with all three keys
// would be taken for an envelope; FraiseQL events have no such shape.
func isEnvelope(obj map[string]json.RawMessage) bool {
	_, e := obj["event_type"]
	_, c := obj["channel"]
	_, d := obj["data"]
	return e && c && d
}

// parseEnvelope reads the fields of an envelope-shaped object.
func parseEnvelope(obj map[string]json.RawMessage) (envelope, error) {
	var env envelope
	if err := json.Unmarshal(obj["channel"], &env.channel); err != nil {
		return env, reject(reasonBadEnvelope, "envelope channel is not a string")
	}
	if raw, ok := obj["id"]; ok && !isNull(raw) {
		id, err := scalarString(raw)
		if err != nil {
			return env, reject(reasonBadEnvelope, "envelope id: %v", err)
		}
		env.id = id
	}
	if raw, ok := obj["tenant_id"]; ok && !isNull(raw) {
		t, err := scalarString(raw)
		if err != nil {
			return env, reject(reasonBadEnvelope, "envelope tenant_id: %v", err)
		}
		env.tenantID = t
	}
	env.data = bytes.TrimSpace(obj["data"])
	if len(env.data) == 0 || env.data[0] != '{' {
		return env, reject(reasonNotJSONObject, "envelope data is not a JSON object")
	}
	return env, nil
}

// scalarString returns a JSON string's value or a JSON number's text.
func scalarString(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", err
		}
		return s, nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return "", fmt.Errorf("not a string or number")
	}
	return n.String(), nil
}

func isNull(raw json.RawMessage) bool { return string(bytes.TrimSpace(raw)) == "null" }

// fromEnvelope turns an envelope into an event; defaultTenant applies
// when it has no tenant_id.
func fromEnvelope(env envelope, defaultTenant string) event {
	ev := event{tenant: env.tenantID, topic: env.channel, data: env.data}
	if ev.tenant == "" {
		ev.tenant = defaultTenant
	}
	if env.id != "" {
		ev.msgID = "redis-" + env.id
	}
	return ev
}

// parseChannel splits a pub/sub channel "<prefix>:<tenant>:<topic>". The
// topic is everything after the second ':' (it may hold more ':').
func parseChannel(prefix, channel string) (tenant, topic string, ok bool) {
	rest, ok := strings.CutPrefix(channel, prefix+":")
	if !ok {
		return "", "", false
	}
	tenant, topic, ok = strings.Cut(rest, ":")
	if !ok || tenant == "" || topic == "" {
		return "", "", false
	}
	return tenant, topic, true
}

// pubsubEvent turns a pub/sub message into an event. legacy is true for a
// message on a LegacyChannels channel, which must carry an envelope.
func pubsubEvent(cfg *Config, channel string, payload []byte, legacy bool) (event, error) {
	obj, err := decodeObject(payload)
	if err != nil {
		return event{}, err
	}
	if isEnvelope(obj) {
		env, err := parseEnvelope(obj)
		if err != nil {
			return event{}, err
		}
		return fromEnvelope(env, cfg.Tenant), nil
	}
	if legacy {
		return event{}, reject(reasonBadEnvelope, "message on legacy channel %q is not an envelope", channel)
	}
	tenant, topic, ok := parseChannel(cfg.Prefix, channel)
	if !ok {
		return event{}, reject(reasonBadChannel, "channel %q is not %s:<tenant>:<topic>", channel, cfg.Prefix)
	}
	return event{tenant: tenant, topic: topic, data: bytes.TrimSpace(payload)}, nil
}

// streamTopic is a stream key's topic: the key after "<prefix>:events:",
// or the whole key when it does not start so.
func streamTopic(prefix, key string) string {
	if t, ok := strings.CutPrefix(key, prefix+":events:"); ok {
		return t
	}
	return key
}

// maxMsgID keeps dedup ids well inside the cluster's limit (1024 bytes).
const maxMsgID = 512

// streamMsgID is the dedup id of a stream entry.
func streamMsgID(key, id string) string {
	s := "redis-stream-" + key + "-" + id
	if len(s) > maxMsgID {
		s = "redis-stream-h" + shortHash(key) + "-" + id
	}
	return s
}

// streamEvent turns a stream entry (its fields) into an event. The "data"
// field holds the event body or an envelope; the topic is the key's.
func streamEvent(cfg *Config, key, id string, values map[string]any) (event, error) {
	raw, ok := values["data"]
	if !ok {
		return event{}, reject(reasonNoData, "entry has no data field")
	}
	var body []byte
	switch v := raw.(type) {
	case string:
		body = []byte(v)
	case []byte:
		body = v
	default:
		return event{}, reject(reasonNoData, "entry data is a %T", raw)
	}
	obj, err := decodeObject(body)
	if err != nil {
		return event{}, err
	}
	ev := event{tenant: cfg.Tenant, topic: streamTopic(cfg.Prefix, key), data: bytes.TrimSpace(body), msgID: streamMsgID(key, id)}
	if isEnvelope(obj) {
		env, err := parseEnvelope(obj)
		if err != nil {
			return event{}, err
		}
		ev.data = env.data
		if env.tenantID != "" {
			ev.tenant = env.tenantID
		}
	}
	return ev, nil
}
