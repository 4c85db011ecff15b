package policy

import (
	"io"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// decisionLogger writes one JSON object per line, with OPA's decision-log
// field names (decision_id, timestamp, path, input, result, labels). The
// input part is a fixed allow-list of identity and routing fields: no token,
// cookie or header can reach it because Input holds none and nothing else is
// copied.
type decisionLogger struct {
	mu  sync.Mutex
	w   io.Writer
	buf []byte
}

const decisionPath = "backgate/authz/decision"

func (l *decisionLogger) log(ts time.Time, in *Input, d *Decision, evalErr error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buf[:0]
	b = append(b, `{"decision_id":`...)
	b = appendJSONString(b, d.ID)
	b = append(b, `,"timestamp":`...)
	b = appendJSONString(b, ts.UTC().Format(time.RFC3339Nano))
	b = append(b, `,"path":"`+decisionPath+`","input":{"user":{"sub":`...)
	b = appendJSONString(b, in.User.Subject)
	b = append(b, `,"iss":`...)
	b = appendJSONString(b, in.User.Issuer)
	b = append(b, `,"email":`...)
	b = appendJSONString(b, in.User.Email)
	b = append(b, `,"ref":`...)
	b = appendJSONString(b, d.UserRef)
	b = append(b, `,"groups":`...)
	b = appendStrings(b, in.User.Groups)
	b = append(b, `},"request":{"method":`...)
	b = appendJSONString(b, in.Request.Method)
	b = append(b, `,"host":`...)
	b = appendJSONString(b, in.Request.Host)
	b = append(b, `,"path":`...)
	b = appendJSONString(b, in.Request.Path)
	b = append(b, `},"route":{"name":`...)
	b = appendJSONString(b, in.Route.Name)
	b = append(b, `,"service":`...)
	b = appendJSONString(b, in.Route.Service)
	b = append(b, `,"environment":`...)
	b = appendJSONString(b, in.Route.Environment)
	b = append(b, `},"time":`...)
	b = appendJSONString(b, in.Time.UTC().Format(time.RFC3339Nano))
	b = append(b, `},"result":{"allow":`...)
	b = strconv.AppendBool(b, d.Allow)
	b = append(b, `,"reasons":`...)
	b = appendStrings(b, d.Reasons)
	b = append(b, `,"rules":`...)
	b = appendStrings(b, d.Rules)
	if d.GrantID != "" {
		b = append(b, `,"grant_id":`...)
		b = appendJSONString(b, d.GrantID)
		b = append(b, `,"grant_expires_at":`...)
		b = appendJSONString(b, d.GrantExpiry.UTC().Format(time.RFC3339Nano))
	}
	b = append(b, '}')
	if evalErr != nil {
		b = append(b, `,"error":`...)
		b = appendJSONString(b, evalErr.Error())
	}
	b = append(b, `,"labels":{"policy_revision":`...)
	b = appendJSONString(b, d.PolicyRevision)
	b = append(b, `,"catalog_revision":`...)
	b = appendJSONString(b, d.CatalogRevision)
	b = append(b, "}}\n"...)
	l.buf = b
	_, _ = l.w.Write(b) // a failing log sink must not change the decision
}

func appendStrings(b []byte, ss []string) []byte {
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, s)
	}
	return append(b, ']')
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string; invalid UTF-8 becomes U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20 || c == 0x7f:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, `\u202`...)
			b = append(b, hexDigits[r&0xf])
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
