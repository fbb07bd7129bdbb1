package cluster_test

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math/bits"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/fraiseql/subscriptions/cluster"
	"github.com/fraiseql/subscriptions/cluster/clustertest"
)

func rawCursor(t *testing.T, cur string) []byte {
	t.Helper()
	raw, err := base64.RawURLEncoding.DecodeString(cur)
	if err != nil || len(raw) != 21 {
		t.Fatalf("cursor %q: %d bytes, %v", cur, len(raw), err)
	}
	return raw
}

func encodeRaw(raw []byte) string { return base64.RawURLEncoding.EncodeToString(raw) }

// TestCursorForgedIsRefused: a client that edits or invents a cursor to
// read from another position gets ErrBadCursor. (With version 1 cursors
// an edited sequence with a recomputed CRC-32 was accepted.)
func TestCursorForgedIsRefused(t *testing.T) {
	c := open(t, cluster.Config{URL: clustertest.RunServer(t)})
	cur := c.Cursor("acme", 42)
	raw := rawCursor(t, cur)

	// The stream tag is the real one; the encrypted block is invented.
	for i := range 256 {
		forged := append([]byte(nil), raw...)
		for j := 5; j < 21; j++ {
			forged[j] = byte(i*31 + j*7)
		}
		if seq, err := c.ParseCursor("acme", encodeRaw(forged)); !errors.Is(err, cluster.ErrBadCursor) {
			t.Fatalf("invented cursor %d: seq %d, %v; want ErrBadCursor", i, seq, err)
		}
	}

	// A version 1 cursor (sequence in clear, CRC-32) for any position is
	// refused as expired with the format named, so that clients drop it.
	v1 := make([]byte, 21)
	v1[0] = 1
	binary.BigEndian.PutUint64(v1[1:9], 1700000000000000000)
	binary.BigEndian.PutUint64(v1[9:17], 7)
	binary.BigEndian.PutUint32(v1[17:], crc32.ChecksumIEEE(v1[:17]))
	_, err := c.ParseCursor("acme", encodeRaw(v1))
	if !errors.Is(err, cluster.ErrCursorFormat) || !errors.Is(err, cluster.ErrCursorExpired) {
		t.Fatalf("version 1 cursor: %v, want ErrCursorFormat (an ErrCursorExpired)", err)
	}
	v1[20] ^= 1
	if _, err := c.ParseCursor("acme", encodeRaw(v1)); !errors.Is(err, cluster.ErrBadCursor) {
		t.Fatalf("version 1 cursor with a bad checksum: %v, want ErrBadCursor", err)
	}
}

// TestCursorBitFlips flips every bit of a cursor: none parses. Bits of
// the version or the encrypted block give ErrBadCursor; bits of the stream
// tag (in clear, to tell a recreated stream) give ErrCursorExpired.
func TestCursorBitFlips(t *testing.T) {
	c := open(t, cluster.Config{URL: clustertest.RunServer(t)})
	raw := rawCursor(t, c.Cursor("acme", 42))
	for bit := range 21 * 8 {
		b := append([]byte(nil), raw...)
		b[bit/8] ^= 1 << (bit % 8)
		seq, err := c.ParseCursor("acme", encodeRaw(b))
		want := cluster.ErrBadCursor
		if i := bit / 8; i >= 1 && i <= 4 {
			want = cluster.ErrCursorExpired
		}
		if !errors.Is(err, want) {
			t.Errorf("bit %d flipped: seq %d, %v; want %v", bit, seq, err, want)
		}
	}
}

// TestCursorBoundToTenant: a cursor seen by one tenant is useless to
// another, even for the same position.
func TestCursorBoundToTenant(t *testing.T) {
	c := open(t, cluster.Config{URL: clustertest.RunServer(t)})
	long := strings.Repeat("x", 64)
	for _, tc := range []struct{ made, used string }{
		{"acme", "globex"}, {"acme", "acm"}, {"acme", "acme_"}, {long, long[:63] + "y"}, {"a", long},
	} {
		if seq, err := c.ParseCursor(tc.used, c.Cursor(tc.made, 42)); !errors.Is(err, cluster.ErrBadCursor) {
			t.Errorf("cursor of %q used by %q: seq %d, %v; want ErrBadCursor", tc.made, tc.used, seq, err)
		}
	}
	if got, err := c.ParseCursor(long, c.Cursor(long, 42)); err != nil || got != 42 {
		t.Fatalf("64-byte tenant: %d, %v", got, err)
	}
	if c.Cursor("", 1) != "" || c.Cursor(long+"x", 1) != "" {
		t.Fatal("Cursor for an invalid tenant is not empty")
	}
}

// TestCursorHidesSequence: the stream sequence counts every tenant's
// events, so a cursor must not show it: not in clear, and two cursors of
// consecutive sequences look unrelated (about half their encrypted bits
// differ).
func TestCursorHidesSequence(t *testing.T) {
	c := open(t, cluster.Config{URL: clustertest.RunServer(t)})
	var prev []byte
	for seq := uint64(1); seq <= 200; seq++ {
		raw := rawCursor(t, c.Cursor("acme", seq))
		var be, le [8]byte
		binary.BigEndian.PutUint64(be[:], seq)
		binary.LittleEndian.PutUint64(le[:], seq)
		for i := 0; i+8 <= len(raw); i++ {
			if string(raw[i:i+8]) == string(be[:]) || string(raw[i:i+8]) == string(le[:]) {
				t.Fatalf("cursor of seq %d holds the sequence in clear at byte %d", seq, i)
			}
		}
		if prev != nil {
			if string(raw[:5]) != string(prev[:5]) {
				t.Fatalf("seq %d: version or stream tag changed between consecutive cursors", seq)
			}
			d := 0
			for i := 5; i < 21; i++ {
				d += bits.OnesCount8(raw[i] ^ prev[i])
			}
			// Binomial(128, 1/2): below 30 or above 98 has odds under 1e-9.
			if d < 30 || d > 98 {
				t.Fatalf("seq %d and %d: encrypted blocks differ in %d of 128 bits", seq-1, seq, d)
			}
		}
		prev = raw
	}
}

