package redis

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/fraiseql/subscriptions/cluster"
)

// Reasons an event is rejected: the label values of
// fraiseql_bridge_events_rejected_total{reason} and the "reason" field of a
// dead-letter entry.
const (
	reasonNotJSONObject = "not_json_object"    // the body (or an envelope's data) is not a JSON object
	reasonBadEnvelope   = "bad_envelope"       // an envelope field has the wrong type
	reasonBadChannel    = "bad_channel"        // a pub/sub channel is not "<prefix>:<tenant>:<topic>"
	reasonNoData        = "no_data"            // a stream entry has no "data" field
	reasonBadTenant     = "bad_tenant"         // not one subject token of [A-Za-z0-9_-], 1 to 64 bytes
	reasonBadTopic      = "bad_topic"          // empty token, wildcard, whitespace, control character or too long
	reasonTenantDenied  = "tenant_not_allowed" // a legacy envelope names a tenant its source may not write to
	reasonTopicDenied   = "topic_not_allowed"  // a legacy source's event has a topic outside its topics
	reasonTooLarge      = "too_large"
	reasonPublishFailed = "publish_failed" // pub/sub only: JetStream kept failing; the event is dropped
)

// rejectReasons lists every reason, so each counter exists from the start.
var rejectReasons = []string{reasonNotJSONObject, reasonBadEnvelope, reasonBadChannel, reasonNoData,
	reasonBadTenant, reasonBadTopic, reasonTenantDenied, reasonTopicDenied, reasonTooLarge, reasonPublishFailed}

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
	traceparent   string // the source's W3C traceparent, "" for none
	// envelopeShaped: the body of a non-legacy source looks like an
	// envelope; it is forwarded as it is (worth a warning to operators
	// who forgot to declare a legacy source).
	envelopeShaped bool
}

