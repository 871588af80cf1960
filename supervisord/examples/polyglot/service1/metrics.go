package main

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"sync"
	"time"
)

// Request latency buckets in seconds, as prometheus_client's defaults.
var buckets = []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

type requestKey struct {
	method, path string
	status       int
}

type histogram struct {
	counts []uint64 // per bucket, not cumulative
	count  uint64
	sum    float64
}

// metrics is the Prometheus text format 0.0.4 by hand: a counter and a histogram.
type metrics struct {
	mu        sync.Mutex
	started   time.Time
	requests  map[requestKey]uint64
	durations map[string]*histogram
}

func newMetrics() *metrics {
	return &metrics{started: time.Now(), requests: map[requestKey]uint64{}, durations: map[string]*histogram{}}
}

func (m *metrics) observe(method, path string, status int, elapsed time.Duration) {
	seconds := elapsed.Seconds()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.requests[requestKey{method, path, status}]++
	h := m.durations[path]
	if h == nil {
		h = &histogram{counts: make([]uint64, len(buckets))}
		m.durations[path] = h
	}
	for i, bound := range buckets {
		if seconds <= bound {
			h.counts[i]++
			break
		}
	}
	h.count++
	h.sum += seconds
}

func number(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

func (m *metrics) write(w io.Writer) {
	m.mu.Lock()
	defer m.mu.Unlock()
	fmt.Fprintln(w, "# HELP http_requests_total HTTP requests answered, by method, route and status.")
	fmt.Fprintln(w, "# TYPE http_requests_total counter")
	keys := make([]requestKey, 0, len(m.requests))
	for k := range m.requests {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.path != b.path {
			return a.path < b.path
		}
		if a.method != b.method {
			return a.method < b.method
		}
		return a.status < b.status
	})
	for _, k := range keys {
		fmt.Fprintf(w, "http_requests_total{method=%q,path=%q,status=\"%d\"} %d\n", k.method, k.path, k.status,
			m.requests[k])
	}
	fmt.Fprintln(w, "# HELP http_request_duration_seconds Time to answer an HTTP request, by route.")
	fmt.Fprintln(w, "# TYPE http_request_duration_seconds histogram")
	paths := make([]string, 0, len(m.durations))
	for p := range m.durations {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		h := m.durations[p]
		var cumulative uint64
		for i, bound := range buckets {
			cumulative += h.counts[i]
			fmt.Fprintf(w, "http_request_duration_seconds_bucket{path=%q,le=\"%s\"} %d\n", p, number(bound), cumulative)
		}
		fmt.Fprintf(w, "http_request_duration_seconds_bucket{path=%q,le=\"+Inf\"} %d\n", p, h.count)
		fmt.Fprintf(w, "http_request_duration_seconds_sum{path=%q} %s\n", p, number(h.sum))
		fmt.Fprintf(w, "http_request_duration_seconds_count{path=%q} %d\n", p, h.count)
	}
	fmt.Fprintln(w, "# HELP process_start_time_seconds Start time of the process since the Unix epoch.")
	fmt.Fprintln(w, "# TYPE process_start_time_seconds gauge")
	fmt.Fprintf(w, "process_start_time_seconds %s\n", number(float64(m.started.UnixNano())/1e9))
}