// TestCursorSharedAcrossNodesAndRestarts: nodes on the same NATS share
// the key (kept in a KV bucket, created once even when nodes start
// together), so a cursor made on one parses on the others and after a
// node restarts.
func TestCursorSharedAcrossNodesAndRestarts(t *testing.T) {
	url := clustertest.RunServer(t)
	// Nodes starting together on a fresh server agree on one key.
	const n = 4
	nodes := make([]*cluster.Cluster, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			nodes[i], errs[i] = cluster.Open(testCtx(t), cluster.Config{URL: url}, testLog())
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Open %d: %v", i, errs[i])
		}
		closeOnCleanup(t, nodes[i])
	}
	cur := nodes[0].Cursor("acme", 42)
	for i, c := range nodes {
		if got, err := c.ParseCursor("acme", cur); err != nil || got != 42 {
			t.Fatalf("node %d: cursor of node 0 -> %d, %v", i, got, err)
		}
		if c.Cursor("acme", 42) != cur {
			t.Fatalf("node %d makes another cursor for the same position", i)
		}
	}
	for _, c := range nodes {
		c.Close()
	}
	restarted := open(t, cluster.Config{URL: url})
	if got, err := restarted.ParseCursor("acme", cur); err != nil || got != 42 {
		t.Fatalf("after a restart: %d, %v", got, err)
	}
	kv, err := restarted.JetStream().KeyValue(testCtx(t), cluster.CursorKeyBucket)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := kv.Status(testCtx(t)); err != nil || st.Values() != 1 {
		t.Fatalf("bucket %s: %v values, %v; want one key", cluster.CursorKeyBucket, st, err)
	}
}

// TestCursorSurvivesEmbeddedRestart: with the embedded server, the key is
// in its JetStream store, so a restarted node accepts its old cursors.
func TestCursorSurvivesEmbeddedRestart(t *testing.T) {
	dir := t.TempDir()
	c1 := open(t, cluster.Config{Embedded: cluster.EmbeddedConfig{StoreDir: dir}})
	cur := c1.Cursor("acme", 7)
	c1.Close()
	c2 := open(t, cluster.Config{Embedded: cluster.EmbeddedConfig{StoreDir: dir}})
	if got, err := c2.ParseCursor("acme", cur); err != nil || got != 7 {
		t.Fatalf("after restart: %d, %v", got, err)
	}
}

func writeKeyFile(t *testing.T, lines ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "cursor.key")
	if err := os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCursorKeyFile: a key given in a file is used instead of the KV
// bucket's; later lines are earlier keys that still parse (rotation); a
// cursor under a key the node no longer has is expired, not bad.
func TestCursorKeyFile(t *testing.T) {
	url := clustertest.RunServer(t)
	const (
		k1 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="                     // base64
		k2 = "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f" // hex
	)
	old := open(t, cluster.Config{URL: url, Name: "old", CursorKeyFile: writeKeyFile(t, k1)})
	rotated := open(t, cluster.Config{URL: url, Name: "rotated", CursorKeyFile: writeKeyFile(t, "# new key first", k2, "", k1)})
	fromKV := open(t, cluster.Config{URL: url, Name: "kv"})

	cur := old.Cursor("acme", 5)
	if got, err := rotated.ParseCursor("acme", cur); err != nil || got != 5 {
		t.Fatalf("cursor under the previous key: %d, %v", got, err)
	}
	if rotated.Cursor("acme", 5) == cur {
		t.Fatal("rotated node still makes cursors with the previous key")
	}
	if _, err := old.ParseCursor("acme", rotated.Cursor("acme", 5)); !errors.Is(err, cluster.ErrCursorExpired) {
		t.Fatalf("cursor under a key the node lacks: %v, want ErrCursorExpired", err)
	}
	if _, err := fromKV.ParseCursor("acme", cur); !errors.Is(err, cluster.ErrCursorExpired) {
		t.Fatalf("file key vs KV key: %v, want ErrCursorExpired", err)
	}

	for _, tc := range []struct{ name, text string }{
		{"empty", "# nothing\n"},
		{"short", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHg==\n"},
		{"not base64", "not a key\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "k")
			os.WriteFile(p, []byte(tc.text), 0o600)
			_, err := cluster.Open(testCtx(t), cluster.Config{URL: url, CursorKeyFile: p}, testLog())
			if err == nil || !strings.Contains(err.Error(), "nats.cursor_key_file") {
				t.Fatalf("Open = %v, want an error naming nats.cursor_key_file", err)
			}
		})
	}
	_, err := cluster.Open(context.Background(), cluster.Config{URL: url, CursorKeyFile: filepath.Join(t.TempDir(), "missing")}, testLog())
	if err == nil || !strings.Contains(err.Error(), "nats.cursor_key_file") {
		t.Fatalf("Open with a missing key file = %v, want an error naming nats.cursor_key_file", err)
	}
}