// envelope is FraiseQL's legacy event envelope, as its Redis event bus
// writes it: {"id","event_type","data","channel","timestamp",
// "correlation_id"} and optionally "tenant_id". Only id, data, channel and
// tenant_id matter here.
type envelope struct {
	id        string // "" when absent
	channel   string
	tenantID  string
	hasTenant bool // tenant_id is present and not null
	data      json.RawMessage
	// traceparent is the optional "traceparent" string: the W3C trace
	// context of the publisher, carried on to the nodes.
	traceparent string
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
		env.tenantID, env.hasTenant = t, true
	}
	if raw, ok := obj["traceparent"]; ok {
		json.Unmarshal(raw, &env.traceparent) // not a string: no trace (cluster.ValidTraceParent drops bad ones too)
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

// pubsubEvent turns a pub/sub message into an event. src is the legacy
// source that declares the channel, or nil. On a channel of the patterns
// the channel decides tenant and topic and the body is the event, as it
// is, whatever its shape; on a legacy channel the body must be an
// envelope, routed by legacyEvent.
func pubsubEvent(cfg *Config, channel string, payload []byte, src *legacySource) (event, error) {
	obj, err := decodeObject(payload)
	if err != nil {
		return event{}, err
	}
	if src != nil {
		if !isEnvelope(obj) {
			return event{}, reject(reasonBadEnvelope, "message on legacy channel %q is not an envelope", channel)
		}
		env, err := parseEnvelope(obj)
		if err != nil {
			return event{}, err
		}
		ev, err := src.legacyEvent(env, env.channel, "legacy channel "+strconv.Quote(channel))
		if err != nil {
			return event{}, err
		}
		if env.id != "" {
			ev.msgID = envelopeMsgID(ev.tenant, ev.topic, env.id)
		}
		return ev, nil
	}
	tenant, topic, ok := parseChannel(cfg.Prefix, channel)
	if !ok {
		return event{}, reject(reasonBadChannel, "channel %q is not %s:<tenant>:<topic>", channel, cfg.Prefix)
	}
	if err := validateRoute(tenant, topic); err != nil {
		return event{}, err
	}
	return event{tenant: tenant, topic: topic, data: bytes.TrimSpace(payload), envelopeShaped: isEnvelope(obj)}, nil
}

// legacyEvent routes an envelope of legacy source s: its tenant_id when
// present (a valid tenant that s allows) or else s's tenant, and topic (a
// valid topic that s allows). where names the channel or key for errors.
func (s *legacySource) legacyEvent(env envelope, topic, where string) (event, error) {
	tenant := s.Tenant
	if env.hasTenant {
		if err := cluster.ValidateTenant(env.tenantID); err != nil {
			return event{}, reject(reasonBadTenant, "envelope tenant_id on %s: %v", where, err)
		}
		if !s.AllowTenant(env.tenantID) {
			return event{}, reject(reasonTenantDenied, "envelope tenant_id %q on %s: %s", env.tenantID, where, s.tenantRule())
		}
		tenant = env.tenantID
	}
	ev, err := s.event(tenant, topic, env.data, where)
	ev.traceparent = env.traceparent
	return ev, err
}

// event checks an event of source s against its topics.
func (s *legacySource) event(tenant, topic string, data []byte, where string) (event, error) {
	if err := validateRoute(tenant, topic); err != nil {
		return event{}, err
	}
	if !s.AllowTopic(topic) {
		return event{}, reject(reasonTopicDenied, "topic %q on %s does not match %s.topics %q", topic, where, s.name, s.Topics)
	}
	return event{tenant: tenant, topic: topic, data: data}, nil
}

// tenantRule says which tenants s accepts, naming the setting.
func (s *legacySource) tenantRule() string {
	switch {
	case s.name == legacyConfigKey(-1):
		return fmt.Sprintf("%s accept only tenant %q; to allow more, declare the channel under bridges.redis.legacy with tenants", s.name, s.Tenant)
	case len(s.Tenants) == 0:
		return fmt.Sprintf("%s accepts only tenant %q; list more in %s.tenants", s.name, s.Tenant, s.name)
	}
	return fmt.Sprintf("neither %q nor in %s.tenants", s.Tenant, s.name)
}

// validateRoute checks tenant and topic as cluster.Subject will, so that
// a bad one is rejected with its reason before anything is published.
func validateRoute(tenant, topic string) error {
	if err := cluster.ValidateTenant(tenant); err != nil {
		return &rejectError{reason: reasonBadTenant, err: err}
	}
	if err := cluster.ValidateTopic(topic); err != nil {
		return &rejectError{reason: reasonBadTopic, err: err}
	}
	return nil
}

// envelopeMsgID is the dedup id of a legacy envelope: its id within its
// tenant and topic, so that no envelope can suppress (by reusing an id)
// an event of a tenant or topic it may not write to.
func envelopeMsgID(tenant, topic, id string) string {
	s := "redis-" + shortHash(tenant, topic) + "-" + id
	if len(s) > maxMsgID {
		s = "redis-" + shortHash(tenant, topic) + "-h" + shortHash(id)
	}
	return s
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

// streamEvent turns a stream entry (its fields) into an event. The key
// decides the topic. src is the legacy source that declares the key, or
// nil: then the tenant is Config.Tenant and the "data" field is the
// event, as it is. On a legacy key, "data" may be an envelope: its data
// is the event and its tenant_id, if present, the tenant (as s allows);
// its channel is ignored.
func streamEvent(cfg *Config, key, id string, values map[string]any, src *legacySource) (event, error) {
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
	topic := streamTopic(cfg.Prefix, key)
	if src == nil {
		if err := validateRoute(cfg.Tenant, topic); err != nil {
			return event{}, err
		}
		return event{tenant: cfg.Tenant, topic: topic, data: bytes.TrimSpace(body), msgID: streamMsgID(key, id),
			traceparent: entryTraceParent(values), envelopeShaped: isEnvelope(obj)}, nil
	}
	where := "legacy stream " + strconv.Quote(key)
	var ev event
	if isEnvelope(obj) {
		env, err := parseEnvelope(obj)
		if err != nil {
			return event{}, err
		}
		ev, err = src.legacyEvent(env, topic, where)
		if err != nil {
			return event{}, err
		}
	} else if ev, err = src.event(src.Tenant, topic, bytes.TrimSpace(body), where); err != nil {
		return event{}, err
	}
	ev.msgID = streamMsgID(key, id)
	if tp := entryTraceParent(values); tp != "" { // the entry's field wins over the envelope's
		ev.traceparent = tp
	}
	return ev, nil
}

// entryTraceParent is a stream entry's optional traceparent field.
func entryTraceParent(values map[string]any) string {
	switch v := values["traceparent"].(type) {
	case string:
		return v
	case []byte:
		return string(v)
	}
	return ""
}
