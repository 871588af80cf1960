// service1: the polyglot example's Go service, standard library only.
//
// It follows podvisor's app contract and knows nothing of podvisor: it listens on APP_HOST:APP_PORT
// (127.0.0.1:8001), or on the sockets passed the systemd way (LISTEN_FDS/LISTEN_PID, fds 3...); writes
// one JSON object per line to APP_LOG_FILE (stdout when unset); answers /ping, /hello, /health and
// /metrics (the Prometheus text format, written by hand); keeps or makes an X-Request-ID; and on
// SIGTERM finishes its in-flight requests within APP_DRAIN_SECONDS before it exits.
//
// Build: cd supervisord/examples/polyglot/service1 && go build -o service1 .
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

const service = "1"

func env(name, fallback string) string {
	if value := os.Getenv(name); value != "" {
		return value
	}
	return fallback
}

// listeners are the sockets systemd (or a supervisor doing the same) passed from fd 3 on, else a new one.
func listeners(address string) ([]net.Listener, error) {
	if os.Getenv("LISTEN_PID") == strconv.Itoa(os.Getpid()) && os.Getenv("LISTEN_FDS") != "" {
		if count, err := strconv.Atoi(os.Getenv("LISTEN_FDS")); err == nil && count >= 1 {
			passed := make([]net.Listener, 0, count)
			for fd := 3; fd < 3+count; fd++ {
				ln, err := net.FileListener(os.NewFile(uintptr(fd), "LISTEN_FDS"))
				if err != nil {
					return nil, err
				}
				passed = append(passed, ln)
			}
			return passed, nil
		}
	}
	ln, err := net.Listen("tcp", address)
	return []net.Listener{ln}, err
}

func main() {
	logFile := os.Stdout
	if path := os.Getenv("APP_LOG_FILE"); path != "" {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			fmt.Fprintf(os.Stderr, "service1: bad setting APP_LOG_FILE=%q: %v\n", path, err)
			os.Exit(2)
		}
		logFile = f
	}
	log := newLogger(logFile)
	drain, err := strconv.ParseFloat(env("APP_DRAIN_SECONDS", "10"), 64)
	if err != nil || drain < 0 {
		fmt.Fprintf(os.Stderr, "service1: bad setting APP_DRAIN_SECONDS=%q: must be a number >= 0\n",
			os.Getenv("APP_DRAIN_SECONDS"))
		os.Exit(2)
	}
	address := net.JoinHostPort(env("APP_HOST", "127.0.0.1"), env("APP_PORT", "8001"))
	lns, err := listeners(address)
	if err != nil {
		fmt.Fprintf(os.Stderr, "service1: bad setting APP_PORT: cannot listen on %s: %v\n", address, err)
		os.Exit(2)
	}
	metrics := newMetrics()
	server := &http.Server{Handler: routes(log, metrics), ReadHeaderTimeout: 10 * time.Second}

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	served := make(chan error, len(lns))
	for _, ln := range lns {
		go func(ln net.Listener) { served <- server.Serve(ln) }(ln)
		log.write("info", "service 1 listening on "+ln.Addr().String(), fields{"address": ln.Addr().String()})
	}

	select {
	case err := <-served:
		log.write("error", "server failed: "+err.Error(), nil)
		os.Exit(1)
	case got := <-stop:
		log.write("info", "received "+signalName(got)+", shutting down", fields{"drain_seconds": drain})
	}
	// Stop accepting, let in-flight requests finish, within the drain budget.
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(drain*float64(time.Second)))
	defer cancel()
	if err := server.Shutdown(ctx); err != nil {
		log.write("warning", "drain deadline passed with requests in flight: "+err.Error(), nil)
	}
	for range lns {
		if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.write("error", "server failed while stopping: "+err.Error(), nil)
		}
	}
	log.write("info", "shutdown complete", nil)
}

func signalName(s os.Signal) string {
	if s == syscall.SIGTERM {
		return "SIGTERM"
	}
	return "SIGINT"
}

func routes(log *logger, metrics *metrics) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/ping", func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, `{"service":"1","status":"ok"}`)
	})
	mux.HandleFunc("/hello", func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, `{"message":"Hello from Service 1"}`)
	})
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		reply(w, http.StatusOK, `{"service":"1","status":"healthy"}`)
	})
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		w.WriteHeader(http.StatusOK)
		metrics.write(w)
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		body, _ := json.Marshal(map[string]interface{}{"ok": false, "error": "no such route: " + r.URL.Path})
		reply(w, http.StatusNotFound, string(body))
	})
	return instrument(mux, log, metrics)
}

func reply(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	io.WriteString(w, body)
}

// recorder remembers the status a handler answered with.
type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

// instrument keeps or makes the request id, refuses what is not GET/HEAD, logs and counts every request.
func instrument(next http.Handler, log *logger, metrics *metrics) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started := time.Now()
		id := requestID(r.Header.Get("X-Request-ID"))
		w.Header().Set("X-Request-ID", id)
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			rec.Header().Set("Allow", "GET, HEAD")
			reply(rec, http.StatusMethodNotAllowed, `{"ok":false,"error":"method not allowed: use GET"}`)
		} else {
			next.ServeHTTP(rec, r)
		}
		elapsed := time.Since(started)
		route := routeOf(r.URL.Path)
		metrics.observe(r.Method, route, rec.status, elapsed)
		level := "info"
		if rec.status >= 500 {
			level = "error"
		} else if rec.status >= 400 {
			level = "warning"
		}
		log.write(level, fmt.Sprintf("%s %s %d", r.Method, r.URL.Path, rec.status), fields{
			"request_id": id, "method": r.Method, "path": r.URL.Path, "status": rec.status,
			"duration_ms": float64(elapsed.Microseconds()) / 1000,
		})
	})
}

// requestID keeps the caller's id when it is printable ASCII of at most 128 characters.
func requestID(given string) string {
	ok := given != "" && len(given) <= 128
	for i := 0; ok && i < len(given); i++ {
		ok = given[i] > 0x20 && given[i] < 0x7f
	}
	if ok {
		return given
	}
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return strconv.FormatInt(time.Now().UnixNano(), 16)
	}
	return hex.EncodeToString(b)
}

// routeOf bounds the path label: known routes by name, anything else as "other".
func routeOf(path string) string {
	switch path {
	case "/ping", "/hello", "/health", "/metrics":
		return path
	}
	return "other"
}
