//go:build linux

package loadgen

import (
	"strings"
	"testing"
)

func TestValidateLoopbackOnly(t *testing.T) {
	tests := []struct {
		name, target, nats, wantErr string
	}{
		{"loopback", "ws://127.0.0.1:8080/graphql", "nats://127.0.0.1:4222", ""},
		{"localhost", "ws://localhost:8080/graphql", "nats://127.0.0.1:4222", ""},
		{"remote ws", "ws://10.0.0.5:8080/graphql", "nats://127.0.0.1:4222", "only loopback"},
		{"remote name", "ws://example.com:8080/graphql", "nats://127.0.0.1:4222", "only loopback"},
		{"remote nats", "ws://127.0.0.1:8080/graphql", "nats://192.168.1.1:4222", "only loopback"},
		{"wss", "wss://127.0.0.1:8080/graphql", "nats://127.0.0.1:4222", "scheme"},
		{"no port", "ws://127.0.0.1/graphql", "nats://127.0.0.1:4222", "port"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Defaults()
			c.Target, c.NATSURL = tc.target, tc.nats
			checkValidate(t, &c, tc.wantErr)
		})
	}
}

func TestValidateBounds(t *testing.T) {
	c := Defaults()
	c.Spawn = true
	c.Conns = 30_000
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "-conns") {
		t.Fatalf("err = %v, want the -max-conns cap", err)
	}
	c = Defaults()
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "-spawn") {
		t.Fatalf("err = %v, want target or spawn", err)
	}
	c = Defaults()
	c.Spawn, c.NodeEnv = true, []string{"NOEQUALS"}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "-node-env") {
		t.Fatalf("err = %v", err)
	}
}

func TestValidateServer(t *testing.T) {
	tests := []struct {
		name    string
		set     func(*Config)
		wantErr string
	}{
		{"centrifugo spawned", func(c *Config) { c.Spawn, c.CentrifugoBin = true, "/bin/centrifugo" }, ""},
		{"centrifugo running", func(c *Config) {
			c.Target, c.API, c.APIKey = "ws://127.0.0.1:8000/connection/websocket", "http://127.0.0.1:8000/api", "k"
		}, ""},
		{"no binary", func(c *Config) { c.Spawn = true }, "-centrifugo-bin"},
		{"no api", func(c *Config) { c.Target = "ws://127.0.0.1:8000/connection/websocket" }, "-api"},
		{"remote api", func(c *Config) {
			c.Target, c.API, c.APIKey = "ws://127.0.0.1:8000/connection/websocket", "http://10.0.0.1:8000/api", "k"
		}, "only loopback"},
		{"two subscriptions", func(c *Config) { c.Spawn, c.CentrifugoBin, c.Subs = true, "/bin/centrifugo", 2 }, "-subs"},
		{"unknown server", func(c *Config) { c.Spawn, c.Server = true, "hasura" }, "-server"},
		{"node settings", func(c *Config) {
			c.Spawn, c.CentrifugoBin, c.NodeEnv = true, "/bin/centrifugo", []string{"FRAISEQL_WS_WRITE_DELAY=100ms"}
		}, "-node-env"},
		{"api with spawn", func(c *Config) { c.Spawn, c.CentrifugoBin, c.APIKey = true, "/bin/centrifugo", "k" }, "-api"},
		{"centrifugo flags on the node", func(c *Config) { c.Server, c.Spawn, c.APIKey = ServerFraiseQL, true, "k" }, "-server"},
	}
	checkValidateCases(t, func(c *Config) { c.Server = ServerCentrifugo }, tests)
}

// checkValidateCases runs checkValidate on each case's Config: Defaults,
// then base, then the case's changes.
func checkValidateCases(t *testing.T, base func(*Config), tests []struct {
	name    string
	set     func(*Config)
	wantErr string
}) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := Defaults()
			base(&c)
			tc.set(&c)
			checkValidate(t, &c, tc.wantErr)
		})
	}
}

func TestValidateTransport(t *testing.T) {
	tests := []struct {
		name    string
		set     func(*Config)
		wantErr string
	}{
		{"sse spawned", func(c *Config) { c.Spawn = true }, ""},
		{"sse running", func(c *Config) { c.Target, c.NATSURL = "http://127.0.0.1:8080/graphql", "nats://127.0.0.1:4222" }, ""},
		{"sse with a ws target", func(c *Config) { c.Target, c.NATSURL = "ws://127.0.0.1:8080/graphql", "nats://127.0.0.1:4222" }, "-target"},
		{"sse remote", func(c *Config) { c.Target, c.NATSURL = "http://10.1.1.1:8080/graphql", "nats://127.0.0.1:4222" }, "only loopback"},
		{"sse on centrifugo", func(c *Config) { c.Spawn, c.Server, c.CentrifugoBin = true, ServerCentrifugo, "/bin/centrifugo" }, "-transport"},
		{"sse compressed", func(c *Config) { c.Spawn, c.Compress = true, true }, "-compress"},
		{"sse gzip", func(c *Config) { c.Spawn, c.Gzip = true, true }, ""},
		{"ws gzip", func(c *Config) { c.Transport, c.Spawn, c.Gzip = TransportWS, true, true }, "-gzip"},
		{"text payload", func(c *Config) { c.Spawn, c.PayloadKind = true, PayloadText }, ""},
		{"unknown payload kind", func(c *Config) { c.Spawn, c.PayloadKind = true, "lorem" }, "-payload-kind"},
		{"unknown", func(c *Config) { c.Spawn, c.Transport = true, "grpc" }, "-transport"},
		{"ws http target", func(c *Config) {
			c.Transport, c.Target, c.NATSURL = TransportWS, "http://127.0.0.1:8080/graphql", "nats://127.0.0.1:4222"
		}, "-target"},
		{"ws compressed", func(c *Config) { c.Transport, c.Spawn, c.Compress = TransportWS, true, true }, ""},
		{"centrifugo compressed", func(c *Config) {
			c.Transport, c.Spawn, c.Server, c.CentrifugoBin, c.Compress = TransportWS, true, ServerCentrifugo, "/bin/centrifugo", true
		}, ""},
		// One TCP connection per subscription: -conns × -subs ≤ -max-conns.
		{"sse sockets below the cap", func(c *Config) { c.Spawn, c.MaxConns, c.Conns, c.Subs = true, 10, 1, 9 }, ""},
		{"sse sockets at the cap", func(c *Config) { c.Spawn, c.MaxConns, c.Conns, c.Subs = true, 10, 1, 10 }, ""},
		{"sse sockets above the cap", func(c *Config) { c.Spawn, c.MaxConns, c.Conns, c.Subs = true, 10, 1, 11 }, "-subs"},
		{"ws subscriptions above the sse cap", func(c *Config) { c.Transport, c.Spawn, c.MaxConns, c.Conns, c.Subs = TransportWS, true, 10, 1, 11 }, ""},
	}
	checkValidateCases(t, func(c *Config) { c.Transport = TransportSSE }, tests)
}

// checkValidate fails t unless c.Validate returns no error (wantErr "")
// or one that mentions wantErr.
func checkValidate(t *testing.T, c *Config, wantErr string) {
	t.Helper()
	err := c.Validate()
	if wantErr == "" {
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	if err == nil || !strings.Contains(err.Error(), wantErr) {
		t.Fatalf("err = %v, want %q", err, wantErr)
	}
}
