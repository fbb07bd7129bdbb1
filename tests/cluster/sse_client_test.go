//go:build chaos

package cluster

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
)

// sseHTTP is the SSE clients' HTTP client: one connection per stream, a
// bounded dial and response head, no bound on the stream itself.
var sseHTTP = &http.Client{Transport: &http.Transport{
	DialContext:           (&net.Dialer{Timeout: dialTimeout}).DialContext,
	DisableKeepAlives:     true,
	ResponseHeaderTimeout: dialTimeout,
}}

// connectSSE subscribes over GraphQL over SSE at the node of wsURL, with
// the last event id as Last-Event-ID, and reads the stream until it ends.
// A coded error in the stream (a `next` with errors, then `complete`)
// counts as on WebSocket; the client then reconnects with its cursor (the
// reconnection is the recovery).
func (c *client) connectSSE(ctx context.Context, wsURL string, rec *recovery) (string, error) {
	fields := "id"
	if c.cfg.withText {
		fields = "id text"
	}
	body, _ := json.Marshal(map[string]any{
		"query":     "subscription($room: ID!) { messageAdded(room: $room) { " + fields + " } }",
		"variables": map[string]any{"room": c.cfg.room},
	})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http"+strings.TrimPrefix(wsURL, "ws"), bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Content-Type", "application/json")
	c.mu.Lock()
	if c.cursor != "" {
		req.Header.Set("Last-Event-ID", c.cursor)
	}
	c.mu.Unlock()
	if rec != nil {
		rec.target = c.pub.lastAcked(c.cfg.room)
		rec.up = time.Now()
	}
	resp, err := sseHTTP.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %d", resp.StatusCode)
	}
	c.connected(wsURL)
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	var event, data string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			event = line[len("event: "):]
			continue
		case strings.HasPrefix(line, "data: "):
			data += line[len("data: "):]
			continue
		case line != "":
			continue // id (read from the payload's cursor), comments
		}
		ev, payload := event, data
		event, data = "", ""
		if until := c.pauseUntil.Load(); until != 0 {
			sleepCtx(ctx, time.Until(time.Unix(0, until)))
			c.pauseUntil.CompareAndSwap(until, 0)
		}
		now := time.Now()
		switch ev {
		case "next":
			var p nextPayload
			if json.Unmarshal([]byte(payload), &p) == nil && len(p.Errors) > 0 {
				if !c.countError(p.Errors[0].Extensions.Code) {
					return "", nil
				}
				sleepCtx(ctx, jitter(200*time.Millisecond))
				return "error " + p.Errors[0].Extensions.Code, nil
			}
			if bad := c.next([]byte(payload), now, rec); bad != "" {
				return bad, nil
			}
		case "complete":
			return "complete", nil
		}
	}
	if err := sc.Err(); err != nil {
		return errReason(err), nil
	}
	return "eof/closed", nil
}
