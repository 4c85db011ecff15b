package proxy

import (
	"log/slog"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/backgate/backgate/internal/jsonstr"
	"github.com/backgate/backgate/policy"
)

// record wraps the ResponseWriter to see the status and size, and carries
// what the request path learned for the access log. Unwrap lets
// http.ResponseController reach Flush and Hijack (streaming, WebSocket).
type record struct {
	http.ResponseWriter
	start   time.Time
	id      string
	status  int
	bytes   int64
	host    string     // r.Host without port, lower-cased
	peer    netip.Addr // r.RemoteAddr's address
	route   *Route
	user    string
	dec     policy.Decision // when decided
	decided bool
	headers http.Header // the signed headers of an allowed request (shared: never modified)
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
	end := s.now()
	a := accessFields{
		id: w.id, method: r.Method, host: w.host, path: r.URL.Path,
		status: w.status, bytes: w.bytes, client: s.clientAddr(w.peer, r), user: w.user, route: w.route,
		durationMS: float64(end.Sub(w.start).Microseconds()) / 1000,
	}
	if w.decided {
		a.decision = &w.dec
	}
	if a.status == 0 {
		a.status = http.StatusSwitchingProtocols // hijacked (WebSocket) or nothing written
	}
	if s.opt.AccessLog != nil {
		bp := accessBufs.Get().(*[]byte)
		b := appendAccessJSON((*bp)[:0], end, &a)
		_, _ = s.opt.AccessLog.Write(b) // like slog: a failed log write does not fail the request
		if cap(b) <= 16<<10 {           // a record with a huge path does not keep its buffer
			*bp = b
			accessBufs.Put(bp)
		}
		return
	}
	var buf [16]slog.Attr
	s.log.LogAttrs(r.Context(), slog.LevelInfo, "request", a.attrs(buf[:0])...)
}

// accessFields is one access record.
type accessFields struct {
	id, method, host, path string
	status                 int
	bytes                  int64
	durationMS             float64
	client                 netip.Addr // invalid: unknown
	user                   string
	route                  *Route
	decision               *policy.Decision
}

// attrs is the record as slog attributes, in the order the JSON encoder
// writes them.
func (a *accessFields) attrs(buf []slog.Attr) []slog.Attr {
	attrs := append(buf,
		slog.String("request_id", a.id),
		slog.String("method", a.method),
		slog.String("host", a.host),
		slog.String("path", a.path),
		slog.Int("status", a.status),
		slog.Int64("bytes", a.bytes),
		slog.Float64("duration_ms", a.durationMS),
		slog.String("client", addrString(a.client)),
	)
	if a.user != "" {
		attrs = append(attrs, slog.String("user", a.user))
	}
	if a.route != nil {
		attrs = append(attrs, slog.String("route", a.route.Name), slog.String("service", a.route.Service),
			slog.String("environment", a.route.Environment))
	}
	if d := a.decision; d != nil {
		attrs = append(attrs, slog.Bool("allow", d.Allow), slog.String("decision_id", d.ID))
	}
	return attrs
}

var accessBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// appendAccessJSON appends the record as slog's JSONHandler writes it for
// LogAttrs(ctx, LevelInfo, "request", a.attrs()...): the same keys, order,
// number and time formats and string escaping (TestAccessJSONMatchesSlog).
func appendAccessJSON(b []byte, t time.Time, a *accessFields) []byte {
	b = append(b, `{"time":"`...)
	b = t.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","level":"INFO","msg":"request","request_id":`...)
	b = jsonstr.Append(b, a.id)
	b = append(b, `,"method":`...)
	b = jsonstr.Append(b, a.method)
	b = append(b, `,"host":`...)
	b = jsonstr.Append(b, a.host)
	b = append(b, `,"path":`...)
	b = jsonstr.Append(b, a.path)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(a.status), 10)
	b = append(b, `,"bytes":`...)
	b = strconv.AppendInt(b, a.bytes, 10)
	b = append(b, `,"duration_ms":`...)
	b = appendJSONFloat(b, a.durationMS)
	b = append(b, `,"client":`...)
	if c := a.client; c.IsValid() && c.Zone() == "" {
		b = append(b, '"')
		b = c.AppendTo(b) // digits, dots, colons and hex: nothing to escape
		b = append(b, '"')
	} else {
		b = jsonstr.Append(b, addrString(c)) // a zone is any text
	}
	if a.user != "" {
		b = append(b, `,"user":`...)
		b = jsonstr.Append(b, a.user)
	}
	if a.route != nil {
		b = append(b, `,"route":`...)
		b = jsonstr.Append(b, a.route.Name)
		b = append(b, `,"service":`...)
		b = jsonstr.Append(b, a.route.Service)
		b = append(b, `,"environment":`...)
		b = jsonstr.Append(b, a.route.Environment)
	}
	if d := a.decision; d != nil {
		b = append(b, `,"allow":`...)
		b = strconv.AppendBool(b, d.Allow)
		b = append(b, `,"decision_id":`...)
		b = jsonstr.Append(b, d.ID)
	}
	return append(b, "}\n"...)
}

// appendJSONFloat formats f as encoding/json does (which slog uses).
func appendJSONFloat(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, `"!ERROR:unsupported value"`...) // never for a duration
	}
	abs, format := math.Abs(f), byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' { // clean up e-09 to e-9, as encoding/json does
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}
