package ws_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/fraiseql/subscriptions/ws"
)

// echoSession answers every subscription with one result, then completes it.
type echoSession struct{}

func (echoSession) Init(context.Context, *ws.Conn, json.RawMessage) (json.RawMessage, error) {
	return nil, nil
}

func (echoSession) Subscribe(_ context.Context, sub *ws.Subscription, req ws.Request) error {
	sub.Next([]byte(`{"data":{"echo":"hello"}}`))
	sub.Complete()
	return nil
}

func (echoSession) Unsubscribe(*ws.Subscription) {}
func (echoSession) Pong(json.RawMessage)         {}
func (echoSession) Close(reason ws.CloseReason)  {}

type handler struct{}

func (handler) Open(r *http.Request) (ws.Session, error) {
	if r.Header.Get("X-Over-Capacity") != "" {
		return nil, &ws.HTTPError{Status: http.StatusServiceUnavailable, Message: "over capacity", RetryAfter: 5 * time.Second}
	}
	return echoSession{}, nil
}

func Example() {
	srv := ws.NewServer(handler{}, ws.Options{InitTimeout: 5 * time.Second})
	mux := http.NewServeMux()
	mux.Handle("/graphql", srv)
	// ... http.Server{Handler: mux}.ListenAndServe(); then, on SIGTERM:
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	fmt.Println(srv.Shutdown(ctx), srv.Conns())
	// Output: <nil> 0
}
