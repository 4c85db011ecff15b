package proxy

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/backgate/backgate/policy"
)

// record wraps the ResponseWriter to see the status and size, and carries
// what the request path learned for the access log. Unwrap lets
// http.ResponseController reach Flush and Hijack (streaming, WebSocket).
type record struct {
	http.ResponseWriter
	start    time.Time
	id       string
	status   int
	bytes    int64
	route    *Route
	user     string
	decision *policy.Decision
	attrs    [16]slog.Attr // the access record's attributes, without a separate allocation
}

func (w *record) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *record) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *record) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush lets ReverseProxy stream without going through ResponseController.
func (w *record) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		if w.status == 0 {
			w.status = http.StatusOK
		}
		f.Flush()
	}
}

// logAccess writes the one access record of a request. The query string is
// left out: it may carry codes or tokens.
func (s *Server) logAccess(w *record, r *http.Request) {
	status := w.status
	if status == 0 {
		status = http.StatusSwitchingProtocols // hijacked (WebSocket) or nothing written
	}
	attrs := append(w.attrs[:0],
		slog.String("request_id", w.id),
		slog.String("method", r.Method),
		slog.String("host", hostOnly(r.Host)),
		slog.String("path", r.URL.Path),
		slog.Int("status", status),
		slog.Int64("bytes", w.bytes),
		slog.Float64("duration_ms", float64(s.now().Sub(w.start).Microseconds())/1000),
		slog.String("client", s.ClientIP(r)),
	)
	if w.user != "" {
		attrs = append(attrs, slog.String("user", w.user))
	}
	if w.route != nil {
		attrs = append(attrs, slog.String("route", w.route.Name), slog.String("service", w.route.Service),
			slog.String("environment", w.route.Environment))
	}
	if d := w.decision; d != nil {
		attrs = append(attrs, slog.Bool("allow", d.Allow), slog.String("decision_id", d.ID))
	}
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "request", attrs...)
}
