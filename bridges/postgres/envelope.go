package postgres

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// legacyChannelPrefix is the prefix FraiseQL put on NOTIFY channel names.
const legacyChannelPrefix = "fraiseql_"

// maxMsgIDLen keeps a dedup id well inside cluster's limit (1 KiB);
// longer ids are hashed.
const maxMsgIDLen = 200

// Reasons an event is rejected; they label the rejected metric and fill
// dead_letter.reason.
const (
	reasonBadEnvelope   = "bad_envelope"
	reasonBadTenant     = "bad_tenant"
	reasonBadTopic      = "bad_topic"
	reasonNotObject     = "payload_not_object"
	reasonTooLarge      = "payload_too_large"
	reasonMissingData   = "missing_data"
	reasonTemplateError = "bad_template"
)

// errPoison marks an event that can never be published; its text is the reason.
type errPoison string

func (e errPoison) Error() string { return string(e) }

// Envelope is FraiseQL's legacy event envelope, as sent on NOTIFY
// channels (and Redis pub/sub).
type Envelope struct {
	ID            json.RawMessage `json:"id"` // string or number
	EventType     string          `json:"event_type"`
	Data          json.RawMessage `json:"data"`
	Channel       string          `json:"channel"`
	Timestamp     string          `json:"timestamp"`
	CorrelationID string          `json:"correlation_id"`
	TenantID      string          `json:"tenant_id"`
}

// Event is what a source hands to the stream.
type Event struct {
	Tenant, Topic string
	Data          []byte
	MsgID         string // "" means no dedup
}

// ParseEnvelope turns a NOTIFY payload received on channel into an event:
// tenant is the envelope's tenant_id or defaultTenant; topic is its
// channel, or the channel name minus "fraiseql_" when that is empty; the
// body is data, which must be a JSON object; the dedup id is the envelope
// id when set. A payload that cannot become an event is an errPoison.
func ParseEnvelope(channel string, payload []byte, defaultTenant string) (Event, error) {
	var env Envelope
	dec := json.NewDecoder(bytes.NewReader(payload))
	if err := dec.Decode(&env); err != nil || dec.More() {
		return Event{}, errPoison(reasonBadEnvelope)
	}
	ev := Event{Tenant: env.TenantID, Topic: env.Channel, Data: env.Data}
	if ev.Tenant == "" {
		ev.Tenant = defaultTenant
	}
	if ev.Topic == "" {
		ev.Topic = channelTopic(channel)
	}
	if len(bytes.TrimSpace(env.Data)) == 0 || string(env.Data) == "null" {
		return Event{}, errPoison(reasonMissingData)
	}
	if !isObject(env.Data) {
		return Event{}, errPoison(reasonNotObject)
	}
	id, err := envelopeID(env.ID)
	if err != nil {
		return Event{}, errPoison(reasonBadEnvelope)
	}
	ev.MsgID = dedupID(id)
	return ev, nil
}

// channelTopic is the topic of a legacy channel: its name minus "fraiseql_".
func channelTopic(channel string) string {
	if t := strings.TrimPrefix(channel, legacyChannelPrefix); t != "" {
		return t
	}
	return channel
}

func envelopeID(raw json.RawMessage) (string, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	if raw[0] == '"' {
		var s string
		err := json.Unmarshal(raw, &s)
		return s, err
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return "", errors.New("id is neither a string nor a number")
	}
	return n.String(), nil
}

// dedupID bounds an id's length, hashing long ones.
func dedupID(id string) string {
	if len(id) <= maxMsgIDLen {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return "sha256-" + hex.EncodeToString(sum[:])
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
