package access

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	acc "github.com/backgate/backgate/access"
	"github.com/backgate/backgate/proxy"
	"github.com/backgate/backgate/proxy/auth"
)

// Input limits; requests above them are refused with a message naming the
// field.
const (
	maxRefLen    = 256
	maxEnvLen    = 64
	maxReasonLen = acc.MaxReasonLen // characters; the templates' maxlength says the same
	maxEmailLen  = 254
	maxBodyBytes = 64 << 10
	minDuration  = time.Minute
)

// durationChoices are what the form offers, filtered by the policy maximum.
var durationChoices = []time.Duration{
	15 * time.Minute, time.Hour, 4 * time.Hour, 8 * time.Hour, 24 * time.Hour, 72 * time.Hour, 7 * 24 * time.Hour,
}

// inputError is bad input: status 400, the message shown as is.
type inputError struct{ msg string }

func (e *inputError) Error() string { return e.msg }

func badInput(format string, a ...any) error { return &inputError{msg: fmt.Sprintf(format, a...)} }

// createInput is a request for access as a page or the API received it.
type createInput struct {
	Service, Env, Duration, Reason string
}

// checkText validates a one-line field.
func checkText(field, v string, max int) (string, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return "", badInput("%s is required", field)
	}
	if len(v) > max {
		return "", badInput("%s is longer than %d bytes", field, max)
	}
	if !utf8.ValidString(v) {
		return "", badInput("%s is not valid UTF-8", field)
	}
	for _, c := range v {
		if unicode.IsControl(c) || unicode.IsSpace(c) {
			return "", badInput("%s %q contains spaces or control characters", field, v)
		}
	}
	return v, nil
}

// checkReason validates a free-text reason; empty is an error when required.
func checkReason(v string, required bool) (string, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		if required {
			return "", badInput("reason is required: say why")
		}
		return "", nil
	}
	if utf8.RuneCountInString(v) > maxReasonLen {
		return "", badInput("reason is longer than %d characters", maxReasonLen)
	}
	if !utf8.ValidString(v) {
		return "", badInput("reason is not valid UTF-8")
	}
	for _, c := range v {
		if unicode.IsControl(c) && c != '\n' && c != '\r' && c != '\t' {
			return "", badInput("reason contains control characters")
		}
	}
	return v, nil
}

// parseDuration accepts Go durations ("90m", "4h") and whole days ("7d").
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, badInput("duration is required")
	}
	if len(s) > 32 {
		return 0, badInput("duration is longer than 32 bytes")
	}
	var d time.Duration
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(days)
		if err != nil || n < 1 || n > 366 {
			return 0, badInput("duration %q is not a duration like 1h or 7d", s)
		}
		d = time.Duration(n) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return 0, badInput("duration %q is not a duration like 1h or 7d", s)
		}
	}
	if d < minDuration {
		return 0, badInput("duration %q is shorter than %s", s, formatDuration(minDuration))
	}
	return d, nil
}

// formatDuration writes d briefly: "15m", "4h", "1h30m", "7d".
func formatDuration(d time.Duration) string {
	if d <= 0 {
		return "0m"
	}
	var b strings.Builder
	if d >= 48*time.Hour && d%(24*time.Hour) == 0 {
		return strconv.Itoa(int(d/(24*time.Hour))) + "d"
	}
	if h := d / time.Hour; h > 0 {
		b.WriteString(strconv.Itoa(int(h)) + "h")
		d -= h * time.Hour
	}
	if m := d / time.Minute; m > 0 {
		b.WriteString(strconv.Itoa(int(m)) + "m")
		d -= m * time.Minute
	}
	if s := d / time.Second; s > 0 {
		b.WriteString(strconv.Itoa(int(s)) + "s")
	}
	return b.String()
}

// humanDuration is the form's label: "15 minutes", "1 hour", "3 days".
func humanDuration(d time.Duration) string {
	plural := func(n int, unit string) string {
		if n == 1 {
			return "1 " + unit
		}
		return strconv.Itoa(n) + " " + unit + "s"
	}
	switch {
	case d >= 48*time.Hour && d%(24*time.Hour) == 0:
		return plural(int(d/(24*time.Hour)), "day")
	case d >= time.Hour && d%time.Hour == 0:
		return plural(int(d/time.Hour), "hour")
	case d%time.Minute == 0:
		return plural(int(d/time.Minute), "minute")
	}
	return formatDuration(d)
}

