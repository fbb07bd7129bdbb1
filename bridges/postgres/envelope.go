package postgres

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/fraiseql/subscriptions/cluster"
)

// legacyChannelPrefix is the prefix FraiseQL put on NOTIFY channel names.
const legacyChannelPrefix = "fraiseql_"

// maxMsgIDLen keeps a dedup id well inside cluster's limit (1 KiB);
// an envelope id that would make it longer is hashed.
const maxMsgIDLen = 200

// Reasons an event is rejected; they label the rejected metric and fill
// dead_letter.reason. The names are the Redis bridge's where the meaning
// is the same.
const (
	reasonBadEnvelope   = "bad_envelope"
	reasonBadTenant     = "bad_tenant"         // not one subject token of [A-Za-z0-9_-], 1 to 64 bytes
	reasonBadTopic      = "bad_topic"          // empty token, wildcard, whitespace, control character or too long
	reasonTenantDenied  = "tenant_not_allowed" // a NOTIFY envelope names a tenant its channel may not write to
	reasonTopicDenied   = "topic_not_allowed"  // a NOTIFY envelope's topic is outside its channel's topics
	reasonNotObject     = "payload_not_object"
	reasonTooLarge      = "payload_too_large"
	reasonMissingData   = "missing_data"
	reasonTemplateError = "bad_template"
)

// notifyReasons are the reasons a NOTIFY can be refused for, so that
// each counter exists from the start.
var notifyReasons = []string{reasonBadEnvelope, reasonMissingData, reasonNotObject, reasonBadTenant,
	reasonTenantDenied, reasonBadTopic, reasonTopicDenied, reasonTooLarge}

// errPoison marks an event that can never be published; its text is the reason.
type errPoison string

func (e errPoison) Error() string { return string(e) }

// rejectError is a NOTIFY refused before publishing: reason labels the
// metric and the dead letter, err says why (naming the setting) for the log.
type rejectError struct {
	reason string
	err    error
}

func (e *rejectError) Error() string { return e.reason + ": " + e.err.Error() }

func reject(reason, format string, args ...any) error {
	return &rejectError{reason: reason, err: fmt.Errorf(format, args...)}
}

// reasonOf is the reason label of an errPoison or a rejectError.
func reasonOf(err error) string {
	var re *rejectError
	if errors.As(err, &re) {
		return re.reason
	}
	return err.Error()
}

// Envelope is FraiseQL's legacy event envelope, as sent on NOTIFY
// channels (and Redis pub/sub).
type Envelope struct {
	ID            json.RawMessage `json:"id"` // string or number
	EventType     string          `json:"event_type"`
	Data          json.RawMessage `json:"data"`
	Channel       string          `json:"channel"`
	Timestamp     string          `json:"timestamp"`
	CorrelationID string          `json:"correlation_id"`
	// TenantID is a string or a number; absent or null means none.
	TenantID json.RawMessage `json:"tenant_id"`
	// TraceParent is the publisher's W3C trace context, carried on to
	// the nodes; absent means none.
	TraceParent string `json:"traceparent"`
}

// Event is what a source hands to the stream.
type Event struct {
	Tenant, Topic string
	Data          []byte
	MsgID         string // "" means no dedup
	TraceParent   string // the source's W3C traceparent; "" means none
}

// notifyEvent turns a NOTIFY payload received on channel, which s
// declares, into an event. The payload is an envelope whose data (a JSON
// object) is the body. The tenant is its tenant_id, when present a valid
// tenant that s allows, else s's tenant; the topic is its channel, or the
// channel's name minus "fraiseql_" when that is empty, a valid topic
// that s allows. The dedup id is the envelope id within that tenant and
// topic (notifyMsgID). A payload that cannot become an event is an
// errPoison or a rejectError; a refused event still carries the tenant
// and topic it named, for the dead letter.
func (s *legacySource) notifyEvent(channel string, payload []byte) (Event, error) {
	var env Envelope
	dec := json.NewDecoder(bytes.NewReader(payload))
	if err := dec.Decode(&env); err != nil || dec.More() {
		return Event{}, errPoison(reasonBadEnvelope)
	}
	ev := Event{Tenant: s.Tenant, Topic: env.Channel, Data: env.Data, TraceParent: env.TraceParent}
	if ev.Topic == "" {
		ev.Topic = channelTopic(channel)
	}
	id, err := scalarString(env.ID)
	if err != nil {
		return ev, reject(reasonBadEnvelope, "envelope id on channel %q: %v", channel, err)
	}
	tenant, err := scalarString(env.TenantID)
	if err != nil {
		return ev, reject(reasonBadEnvelope, "envelope tenant_id on channel %q: %v", channel, err)
	}
	if isNull(env.Data) {
		return ev, errPoison(reasonMissingData)
	}
	if !isObject(env.Data) {
		return ev, errPoison(reasonNotObject)
	}
	if !isNull(env.TenantID) {
		ev.Tenant = tenant
		if err := cluster.ValidateTenant(tenant); err != nil {
			return ev, reject(reasonBadTenant, "envelope tenant_id on channel %q: %v", channel, err)
		}
		if !s.AllowTenant(tenant) {
			return ev, reject(reasonTenantDenied, "envelope tenant_id %q on channel %q: %s", tenant, channel, s.tenantRule())
		}
	}
	if err := cluster.ValidateTopic(ev.Topic); err != nil {
		return ev, reject(reasonBadTopic, "envelope topic on channel %q: %v", channel, err)
	}
	if !s.AllowTopic(ev.Topic) {
		return ev, reject(reasonTopicDenied, "envelope topic %q on channel %q is outside %s.topics %q", ev.Topic, channel, s.name, s.Topics)
	}
	if id != "" {
		ev.MsgID = notifyMsgID(ev.Tenant, ev.Topic, id)
	}
	return ev, nil
}

