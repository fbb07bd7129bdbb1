package ws

import (
	"bufio"
	"compress/gzip"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestAcceptsGzip(t *testing.T) {
	for _, tc := range []struct {
		header string
		want   bool
	}{
		{"", false},
		{"gzip", true},
		{"gzip, deflate, br, zstd", true},
		{"br;q=1.0, GZIP;q=0.5", true},
		{"x-gzip", true},
		{"gzip;q=0", false},
		{"gzip;q=0.0, *", false},
		{"*", true},
		{"*;q=0", false},
		{"deflate, br", false},
		{"identity", false},
		{"gzip;q=abc", false},
	} {
		r := &http.Request{Header: http.Header{}}
		if tc.header != "" {
			r.Header.Set("Accept-Encoding", tc.header)
		}
		if got := acceptsGzip(r); got != tc.want {
			t.Errorf("Accept-Encoding %q: %v, want %v", tc.header, got, tc.want)
		}
	}
}

// sseDialEncoding is sseDial with an Accept-Encoding header (none if "");
// it returns the response too, its body unread.
func sseDialEncoding(t testing.TB, e *env, acceptEncoding string) (net.Conn, *http.Response, *fakeSession, *Subscription) {
	t.Helper()
	c, err := net.Dial("tcp", e.hs.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	body := `{"query":"subscription { a }"}`
	head := "POST /graphql HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n"
	if acceptEncoding != "" {
		head += "Accept-Encoding: " + acceptEncoding + "\r\n"
	}
	if _, err := io.WriteString(c, head+"\r\n"+body); err != nil {
		t.Fatal(err)
	}
	sess := e.session(t)
	sess.expect(t, "init")
	sub := sess.expect(t, "subscribe").sub
	c.SetReadDeadline(time.Now().Add(waitFor))
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	c.SetReadDeadline(time.Time{})
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("response: %v %v", err, resp)
	}
	return c, resp, sess, sub
}

// readEvent reads one SSE event (up to its blank line) from r, skipping
// keep-alive comments unless keepAlive.
func readEvent(t testing.TB, c net.Conn, r *bufio.Reader, keepAlive ...bool) string {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(waitFor))
	var ev strings.Builder
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading an event (%q so far): %v", ev.String(), err)
		}
		if line != "\n" {
			ev.WriteString(line)
			continue
		}
		if ev.String() == ":\n" && len(keepAlive) == 0 {
			ev.Reset()
			continue
		}
		return ev.String()
	}
}

// TestSSEGzip: a stream whose client accepts gzip is one gzip stream that
// decodes event by event as they are written — through a Fanout, through
// Next, a keep-alive — and ends with a valid trailer after `complete`.
func TestSSEGzip(t *testing.T) {
	e := startEnv(t, Options{SSECompression: SSECompressionGzip, SSEKeepAlive: MinSSEKeepAlive}, nil)
	c, resp, _, sub := sseDialEncoding(t, e, "gzip, deflate, br")
	if got := resp.Header.Get("Content-Encoding"); got != "gzip" {
		t.Fatalf("Content-Encoding %q, want gzip", got)
	}
	if got := resp.Header.Values("Vary"); !strings.Contains(strings.Join(got, ","), "Accept-Encoding") {
		t.Fatalf("Vary %q, want Accept-Encoding", got)
	}
	// Reading the response without Content-Length or chunking: the body is
	// the rest of the connection.
	f := e.srv.NewFanout()
	p := eventPayload(1)
	pushFlush(f, sub, p)
	zr, err := gzip.NewReader(resp.Body) // reads the header: the first write carried it
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(zr)
	want := func(p []byte) string {
		return "event: next\ndata: " + string(p) + "\nid: " + sseID(p) + "\n"
	}
	if got := readEvent(t, c, br); got != want(p) {
		t.Fatalf("event\n%q\nwant\n%q", got, want(p))
	}
	for i := 2; i < 5; i++ {
		p := eventPayload(i)
		if !sub.Next(p) {
			t.Fatal("Next refused")
		}
		if got := readEvent(t, c, br); got != want(p) {
			t.Fatalf("event %d\n%q\nwant\n%q", i, got, want(p))
		}
	}
	if got := readEvent(t, c, br, true); got != ":\n" {
		t.Fatalf("got %q, want the keep-alive comment", got)
	}
	if in, out := e.srv.CompressionStats(); in == 0 || out == 0 || out >= in {
		t.Fatalf("CompressionStats %d → %d bytes", in, out)
	}
	sub.Complete()
	if got := readEvent(t, c, br); got != "event: complete\ndata:\n" {
		t.Fatalf("got %q, want complete", got)
	}
	c.SetReadDeadline(time.Now().Add(waitFor))
	if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
		t.Fatalf("after complete: %q, %v; want the end of a valid gzip stream", rest, err)
	}
}

