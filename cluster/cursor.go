package cluster

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"unsafe"
)

// Cursor layout (version 2), before base64url (no padding), 21 bytes:
//
//	byte 0       version (2)
//	bytes 1..4   stream tag: HMAC-SHA256(key, "fraiseql cursor stream" | stream identity), first 4 bytes
//	bytes 5..20  AES-256(kEnc, seq (8 bytes, big endian) | tag (8 bytes))
//
// where tag is the first 8 bytes of an AES-256 CBC-MAC under kMac of
// (stream identity (8) | len(tenant) (1) | tenant, zero-padded to whole
// blocks); the length in the first block makes the inputs prefix-free,
// which CBC-MAC needs. kEnc and kMac are derived from the deployment's
// 32-byte cursor key (HMAC-SHA256 with distinct labels); the stream
// identity is the stream's creation time in unix nanoseconds.
//
// A block cipher is a pseudorandom permutation, so the 16 encrypted bytes
// are unrelated for any two sequences and say nothing about either: a
// client cannot read how many events (its own tenant's or anyone's) lie
// between two cursors. Decrypting an altered or invented block yields 8
// tag bytes that match the expected tag with probability 2^-64, so a
// cursor is authenticated too, and bound to its tenant: another tenant's
// tag differs. The stream tag in clear only tells "made for another
// stream, or under another key" (ErrCursorExpired) from "altered"
// (ErrBadCursor); it is itself keyed, so it does not reveal the stream's
// creation time. Changing it can only turn a refusal into another refusal.
//
// Version 1 cursors (stream identity and sequence in clear, CRC-32) are
// refused with ErrCursorFormat.
const (
	cursorVersion  = 2
	cursorRawLen   = 1 + 4 + aes.BlockSize
	cursorV1       = 1
	cursorV1RawLen = 1 + 8 + 8 + 4
	// cursorKeyLen is the length of a deployment's cursor key.
	cursorKeyLen = 32
)

var cursorEncoding = base64.RawURLEncoding

// cursorLen is the length of an encoded cursor (28).
var cursorLen = cursorEncoding.EncodedLen(cursorRawLen)

// cursorKey is one deployment key, expanded.
type cursorKey struct {
	master [cursorKeyLen]byte
	enc    cipher.Block // the permutation over (seq | tag)
	mac    cipher.Block // the CBC-MAC of (stream | tenant)
}

func newCursorKey(master []byte) (cursorKey, error) {
	if len(master) != cursorKeyLen {
		return cursorKey{}, fmt.Errorf("cursor key is %d bytes, want %d", len(master), cursorKeyLen)
	}
	k := cursorKey{}
	copy(k.master[:], master)
	var err error
	if k.enc, err = aes.NewCipher(k.derive("fraiseql cursor v2 enc")); err != nil {
		return cursorKey{}, err
	}
	if k.mac, err = aes.NewCipher(k.derive("fraiseql cursor v2 mac")); err != nil {
		return cursorKey{}, err
	}
	return k, nil
}

// derive returns HMAC-SHA256(master, label, more...): 32 bytes.
func (k *cursorKey) derive(label string, more ...[]byte) []byte {
	h := hmac.New(sha256.New, k.master[:])
	h.Write([]byte(label))
	for _, m := range more {
		h.Write(m)
	}
	return h.Sum(nil)
}

// cursorState is what cursors need for one stream incarnation; it is
// immutable and replaced when the stream identity or the keys change.
type cursorState struct {
	streamID int64
	keys     []cursorKey // keys[0] makes cursors; every key parses
	tags     [][4]byte   // tags[i]: keys[i]'s stream tag for streamID
}

func newCursorState(keys []cursorKey, streamID int64) *cursorState {
	st := &cursorState{streamID: streamID, keys: keys, tags: make([][4]byte, len(keys))}
	var id [8]byte
	binary.BigEndian.PutUint64(id[:], uint64(streamID))
	for i := range keys {
		copy(st.tags[i][:], keys[i].derive("fraiseql cursor stream", id[:]))
	}
	return st
}

// tenantTag writes the CBC-MAC of (streamID | len(tenant) | tenant)
// under k into x; the tag is x[:8]. tenant is at most maxTenantLen bytes.
func (k *cursorKey) tenantTag(x []byte, streamID int64, tenant string) {
	clear(x[:aes.BlockSize])
	binary.BigEndian.PutUint64(x[:8], uint64(streamID))
	x[8] = byte(len(tenant))
	n := copy(x[9:aes.BlockSize], tenant)
	k.mac.Encrypt(x, x)
	for rest := tenant[n:]; rest != ""; {
		m := min(len(rest), aes.BlockSize)
		for i := range m {
			x[i] ^= rest[i]
		}
		rest = rest[m:]
		k.mac.Encrypt(x, x)
	}
}

