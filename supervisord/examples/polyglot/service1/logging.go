package main

import (
	"encoding/json"
	"io"
	"os"
	"sync"
	"time"
)

type fields map[string]interface{}

// logger writes podvisor's JSON lines: timestamp (ISO 8601 UTC, milliseconds, Z), level, message,
// logger, and any fields; one write per line so lines never interleave.
type logger struct {
	mu  sync.Mutex
	out io.Writer
}

func newLogger(out io.Writer) *logger { return &logger{out: out} }

func (l *logger) write(level, message string, extra fields) {
	entry := fields{}
	for k, v := range extra {
		entry[k] = v
	}
	entry["timestamp"] = time.Now().UTC().Format("2006-01-02T15:04:05.000Z")
	entry["level"] = level
	entry["message"] = message
	entry["logger"] = "service1"
	line, err := json.Marshal(entry)
	if err != nil {
		line = []byte(`{"level":"error","message":"unencodable log line","logger":"service1"}`)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.out.Write(append(line, '\n')); err != nil {
		os.Stderr.Write(append(line, '\n')) // the log file is gone: stderr is captured too
	}
}
