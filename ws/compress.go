package ws

import (
	"encoding/binary"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"github.com/klauspost/compress/flate"
)

// permessage-deflate (RFC 7692, https://www.rfc-editor.org/rfc/rfc7692)
// for WebSocket connections.
//
// Reading is coder/websocket's: it inflates a client message with RSV1
// set, and Options.ReadLimit (SetReadLimit) bounds the inflated size, so a
// deflate bomb ends at ReadLimit+1 bytes with 1009. The server always
// answers client_no_context_takeover (RFC 7692 §7.1.1.1 lets a server add
// it to any offer): client messages are small, and inflating them with no
// window of their own keeps 32 KiB per connection off the read side.
//
// Writing is ours, as for every frame (batch.go): only `next` messages
// are compressed, those of at least Options.CompressionThreshold bytes;
// the rest go out with RSV1 clear, which RFC 7692 §6 allows per message.
//
//   - No context takeover (server_no_context_takeover): a message is
//     compressed on its own. A Fanout compresses each event's payload + "}"
//     once (deflatedBody) and every connection sends the same bytes behind
//     its subscription's prefix, itself in a stored block: a DEFLATE stream
//     may switch blocks at a byte boundary, and a stored block, like a sync
//     flush, ends on one. Nothing is kept per connection.
//   - Context takeover: each connection compresses with a compressor of
//     its own whose 32 KiB window spans its messages, so that what repeats
//     from message to message (field names, ids, the prefix) costs almost
//     nothing; that is a compressor per connection, 0.8 MiB
//     each (docs/limits.md), so at most Options.CompressionContextConns
//     connections have one, and later ones get no context takeover.

// Compression selects permessage-deflate for WebSocket connections
// (Options.Compression).
type Compression string

// Compression modes.
const (
	// CompressionOff negotiates no compression (the default).
	CompressionOff Compression = "off"
	// CompressionNoContextTakeover compresses each `next` message on its
	// own, once per event for all connections.
	CompressionNoContextTakeover Compression = "no_context_takeover"
	// CompressionContextTakeover compresses each connection's `next`
	// messages with a window that spans them (better ratio, a compressor
	// per connection, bounded by Options.CompressionContextConns).
	CompressionContextTakeover Compression = "context_takeover"
)

// Defaults and bounds of the compression options.
const (
	// DefaultCompressionThreshold: below this a deflated message saves
	// little (a JSON result of a few hundred bytes shrinks by a third or
	// less on its own) and costs CPU on both ends.
	DefaultCompressionThreshold = 256
	// DefaultCompressionContextConns bounds the connections with a
	// compressor of their own: 64 × 0.8 MiB, about 50 MiB (docs/limits.md).
	DefaultCompressionContextConns = 64
)

// deflateMode is what one connection negotiated.
type deflateMode uint8

const (
	deflateOff     deflateMode = iota
	deflateShared              // server_no_context_takeover: messages compressed on their own, shared across connections
	deflateContext             // the connection's own compressor keeps its window across messages
)

// permessageDeflate is the extension's name in Sec-WebSocket-Extensions.
const permessageDeflate = "permessage-deflate"

// negotiateDeflate picks the first permessage-deflate offer in h that the
// server can honour (RFC 7692 §5, §7.1) for a server configured with
// want, and returns the mode and the extension to answer with ("" and
// deflateOff for none). room says whether a connection may have a
// compressor of its own (CompressionContextConns not reached).
//
// An offer is declined if it has a parameter that is unknown, repeated or
// has a value it must not have, or server_max_window_bits below 15: the
// compressor's window cannot be narrowed. client_max_window_bits needs
// nothing: a client window of any size inflates with ours.
func negotiateDeflate(h http.Header, want Compression, room bool) (deflateMode, string) {
	if want != CompressionNoContextTakeover && want != CompressionContextTakeover {
		return deflateOff, ""
	}
	for _, v := range h.Values("Sec-WebSocket-Extensions") {
		for offer := range strings.SplitSeq(v, ",") {
			serverNoContext, ok := deflateOffer(offer)
			if !ok {
				continue
			}
			if serverNoContext || want == CompressionNoContextTakeover || !room {
				return deflateShared, permessageDeflate + "; client_no_context_takeover; server_no_context_takeover"
			}
			return deflateContext, permessageDeflate + "; client_no_context_takeover"
		}
	}
	return deflateOff, ""
}

