package cluster_test

import (
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/fraiseql/subscriptions/cluster"
	"github.com/fraiseql/subscriptions/cluster/clustertest"
)

// TestEmbeddedRefusesAnonymousClients: a local process that finds the
// embedded server's port must not be able to read every tenant's events,
// publish into any tenant or purge the stream.
func TestEmbeddedRefusesAnonymousClients(t *testing.T) {
	c := open(t, cluster.Config{})
	nc, err := nats.Connect(c.ClientURL(), nats.MaxReconnects(0), nats.Timeout(2*time.Second))
	if err == nil {
		defer nc.Close()
		sub, _ := nc.SubscribeSync("fraiseql.>")
		nc.Flush()
		mustPublish(t, c, "acme", "chat.r1", `{"secret":1}`, "")
		if m, err := sub.NextMsg(2 * time.Second); err == nil {
			t.Errorf("anonymous client read another tenant's event: %s %s", m.Subject, m.Data)
		}
		if js, err := nc.JetStream(); err == nil {
			if err := js.PurgeStream("EVENTS"); err == nil {
				t.Errorf("anonymous client purged the stream")
			}
		}
		t.Fatalf("anonymous connect to the embedded server succeeded")
	}
	if !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("anonymous connect = %v, want an authorization error", err)
	}
	// A wrong password is refused too.
	u, _ := url.Parse(c.EmbeddedURL())
	u.User = url.UserPassword(cluster.EmbeddedUser, "guess")
	if nc, err := nats.Connect(u.String(), nats.MaxReconnects(0)); !errors.Is(err, nats.ErrAuthorization) {
		if nc != nil {
			nc.Close()
		}
		t.Fatalf("connect with a wrong password = %v, want an authorization error", err)
	}

	// The generated credentials work, for any NATS client.
	if strings.Contains(c.ClientURL(), "@") {
		t.Fatalf("ClientURL %q carries credentials", c.ClientURL())
	}
	nc, err = nats.Connect(c.EmbeddedURL(), nats.MaxReconnects(0))
	if err != nil {
		t.Fatalf("connect with EmbeddedURL: %v", err)
	}
	defer nc.Close()
	sub, err := nc.SubscribeSync("fraiseql.>")
	if err != nil {
		t.Fatal(err)
	}
	nc.Flush()
	mustPublish(t, c, "acme", "chat.r1", `{}`, "")
	if _, err := sub.NextMsg(5 * time.Second); err != nil {
		t.Fatalf("authenticated client: %v", err)
	}
}

func TestEmbeddedPasswordIsNewAtEveryStart(t *testing.T) {
	dir := t.TempDir()
	c1 := open(t, cluster.Config{Embedded: cluster.EmbeddedConfig{StoreDir: dir}})
	u1 := c1.EmbeddedURL()
	c1.Close()
	c2 := open(t, cluster.Config{Embedded: cluster.EmbeddedConfig{StoreDir: dir}})
	p1, _ := mustParseURL(t, u1).User.Password()
	p2, _ := mustParseURL(t, c2.EmbeddedURL()).User.Password()
	if len(p1) < 40 || p1 == p2 {
		t.Fatalf("passwords %q then %q: want long and different at each start", p1, p2)
	}
	if ext := open(t, cluster.Config{URL: clustertest.RunServer(t)}); ext.EmbeddedURL() != "" {
		t.Fatalf("EmbeddedURL on an external server = %q", ext.EmbeddedURL())
	}
}

func mustParseURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		t.Fatalf("url %q: %v", s, err)
	}
	return u
}