// channelTopic is the topic of a legacy channel: its name minus "fraiseql_".
func channelTopic(channel string) string {
	if t := strings.TrimPrefix(channel, legacyChannelPrefix); t != "" {
		return t
	}
	return channel
}

// scalarString returns a JSON string's value or a JSON number's text; ""
// for absent or null.
func scalarString(raw json.RawMessage) (string, error) {
	if isNull(raw) {
		return "", nil
	}
	raw = bytes.TrimSpace(raw)
	if raw[0] == '"' {
		var s string
		err := json.Unmarshal(raw, &s)
		return s, err
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return "", errors.New("neither a string nor a number")
	}
	return n.String(), nil
}

// isNull reports whether raw is absent or JSON null.
func isNull(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) == 0 || string(raw) == "null"
}

// notifyMsgID is the dedup id of a NOTIFY envelope: its id within its
// tenant and topic, under a prefix of its own ("pgn-"), so that no
// envelope can suppress (by reusing an id) an outbox row ("pg-<id>"), a
// change-log row ("pgcl-<pk>"), a Redis event or an event of a tenant or
// topic it may not write to. Long ids are hashed.
func notifyMsgID(tenant, topic, id string) string {
	scope := "pgn-" + shortHash(tenant, topic) + "-"
	if len(scope)+len(id) > maxMsgIDLen {
		sum := sha256.Sum256([]byte(id))
		return scope + "h" + hex.EncodeToString(sum[:])
	}
	return scope + id
}

// shortHash is 16 hex digits of SHA-256 over parts, each one terminated
// by a byte that no tenant or topic holds.
func shortHash(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0xff})
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// isObject reports whether data is a JSON object (and nothing after it).
func isObject(data []byte) bool {
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return false
	}
	return json.Valid(data)
}

// topicToken makes a value one subject token: characters that would
// change the subject's shape ('.', '*', '>', whitespace, controls) become
// '_'. An empty value becomes "_".
func topicToken(v string) string {
	if v == "" {
		return "_"
	}
	return strings.Map(func(r rune) rune {
		if r == '.' || r == '*' || r == '>' || r <= ' ' || r == 0x7f {
			return '_'
		}
		return r
	}, v)
}

var templateVars = []string{"entity_type", "entity_id", "operation"}

// checkTemplate reports a change-log topic template with unknown or
// unbalanced placeholders.
func checkTemplate(tpl string) error {
	vals := map[string]string{}
	for _, v := range templateVars {
		vals[v] = "x"
	}
	_, err := expandTemplate(tpl, vals)
	return err
}

// expandTemplate replaces each {name} in tpl by topicToken(vals[name]).
func expandTemplate(tpl string, vals map[string]string) (string, error) {
	var b strings.Builder
	for {
		i := strings.IndexByte(tpl, '{')
		if i < 0 {
			if strings.IndexByte(tpl, '}') >= 0 {
				return "", fmt.Errorf("unbalanced '}' in %q", tpl)
			}
			b.WriteString(tpl)
			return b.String(), nil
		}
		j := strings.IndexByte(tpl[i:], '}')
		if j < 0 {
			return "", fmt.Errorf("unclosed '{' in %q", tpl)
		}
		if strings.IndexByte(tpl[:i], '}') >= 0 {
			return "", fmt.Errorf("unbalanced '}' in %q", tpl)
		}
		name := tpl[i+1 : i+j]
		v, ok := vals[name]
		if !ok {
			return "", fmt.Errorf("unknown placeholder {%s} (want one of {entity_type}, {entity_id}, {operation})", name)
		}
		b.WriteString(tpl[:i])
		b.WriteString(topicToken(v))
		tpl = tpl[i+j+1:]
	}
}