// deflateOffer parses one extension offer; ok is false if it is not a
// permessage-deflate offer the server can accept.
func deflateOffer(offer string) (serverNoContext, ok bool) {
	name, params, _ := strings.Cut(offer, ";")
	if !strings.EqualFold(strings.TrimSpace(name), permessageDeflate) {
		return false, false
	}
	seen := map[string]bool{}
	for p := range strings.SplitSeq(params, ";") {
		p = strings.TrimSpace(p)
		if p == "" && params == "" {
			break
		}
		k, val, hasVal := strings.Cut(p, "=")
		k, val = strings.ToLower(strings.TrimSpace(k)), strings.TrimSpace(val)
		if seen[k] {
			return false, false // RFC 7692 §7: a repeated parameter declines the offer
		}
		seen[k] = true
		switch k {
		case "server_no_context_takeover":
			if hasVal {
				return false, false
			}
			serverNoContext = true
		case "client_no_context_takeover":
			if hasVal {
				return false, false
			}
		case "server_max_window_bits":
			if val != "15" {
				return false, false
			}
		case "client_max_window_bits":
			if hasVal && !validWindowBits(val) {
				return false, false
			}
		default:
			return false, false
		}
	}
	return serverNoContext, true
}

func validWindowBits(v string) bool {
	switch v {
	case "8", "9", "10", "11", "12", "13", "14", "15":
		return true
	}
	return false
}

// Deflate framing.
const (
	// maxHeader is the longest server frame header: 2 bytes, then 8 of
	// length.
	maxHeader = 10
	// finTextRSV1 starts a compressed text message: FIN, RSV1, opcode 1.
	finTextRSV1 = 0xC1
	// maxStored is the most one stored block holds.
	maxStored = 0xFFFF
)

// deflateTail ends a sync flush; RFC 7692 §7.2.1 drops it from the frame.
var deflateTail = []byte{0x00, 0x00, 0xFF, 0xFF}

// appendHeader appends a server frame header for a text message of n
// payload bytes whose first byte is first (RFC 6455 §5.2).
func appendHeader(buf []byte, first byte, n int) []byte {
	buf = append(buf, first)
	switch {
	case n < 126:
		return append(buf, byte(n))
	case n <= 0xFFFF:
		buf = append(buf, 126)
		return binary.BigEndian.AppendUint16(buf, uint16(n))
	default:
		buf = append(buf, 127)
		return binary.BigEndian.AppendUint64(buf, uint64(n))
	}
}

// headerLen is the length of the header appendHeader writes for n bytes.
func headerLen(n int) int {
	switch {
	case n < 126:
		return 2
	case n <= 0xFFFF:
		return 4
	default:
		return 10
	}
}

// storedLen is the length of p in stored blocks (appendStored).
func storedLen(p []byte) int {
	return len(p) + 5*max(1, (len(p)+maxStored-1)/maxStored)
}

// appendStored appends p as non-final stored DEFLATE blocks (RFC 1951
// §3.2.4), starting and ending on a byte boundary.
func appendStored(buf, p []byte) []byte {
	for first := true; first || len(p) > 0; first = false {
		n := min(len(p), maxStored)
		buf = append(buf, 0x00) // BFINAL 0, BTYPE 00, padding
		buf = binary.LittleEndian.AppendUint16(buf, uint16(n))
		buf = binary.LittleEndian.AppendUint16(buf, ^uint16(n))
		buf = append(buf, p[:n]...)
		p = p[n:]
	}
	return buf
}

// appendSharedNext appends a compressed `next` message: prefix in stored
// blocks, then body, the deflated payload + "}" shared by every
// connection (deflatedBody).
func appendSharedNext(buf, prefix, body []byte) []byte {
	buf = appendHeader(buf, finTextRSV1, storedLen(prefix)+len(body))
	buf = appendStored(buf, prefix)
	return append(buf, body...)
}

// sink is the io.Writer a compressor writes into: it appends to b.
type sink struct{ b []byte }

func (s *sink) Write(p []byte) (int, error) {
	s.b = append(s.b, p...)
	return len(p), nil
}

// deflaterPool holds compressors between uses: a Fanout's, the write-time
// ones of connections without context takeover, and those of closed
// connections with it.
var deflaterPool = sync.Pool{New: func() any {
	w, err := flate.NewWriter(nil, flate.BestSpeed)
	if err != nil {
		panic(fmt.Sprintf("ws: flate.NewWriter: %v", err)) // BestSpeed is a valid level
	}
	return w
}}

// deflate appends the compressed form of a, p and z, flushed and without
// the sync flush's tail, to buf using w (which keeps what it had seen:
// reset it first for a message on its own).
func deflate(w *flate.Writer, s *sink, buf, a, p, z []byte) []byte {
	s.b = buf
	// Writes to a sink cannot fail.
	_, _ = w.Write(a)
	_, _ = w.Write(p)
	_, _ = w.Write(z)
	_ = w.Flush()
	buf = s.b[:len(s.b)-len(deflateTail)]
	s.b = nil
	return buf
}

