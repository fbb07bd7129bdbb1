package cluster

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Cursor layout, before base64url (no padding):
//
//	byte 0       version (1)
//	bytes 1..8   stream identity: the stream's Created time, unix nanoseconds, big endian
//	bytes 9..16  stream sequence, big endian
//	bytes 17..20 CRC-32 (IEEE) of bytes 0..16
//
// The checksum catches typos and casual edits (ErrBadCursor rather than a
// wrong position); it is not a MAC. Cursors carry no secret: a sequence
// only means something together with the subscription's own subject.
const (
	cursorVersion = 1
	cursorRawLen  = 1 + 8 + 8 + 4
)

var cursorEncoding = base64.RawURLEncoding

// cursorLen is the length of an encoded cursor.
var cursorLen = cursorEncoding.EncodedLen(cursorRawLen)

// Cursor returns the opaque cursor of stream sequence seq on this
// cluster's stream. It is URL-safe and 28 characters long.
func (c *Cluster) Cursor(seq uint64) string {
	return encodeCursor(c.streamID.Load(), seq)
}

func encodeCursor(streamID int64, seq uint64) string {
	var raw [cursorRawLen]byte
	raw[0] = cursorVersion
	binary.BigEndian.PutUint64(raw[1:9], uint64(streamID))
	binary.BigEndian.PutUint64(raw[9:17], seq)
	binary.BigEndian.PutUint32(raw[17:], crc32.ChecksumIEEE(raw[:17]))
	var out [28]byte
	cursorEncoding.Encode(out[:], raw[:])
	return string(out[:])
}

// ParseCursor returns the stream sequence in cursor s. It fails with
// ErrBadCursor when s is malformed or altered, and with ErrCursorExpired
// when s was made for another stream (one that was deleted and
// recreated since). Whether retention has removed events after the
// sequence is Replay's to say.
func (c *Cluster) ParseCursor(s string) (uint64, error) {
	id, seq, err := decodeCursor(s)
	if err != nil {
		return 0, err
	}
	if id != c.streamID.Load() {
		return 0, fmt.Errorf("%w: cursor is from another stream", ErrCursorExpired)
	}
	return seq, nil
}

func decodeCursor(s string) (streamID int64, seq uint64, err error) {
	if len(s) != cursorLen {
		return 0, 0, fmt.Errorf("%w: length %d", ErrBadCursor, len(s))
	}
	var raw [cursorRawLen]byte
	n, err := cursorEncoding.Decode(raw[:], []byte(s))
	if err != nil || n != cursorRawLen {
		return 0, 0, fmt.Errorf("%w: not base64url", ErrBadCursor)
	}
	if raw[0] != cursorVersion {
		return 0, 0, fmt.Errorf("%w: version %d", ErrBadCursor, raw[0])
	}
	if crc32.ChecksumIEEE(raw[:17]) != binary.BigEndian.Uint32(raw[17:]) {
		return 0, 0, fmt.Errorf("%w: checksum", ErrBadCursor)
	}
	return int64(binary.BigEndian.Uint64(raw[1:9])), binary.BigEndian.Uint64(raw[9:17]), nil
}
