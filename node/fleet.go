package node

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/fraiseql/subscriptions/cluster"
)

// fleet carries the admin API's disconnects and revocations to every node
// of the deployment: a disconnect is published on NATS ("_admin.<prefix>.
// disconnect", at most once, to the nodes connected at that moment); a
// revocation is stored in the KV bucket cluster.RevocationBucket, which
// every node watches, so that a node started later refuses the same
// tokens. A nil *fleet (admin API off, or before Start) acts on this node
// only.
type fleet struct {
	stopDisconnects func()
	stopRevocations func()
	revocations     *cluster.Revocations
	origin          string // this node's id prefix: it skips its own messages
}

// DefaultRevocationTTL is how long a stored revocation lasts by default
// (Config.RevocationTTL).
const DefaultRevocationTTL = 24 * time.Hour

const kindDisconnect = "disconnect"

// disconnectMsg is a disconnect published to the other nodes.
type disconnectMsg struct {
	Origin string `json:"origin"`
	Conn   string `json:"conn,omitempty"`
	Tenant string `json:"tenant,omitempty"`
	User   string `json:"user,omitempty"`
	Reason string `json:"reason"`
}

// revocationValue is a revocation as stored in the bucket.
type revocationValue struct {
	Before time.Time `json:"before"`
	Origin string    `json:"origin"` // the node that stored it applies it itself
}

// startFleet joins the deployment's admin actions: it applies the stored
// revocations before returning, then those of any node as they come.
func (n *Node) startFleet(ctx context.Context) (*fleet, error) {
	f := &fleet{origin: n.idPrefix}
	var err error
	if f.revocations, err = n.cl.Revocations(ctx, n.cfg.RevocationTTL); err != nil {
		return nil, err
	}
	f.stopRevocations, err = f.revocations.Watch(ctx, func(tenant, user string, value []byte) {
		var v revocationValue
		if err := json.Unmarshal(value, &v); err != nil || v.Before.IsZero() {
			n.log.Warn("admin: ignoring a stored revocation that is not one", "tenant", tenant, "user", user)
			return
		}
		if v.Origin == f.origin {
			return
		}
		n.revoke(userKey{tenant: tenant, user: user}, v.Before)
	})
	if err != nil {
		return nil, err
	}
	f.stopDisconnects, err = n.cl.SubscribeAdmin(kindDisconnect, func(data []byte) {
		var m disconnectMsg
		switch err := json.Unmarshal(data, &m); {
		case err != nil, m.Conn == "" && m.Tenant == "", checkReason(m.Reason) != nil:
			n.log.Warn("admin: ignoring a cluster disconnect that is not one")
		case m.Origin == f.origin: // applied when it was sent
		default:
			if closed := n.disconnect(m.Conn, m.Tenant, m.User, m.Reason); closed > 0 {
				n.log.Info("admin: closed connections on another node's request", "closed", closed, "origin", m.Origin)
			}
		}
	})
	if err != nil {
		f.stopRevocations()
		return nil, err
	}
	return f, nil
}

// stop leaves the deployment's admin actions; it is a no-op on nil.
func (f *fleet) stop() {
	if f != nil {
		f.stopDisconnects()
		f.stopRevocations()
	}
}

// publishDisconnect tells the other nodes to disconnect what this node
// just did.
func (f *fleet) publishDisconnect(n *Node, conn, tenant, user, reason string) error {
	if f == nil {
		return nil
	}
	b, _ := json.Marshal(disconnectMsg{Origin: f.origin, Conn: conn, Tenant: tenant, User: user, Reason: reason})
	if err := n.cl.PublishAdmin(kindDisconnect, b); err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	return nil
}

// storeRevocation stores a revocation for every node (including this one,
// which also applies it at once).
func (f *fleet) storeRevocation(ctx context.Context, key userKey, before time.Time) error {
	if f == nil {
		return nil
	}
	b, _ := json.Marshal(revocationValue{Before: before, Origin: f.origin})
	return f.revocations.Put(ctx, key.tenant, key.user, b)
}
