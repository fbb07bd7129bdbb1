//go:build integration

package integration

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/fraiseql/subscriptions/cluster"
	"github.com/fraiseql/subscriptions/node"
)

// Drain: /readyz turns 503 at once while the node still accepts
// connections for the drain delay (the load balancer deregisters it),
// then refuses upgrades and closes the open connections with 1001 spread
// over the drain window, not all at once.
func TestDrainDeregistersThenClosesSpreadOut(t *testing.T) {
	const delay, window, clients = 2 * time.Second, time.Second, 10
	e := startNode(t, startNATS(t), func(c *node.Config, _ *cluster.Config) {
		c.DrainDelay, c.DrainWindow = delay, window
	})
	var closedAt []time.Time
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range clients {
		c := dialTransport(t, e.ws)
		c.subscribe("1", `subscription { messageAdded(room: "r1") { id } }`, nil, "")
		wg.Go(func() {
			c.expectClose(websocket.StatusGoingAway)
			mu.Lock()
			closedAt = append(closedAt, time.Now())
			mu.Unlock()
		})
	}
	time.Sleep(100 * time.Millisecond) // subscribed

	start := time.Now()
	done := make(chan error, 1)
	go func() { done <- e.node.Drain(context.Background()) }()
	waitFor(t, 200*time.Millisecond, "/readyz 503 at once", func() bool {
		_, code := httpGet(t, "http://"+e.node.Addr()+"/readyz")
		return code == http.StatusServiceUnavailable
	})
	// Inside the delay a new client is still served.
	late := dialTransport(t, e.ws)
	late.subscribe("1", `subscription { messageAdded(room: "r1") { id } }`, nil, "")
	// A live subscription gets the events published after it is active.
	waitFor(t, time.Second, "the late subscription", func() bool { return e.node.Stats().Subscriptions == clients+1 })
	e.publish("chat.r1", `{"id":"1","room":"r1"}`)
	if r := late.next("1"); len(r.Data) == 0 {
		t.Fatal("a client connected during the drain delay got no event")
	}
	time.Sleep(time.Until(start.Add(delay + 100*time.Millisecond)))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, e.ws, &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("upgrade after the delay: %v, want 503", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Drain: %v", err)
	}
	wg.Wait()
	slices.SortFunc(closedAt, time.Time.Compare)
	first, last := closedAt[0].Sub(start), closedAt[len(closedAt)-1].Sub(start)
	t.Logf("closes from %v to %v after Drain began", first, last)
	if first < delay {
		t.Errorf("first close at %v, before the drain delay %v", first, delay)
	}
	if spread := last - first; spread < window/2 {
		t.Errorf("closes spread over %v, want most of the %v window", spread, window)
	}
}