// Cursor returns the opaque cursor of stream sequence seq for an event of
// tenant on this cluster's stream: URL-safe, 28 characters, authenticated
// and bound to the tenant (ParseCursor with another tenant refuses it).
// It costs two to six AES block operations and one allocation (the
// string). It returns "" for a tenant that ValidateTenant refuses, and on
// a Cluster from Connect, which does not load the cursor key.
func (c *Cluster) Cursor(tenant string, seq uint64) string {
	st := c.cursor.Load()
	if st == nil || len(tenant) == 0 || len(tenant) > maxTenantLen {
		return ""
	}
	return st.encode(tenant, seq)
}

func (st *cursorState) encode(tenant string, seq uint64) string {
	k := &st.keys[0]
	// One allocation holds the cursor's characters and, after them, the
	// raw cursor and the cipher's scratch block: passing slices to a
	// cipher.Block method makes them escape, so stack arrays would cost
	// two more allocations per event.
	buf := make([]byte, cursorLen+cursorRawLen+aes.BlockSize)
	out, raw, x := buf[:cursorLen], buf[cursorLen:cursorLen+cursorRawLen], buf[cursorLen+cursorRawLen:]
	raw[0] = cursorVersion
	copy(raw[1:5], st.tags[0][:])
	k.tenantTag(x, st.streamID, tenant)
	blk := raw[5:]
	binary.BigEndian.PutUint64(blk[:8], seq)
	copy(blk[8:], x[:8])
	k.enc.Encrypt(blk, blk)
	cursorEncoding.Encode(out, raw)
	// buf is never written again and out is its prefix: the string may
	// share it (as strings.Builder does).
	return unsafe.String(&buf[0], cursorLen)
}

// ParseCursor returns the stream sequence in cursor s, which must have
// been made by Cursor for the same tenant. It fails with ErrBadCursor when
// s is malformed, altered, invented or made for another tenant; with
// ErrCursorExpired when s was made for another stream (one deleted and
// recreated since) or under a cursor key this cluster no longer has; and
// with ErrCursorFormat (which is also ErrCursorExpired) for a cursor of an
// earlier format. Whether retention has removed events after the
// sequence is Replay's to say.
func (c *Cluster) ParseCursor(tenant, s string) (uint64, error) {
	st := c.cursor.Load()
	if st == nil {
		return 0, fmt.Errorf("%w: no cursor key (a Cluster from Connect)", ErrBadCursor)
	}
	return st.decode(tenant, s)
}

func (st *cursorState) decode(tenant, s string) (uint64, error) {
	if len(s) != cursorLen {
		return 0, fmt.Errorf("%w: length %d", ErrBadCursor, len(s))
	}
	var raw [cursorRawLen]byte
	n, err := cursorEncoding.Decode(raw[:], []byte(s))
	if err != nil || n != cursorRawLen {
		return 0, fmt.Errorf("%w: not base64url", ErrBadCursor)
	}
	switch raw[0] {
	case cursorVersion:
	case cursorV1:
		// Same length; a version 1 cursor ends with the CRC-32 of the rest.
		if crc32.ChecksumIEEE(raw[:cursorV1RawLen-4]) == binary.BigEndian.Uint32(raw[cursorV1RawLen-4:]) {
			return 0, ErrCursorFormat
		}
		return 0, fmt.Errorf("%w: checksum", ErrBadCursor)
	default:
		return 0, fmt.Errorf("%w: version %d", ErrBadCursor, raw[0])
	}
	if len(tenant) == 0 || len(tenant) > maxTenantLen {
		return 0, fmt.Errorf("%w: bad tenant", ErrBadCursor)
	}
	known := false
	for i := range st.keys {
		if [4]byte(raw[1:5]) != st.tags[i] {
			continue
		}
		known = true
		k := &st.keys[i]
		var blk, x [aes.BlockSize]byte
		k.enc.Decrypt(blk[:], raw[5:])
		k.tenantTag(x[:], st.streamID, tenant)
		if subtle.ConstantTimeCompare(blk[8:], x[:8]) == 1 {
			return binary.BigEndian.Uint64(blk[:8]), nil
		}
	}
	if !known {
		return 0, fmt.Errorf("%w: cursor is from another stream, or was made under another cursor key", ErrCursorExpired)
	}
	return 0, fmt.Errorf("%w: not authentic for this tenant", ErrBadCursor)
}
