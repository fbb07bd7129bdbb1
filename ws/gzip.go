package ws

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/klauspost/compress/flate"
)

// gzip for the HTTP stream transports (GraphQL over SSE, and any other
// transport whose Conn has no WebSocket and starts its stream with a
// kindAck head): when Options.SSECompression is "gzip" and the request
// accepts gzip (Accept-Encoding), the response head says
// Content-Encoding: gzip and the body is one gzip stream, written by the
// batchWriter: each write (a write round's frames, a keep-alive) is
// compressed and flushed to a byte boundary on its own, so the client
// decodes every event as soon as it arrives, and the stream's end (the
// gzip trailer) goes out when the server ends the stream.
//
// Each write is compressed without the previous ones as dictionary
// (klauspost/compress's stateless deflate): a connection keeps no
// compressor, only the running CRC and length, so gzip costs no memory
// per connection; the price is the ratio of a write round compressed on
// its own (docs/benchmarks.md).

// SSE compression modes (Options.SSECompression).
const (
	SSECompressionOff  = "off"
	SSECompressionGzip = "gzip"
)

// gzipHead starts the stream: magic, CM 8 (deflate), no flags, no mtime,
// XFL 0, OS unknown (RFC 1952 §2.3).
var gzipHead = []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}

// gzipHeaderLines announce the encoding in the response head.
var gzipHeaderLines = []byte("Content-Encoding: gzip\r\nVary: Accept-Encoding\r\n")

// gzipStream is one response body's gzip encoding. Guarded by its
// batchWriter's mu.
type gzipStream struct {
	s       sink
	crc     uint32
	size    uint32 // ISIZE: the length mod 2^32
	started bool   // gzipHead is written
	ended   bool   // the trailer is written
}

// encode appends p, compressed and flushed, to dst.
func (g *gzipStream) encode(dst, p []byte) []byte {
	if !g.started {
		dst = append(dst, gzipHead...)
		g.started = true
	}
	if len(p) == 0 || g.ended {
		return dst
	}
	g.crc = crc32.Update(g.crc, crc32.IEEETable, p)
	g.size += uint32(len(p))
	g.s.b = dst
	_ = flate.StatelessDeflate(&g.s, p, false, nil) // a sink does not fail
	dst = g.s.b
	g.s.b = nil
	return dst
}

// end appends p, compressed, then the end of the stream: the final block
// and the trailer (CRC-32 and length).
func (g *gzipStream) end(dst, p []byte) []byte {
	dst = g.encode(dst, p)
	if g.ended {
		return dst
	}
	g.ended = true
	g.s.b = dst
	_ = flate.StatelessDeflate(&g.s, nil, true, nil)
	dst = g.s.b
	g.s.b = nil
	dst = binary.LittleEndian.AppendUint32(dst, g.crc)
	return binary.LittleEndian.AppendUint32(dst, g.size)
}

// acceptsGzip reports whether r accepts a gzip-encoded response
// (RFC 9110 §12.5.3): gzip (or x-gzip) or *, with a q-value above 0,
// unless gzip itself is listed with q=0.
func acceptsGzip(r *http.Request) bool {
	star, gzip := false, 0 // gzip: 0 unlisted, 1 accepted, -1 refused
	for _, v := range r.Header.Values("Accept-Encoding") {
		for t := range strings.SplitSeq(v, ",") {
			name, params, _ := strings.Cut(t, ";")
			name = strings.ToLower(strings.TrimSpace(name))
			ok := qAbove0(params)
			switch name {
			case "gzip", "x-gzip":
				if !ok {
					gzip = -1
				} else if gzip == 0 {
					gzip = 1
				}
			case "*":
				star = star || ok
			}
		}
	}
	return gzip == 1 || gzip == 0 && star
}

// qAbove0 reports whether the parameters of an Accept-Encoding member
// leave its q-value above 0.
func qAbove0(params string) bool {
	for p := range strings.SplitSeq(params, ";") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(strings.TrimSpace(k), "q") {
			q, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return err == nil && q > 0
		}
	}
	return true
}

// streamBatch returns the batchWriter of an HTTP stream transport's
// hijacked connection: SSE framing, and a gzip body when the server is
// configured for it and r accepts it.
func (s *Server) streamBatch(raw net.Conn, r *http.Request) *batchWriter {
	b := &batchWriter{conn: raw, sse: true, stats: &s.flushes}
	if s.opts.SSECompression == SSECompressionGzip && acceptsGzip(r) {
		b.gz = &gzipStream{}
	}
	return b
}

// writeHead writes a stream transport's response head (its kindAck
// frame); with a gzip body it adds the Content-Encoding header, and what
// follows the head is the body. Write goroutine, c.wmu held.
func (c *Conn) writeHead(head []byte) bool {
	if c.batch.gz == nil {
		return c.writeText(head, nil, nil)
	}
	// The head ends at its first blank line; what a transport puts after
	// it (multipart's first delimiter) is body, and encoded.
	end := bytes.Index(head, crlf2)
	if end < 0 {
		c.logger().Error("ws: stream head without its blank line; sending it unencoded")
		c.batch.gz = nil
		return c.writeText(head, nil, nil)
	}
	ok := c.writeText(head[:end+2], gzipHeaderLines, crlf2[2:])
	c.batch.startBody()
	if body := head[end+4:]; ok && len(body) > 0 {
		ok = c.writeText(body, nil, nil)
	}
	return ok
}

var crlf2 = []byte("\r\n\r\n")
