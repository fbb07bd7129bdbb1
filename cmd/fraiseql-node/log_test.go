package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// TestLogFormatAuto: the default format writes JSON to anything that is
// not a terminal (a pipe, a file, a buffer); text and json are as asked.
func TestLogFormatAuto(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	newLogger(LogConfig{Level: "info", Format: "auto"}, w).Info("hello", "k", 1)
	w.Close()
	var pipe bytes.Buffer
	pipe.ReadFrom(r)
	var buf, text bytes.Buffer
	newLogger(LogConfig{Level: "info", Format: "auto"}, &buf).Info("hello", "k", 1)
	newLogger(LogConfig{Level: "info", Format: "text"}, &text).Info("hello", "k", 1)
	for name, out := range map[string]string{"pipe": pipe.String(), "buffer": buf.String()} {
		var m map[string]any
		if err := json.Unmarshal([]byte(out), &m); err != nil || m["msg"] != "hello" {
			t.Errorf("auto on a %s wrote %q, want a JSON line", name, out)
		}
	}
	if !strings.HasPrefix(text.String(), "time=") {
		t.Errorf("text wrote %q", text.String())
	}
	if isTerminal(&buf) || isTerminal(w) {
		t.Error("a buffer or a pipe taken for a terminal")
	}
}