// appendDeflated appends a, p and z as one compressed text message,
// compressed by w, to buf.
func appendDeflated(w *flate.Writer, s *sink, buf, a, p, z []byte) []byte {
	start := len(buf)
	buf = append(buf, make([]byte, maxHeader)...) // no allocation: a constant size, appended in place when it fits
	buf = deflate(w, s, buf, a, p, z)
	n := len(buf) - start - maxHeader
	h := headerLen(n)
	copy(buf[start+h:], buf[start+maxHeader:])
	appendHeader(buf[start:start], finTextRSV1, n)
	return buf[:start+h+n]
}

// deflateCache holds the compressed bodies of the events a Fanout is
// pushing, so that each is compressed once for all connections. A
// deliverer pushes an event to all its subscribers, then calls Routed,
// which empties it, as does every write pass: the payloads it is keyed by
// are alive (it holds them) and unchanged (Subscription.Next) until then.
type deflateCache struct {
	w       *flate.Writer // from deflaterPool, while the Fanout has one
	s       sink
	scratch []byte
	entries [4]deflateEntry
	next    int  // the entry to replace
	used    bool // an entry is set
}

type deflateEntry struct {
	payload []byte // nil: free
	body    []byte // nil: the payload does not compress; send it as it is
}

// body returns the shared compressed body (payload + "}") of payload, or
// nil if compressing does not make the message smaller. It allocates the
// body, once per payload.
func (d *deflateCache) body(payload []byte) []byte {
	for i := range d.entries {
		e := &d.entries[i]
		if len(e.payload) == len(payload) && len(payload) > 0 && &e.payload[0] == &payload[0] {
			return e.body
		}
	}
	if d.w == nil {
		d.w = deflaterPool.Get().(*flate.Writer)
	}
	d.w.Reset(&d.s)
	d.scratch = deflate(d.w, &d.s, d.scratch[:0], payload, closingBrace, nil)
	var body []byte
	// Behind the stored prefix the body must beat payload + "}" by the
	// stored blocks' 5 bytes to be worth it.
	if len(d.scratch)+5 < len(payload)+len(closingBrace) {
		body = append([]byte(nil), d.scratch...)
	}
	if cap(d.scratch) > maxPooledBatch {
		d.scratch = nil
	}
	d.entries[d.next] = deflateEntry{payload: payload, body: body}
	d.next = (d.next + 1) % len(d.entries)
	d.used = true
	return body
}

// reset forgets the cached bodies (Routed).
func (d *deflateCache) reset() {
	if d.used {
		d.entries = [len(d.entries)]deflateEntry{}
		d.next, d.used = 0, false
	}
}

// acceptDeflate negotiates permessage-deflate for the upgrade request r.
// It returns the mode and the request to hand coder/websocket's Accept:
// r itself when compression is off, else a copy whose
// Sec-WebSocket-Extensions is the one offer the server accepts (or none),
// which coder/websocket accepts and answers as it is. A deflateContext
// result holds one of Options.CompressionContextConns until
// releaseDeflate.
func (s *Server) acceptDeflate(r *http.Request) (deflateMode, *http.Request) {
	if s.acceptOpts.CompressionMode == 0 {
		return deflateOff, r
	}
	room := s.contextConns.Load() < int64(s.opts.CompressionContextConns)
	mode, ext := negotiateDeflate(r.Header, s.opts.Compression, room)
	if mode == deflateContext && s.contextConns.Add(1) > int64(s.opts.CompressionContextConns) {
		s.contextConns.Add(-1) // taken meanwhile
		mode, ext = negotiateDeflate(r.Header, s.opts.Compression, false)
	}
	ar := r.WithContext(r.Context()) // a shallow copy
	ar.Header = r.Header.Clone()
	if ext == "" {
		ar.Header.Del("Sec-WebSocket-Extensions")
	} else {
		ar.Header.Set("Sec-WebSocket-Extensions", ext)
	}
	return mode, ar
}

// releaseDeflate gives back what acceptDeflate held for mode.
func (s *Server) releaseDeflate(mode deflateMode) {
	if mode == deflateContext {
		s.contextConns.Add(-1)
	}
}

// ContextCompressors returns the number of WebSocket connections that
// have a compressor of their own (Options.Compression context_takeover).
func (s *Server) ContextCompressors() int64 { return s.contextConns.Load() }
