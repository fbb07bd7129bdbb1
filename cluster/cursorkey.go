package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// CursorKeyBucket is the JetStream KV bucket that holds the deployment's
// cursor key under the key "key", unless Config.CursorKeyFile is set.
const CursorKeyBucket = "fraiseql_cursor"

// cursorKeyName is the key of the cursor key in CursorKeyBucket.
const cursorKeyName = "key"

// loadCursorKeys reads the cursor keys (Config.CursorKeyFile, else
// CursorKeyBucket, where the first node to start stores a random key) and
// installs them. Every node of a deployment must end up with the same
// keys for a cursor made on one to parse on another; KV's Create makes
// concurrent first starts agree on one key.
func (c *Cluster) loadCursorKeys(ctx context.Context) error {
	var keys []cursorKey
	if f := c.cfg.CursorKeyFile; f != "" {
		text, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("nats.cursor_key_file: %w", err)
		}
		if keys, err = parseCursorKeys(text); err != nil {
			return fmt.Errorf("nats.cursor_key_file %s: %w", f, err)
		}
	} else {
		text, err := c.cursorKeyFromKV(ctx)
		if err != nil {
			return fmt.Errorf("cursor key (KV bucket %s): %w", CursorKeyBucket, err)
		}
		if keys, err = parseCursorKeys(text); err != nil {
			return fmt.Errorf("cursor key (KV bucket %s, key %s): %w", CursorKeyBucket, cursorKeyName, err)
		}
	}
	c.cursorMu.Lock()
	defer c.cursorMu.Unlock()
	c.cursorKeys = keys
	c.cursor.Store(newCursorState(keys, c.streamID.Load()))
	return nil
}

// setStreamID records the stream's identity and returns the previous
// one; cursors follow it.
func (c *Cluster) setStreamID(id int64) (old int64) {
	c.cursorMu.Lock()
	defer c.cursorMu.Unlock()
	old = c.streamID.Swap(id)
	if old != id && c.cursorKeys != nil {
		c.cursor.Store(newCursorState(c.cursorKeys, id))
	}
	return old
}

// cursorKeyFromKV returns the value of the cursor key in CursorKeyBucket,
// storing a new random key first if there is none. The bucket has the
// stream's replicas. While JetStream cannot answer yet it retries under
// ctx.
func (c *Cluster) cursorKeyFromKV(ctx context.Context) ([]byte, error) {
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 2*time.Second) {
		text, err := c.cursorKeyFromKVOnce(ctx)
		// A direct get may reach a replica that has not yet stored the
		// key another node just created: ErrKeyNotFound, briefly.
		if err == nil || ctx.Err() != nil || !(jetStreamUnavailable(err) || errors.Is(err, jetstream.ErrKeyNotFound)) {
			return text, err
		}
		c.log.Info("cursor key not available yet; retrying", "bucket", CursorKeyBucket, "error", err, "retry_in", wait)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}

func (c *Cluster) cursorKeyFromKVOnce(ctx context.Context) ([]byte, error) {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	kv, err := c.js.CreateOrUpdateKeyValue(rctx, jetstream.KeyValueConfig{
		Bucket:      CursorKeyBucket,
		Description: "FraiseQL cursor key, shared by every node (docs/security.md, Cursors)",
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    c.cfg.Replicas,
	})
	if err != nil {
		return nil, err
	}
	var b [cursorKeyLen]byte
	rand.Read(b[:]) // never fails (crypto/rand)
	fresh := []byte(base64.StdEncoding.EncodeToString(b[:]) + "\n")
	if _, err := kv.Create(rctx, cursorKeyName, fresh); err == nil {
		c.log.Info("generated the deployment's cursor key", "bucket", CursorKeyBucket)
		return fresh, nil
	} else if !errors.Is(err, jetstream.ErrKeyExists) {
		return nil, err
	}
	e, err := kv.Get(rctx, cursorKeyName)
	if err != nil {
		return nil, err
	}
	c.log.Log(ctx, slog.LevelDebug, "loaded the deployment's cursor key", "bucket", CursorKeyBucket, "revision", e.Revision())
	return e.Value(), nil
}

// parseCursorKeys reads one key per line: 32 bytes in base64 (standard
// or URL alphabet, padded or not) or hex. The first key makes cursors;
// every key parses them (for rotation). Blank lines and lines starting
// with '#' are skipped.
func parseCursorKeys(text []byte) ([]cursorKey, error) {
	var keys []cursorKey
	for i, line := range bytes.Split(text, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		raw, ok := decodeKeyLine(string(line))
		if !ok {
			return nil, fmt.Errorf("line %d: not a %d-byte key in base64 or hex (make one with `openssl rand -base64 32`)", i+1, cursorKeyLen)
		}
		k, err := newCursorKey(raw)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("no key (make one with `openssl rand -base64 32`)")
	}
	return keys, nil
}

func decodeKeyLine(s string) ([]byte, bool) {
	if len(s) == 2*cursorKeyLen {
		if b, err := hex.DecodeString(s); err == nil {
			return b, true
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil && len(b) == cursorKeyLen {
			return b, true
		}
	}
	return nil, false
}