// TestSSEGzipNotAsked: without gzip in Accept-Encoding, or with
// ws.sse_compression off, the stream is not encoded.
func TestSSEGzipNotAsked(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mode   string
		accept string
	}{
		{"client does not accept it", SSECompressionGzip, "deflate, br"},
		{"no Accept-Encoding", SSECompressionGzip, ""},
		{"off", SSECompressionOff, "gzip"},
		{"default", "", "gzip"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := startEnv(t, Options{SSECompression: tc.mode}, nil)
			c, resp, _, sub := sseDialEncoding(t, e, tc.accept)
			if got := resp.Header.Get("Content-Encoding"); got != "" {
				t.Fatalf("Content-Encoding %q, want none", got)
			}
			p := eventPayload(1)
			sub.Next(p)
			if got, want := readEvent(t, c, bufio.NewReader(resp.Body)), "event: next\ndata: "+string(p)+"\nid: "+sseID(p)+"\n"; got != want {
				t.Fatalf("event\n%q\nwant\n%q", got, want)
			}
		})
	}
}

// TestSSEGzipShutdown: a server-closed gzip stream ends with the closing
// comment and a valid trailer.
func TestSSEGzipShutdown(t *testing.T) {
	e := startEnv(t, Options{SSECompression: SSECompressionGzip}, nil)
	c, resp, _, sub := sseDialEncoding(t, e, "gzip")
	sub.Next(eventPayload(1))
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(zr)
	readEvent(t, c, br)
	sub.Conn().Close(CloseGoingAway, reasonShuttingDown)
	if got := readEvent(t, c, br); got != ": close 1001 "+reasonShuttingDown+"\n" {
		t.Fatalf("got %q, want the closing comment", got)
	}
	c.SetReadDeadline(time.Now().Add(waitFor))
	if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
		t.Fatalf("after the closing comment: %q, %v; want the end of a valid gzip stream", rest, err)
	}
}

// A multipart response is gzip-encoded like an SSE one, its first
// delimiter (which follows the head's blank line) included: the decoded
// body is the plain stream.
func TestMultipartGzip(t *testing.T) {
	e := startEnv(t, Options{SSECompression: SSECompressionGzip}, nil)
	c, br, resp, _, sub := streamDial(t, e, "multipart/mixed;boundary=graphql;subscriptionSpec=1.0,application/json\r\nAccept-Encoding: gzip")
	if got := resp.Header.Get("Content-Encoding"); got != "gzip" {
		t.Fatalf("Content-Encoding %q, want gzip", got)
	}
	p := eventPayload(1)
	pushFlush(e.srv.NewFanout(), sub, p)
	c.SetReadDeadline(time.Now().Add(waitFor))
	zr, err := gzip.NewReader(br)
	if err != nil {
		t.Fatal(err)
	}
	want := string(multipartOpen) + string(multipartNextPrefix) + string(p) + "}" + string(multipartOpen)
	got := make([]byte, len(want))
	if _, err := io.ReadFull(zr, got); err != nil || string(got) != want {
		t.Fatalf("decoded %q, %v; want %q", got, err, want)
	}
	sub.Complete()
	if rest, err := io.ReadAll(zr); err != nil || !strings.HasSuffix(string(rest), "--\r\n") {
		t.Fatalf("after complete: %q, %v; want the end of the stream in a valid gzip body", rest, err)
	}
}