// allowedDurations are the choices up to max, plus max itself when it is
// not one of them.
func allowedDurations(max time.Duration) []time.Duration {
	var out []time.Duration
	for _, d := range durationChoices {
		if d <= max {
			out = append(out, d)
		}
	}
	if max >= minDuration && (len(out) == 0 || out[len(out)-1] != max) {
		out = append(out, max)
	}
	return out
}

// maxFor asks the policy for the maximum duration of service in env and
// turns "unknown" and "not offered" into bad input.
func (h *Handler) maxFor(ctx context.Context, service, env string) (time.Duration, error) {
	max, err := h.opt.Service.MaxDuration(ctx, service, env)
	switch {
	case errors.Is(err, acc.ErrNotFound):
		return 0, badInput("unknown service %q", service)
	case errors.Is(err, acc.ErrInvalid):
		return 0, badInput("%v", err) // names the service or environment
	case err != nil:
		return 0, fmt.Errorf("max duration of %s in %s: %w", service, env, err)
	case max < minDuration:
		return 0, badInput("temporary access to %q is not offered in environment %q", service, env)
	}
	return max, nil
}

// checkCreate validates in against the policy and returns the duration.
func (h *Handler) checkCreate(ctx context.Context, in *createInput) (time.Duration, time.Duration, error) {
	var err error
	if in.Service, err = checkText("service", in.Service, maxRefLen); err != nil {
		return 0, 0, err
	}
	if in.Env, err = checkText("environment", in.Env, maxEnvLen); err != nil {
		return 0, 0, err
	}
	max, err := h.maxFor(ctx, in.Service, in.Env)
	if err != nil {
		return 0, 0, err
	}
	d, err := parseDuration(in.Duration)
	if err != nil {
		return 0, max, err
	}
	if d > max {
		return 0, max, badInput("duration %s is above the maximum of %s for %s in %s", formatDuration(d), formatDuration(max), in.Service, in.Env)
	}
	if in.Reason, err = checkReason(in.Reason, true); err != nil {
		return 0, max, err
	}
	return d, max, nil
}

// checkEmail validates an on_behalf_of address.
func checkEmail(v string) (string, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return "", badInput("on_behalf_of is required for service tokens: name the person's e-mail")
	}
	local, domain, ok := strings.Cut(v, "@")
	if !ok || local == "" || domain == "" || strings.Contains(domain, "@") || len(v) > maxEmailLen {
		return "", badInput("on_behalf_of %q is not an e-mail address", v)
	}
	for _, c := range v {
		if c <= ' ' || c >= 0x7f {
			return "", badInput("on_behalf_of %q is not an e-mail address", v)
		}
	}
	return v, nil
}

// returnLink validates the "return" parameter: a path on this host, or an
// absolute URL on an allowed host. Anything else is dropped.
func (h *Handler) returnLink(r *http.Request, raw string) string {
	if raw == "" {
		return ""
	}
	if strings.HasPrefix(raw, "/") && !strings.HasPrefix(raw, "//") {
		if u, err := auth.ValidateReturnURL("http://"+r.Host+raw, func(string) bool { return true }); err == nil {
			return u.RequestURI()
		}
		return ""
	}
	allow := h.opt.AllowReturnHost
	if allow == nil {
		own := strings.ToLower(r.Host)
		allow = func(host string) bool {
			return host == own || host == proxy.StripDefaultPort("https", own) || host == proxy.StripDefaultPort("http", own)
		}
	}
	u, err := auth.ValidateReturnURL(raw, allow)
	if err != nil {
		return ""
	}
	return u.String()
}

// parseForm reads a urlencoded body of bounded size.
func parseForm(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	if err := r.ParseForm(); err != nil {
		return badInput("the form could not be read")
	}
	return nil
}
