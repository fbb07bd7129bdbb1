package ws

import (
	"strings"
	"testing"
	"time"
)

// ws.sse_keep_alive: 0 (the default) or between MinSSEKeepAlive and
// MaxSSEKeepAlive, each bound tested at limit-1, limit and limit+1.
func TestSSEKeepAliveBounds(t *testing.T) {
	for _, tc := range []struct {
		d  time.Duration
		ok bool
	}{
		{0, true},
		{MinSSEKeepAlive - time.Millisecond, false},
		{MinSSEKeepAlive, true},
		{MinSSEKeepAlive + time.Millisecond, true},
		{MaxSSEKeepAlive - time.Millisecond, true},
		{MaxSSEKeepAlive, true},
		{MaxSSEKeepAlive + time.Millisecond, false},
		{-time.Second, false},
	} {
		err := Options{SSEKeepAlive: tc.d}.Validate()
		if (err == nil) != tc.ok || err != nil && !strings.Contains(err.Error(), "ws.sse_keep_alive") {
			t.Errorf("SSEKeepAlive %v: got %v, want ok=%v", tc.d, err, tc.ok)
		}
	}
	if got := (Options{}).withDefaults().SSEKeepAlive; got != DefaultSSEKeepAlive {
		t.Errorf("default: got %v", got)
	}
}

// A `next` event carries the payload's cursor as its id; a payload line
// break starts a new data line; a payload without a cursor has no id.
func TestAppendSSENext(t *testing.T) {
	for _, tc := range []struct{ payload, want string }{
		{`{"data":{"a":1},"extensions":{"cursor":"AbC-_9"}}`,
			"event: next\ndata: {\"data\":{\"a\":1},\"extensions\":{\"cursor\":\"AbC-_9\"}}\nid: AbC-_9\n\n"},
		{"{\"data\":\n{\"a\":1}}", "event: next\ndata: {\"data\":\ndata: {\"a\":1}}\n\n"},
		{`{"errors":[]}`, "event: next\ndata: {\"errors\":[]}\n\n"},
		{`{"data":{},"extensions":{"cursor":"Xy","dropped":12}}`,
			"event: next\ndata: {\"data\":{},\"extensions\":{\"cursor\":\"Xy\",\"dropped\":12}}\nid: Xy\n\n"},
		{`{"data":{"cursor":"a\"b"}}`, "event: next\ndata: {\"data\":{\"cursor\":\"a\\\"b\"}}\n\n"},
	} {
		if got := string(appendSSENext(nil, sseNextPrefix, []byte(tc.payload))); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}
