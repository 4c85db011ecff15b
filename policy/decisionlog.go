package policy

import (
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/backgate/backgate/internal/jsonstr"
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
	b = jsonstr.Append(b, d.ID)
	b = append(b, `,"timestamp":`...)
	b = jsonstr.Append(b, ts.UTC().Format(time.RFC3339Nano))
	b = append(b, `,"path":"`+decisionPath+`","input":{"user":{"sub":`...)
	b = jsonstr.Append(b, in.User.Subject)
	b = append(b, `,"iss":`...)
	b = jsonstr.Append(b, in.User.Issuer)
	b = append(b, `,"email":`...)
	b = jsonstr.Append(b, in.User.Email)
	b = append(b, `,"ref":`...)
	b = jsonstr.Append(b, d.UserRef)
	b = append(b, `,"groups":`...)
	b = appendStrings(b, in.User.Groups)
	b = append(b, `},"request":{"method":`...)
	b = jsonstr.Append(b, in.Request.Method)
	b = append(b, `,"host":`...)
	b = jsonstr.Append(b, in.Request.Host)
	b = append(b, `,"path":`...)
	b = jsonstr.Append(b, in.Request.Path)
	b = append(b, `},"route":{"name":`...)
	b = jsonstr.Append(b, in.Route.Name)
	b = append(b, `,"service":`...)
	b = jsonstr.Append(b, in.Route.Service)
	b = append(b, `,"environment":`...)
	b = jsonstr.Append(b, in.Route.Environment)
	b = append(b, `},"time":`...)
	b = jsonstr.Append(b, in.Time.UTC().Format(time.RFC3339Nano))
	b = append(b, `},"result":{"allow":`...)
	b = strconv.AppendBool(b, d.Allow)
	b = append(b, `,"reasons":`...)
	b = appendStrings(b, d.Reasons)
	b = append(b, `,"rules":`...)
	b = appendStrings(b, d.Rules)
	if d.GrantID != "" {
		b = append(b, `,"grant_id":`...)
		b = jsonstr.Append(b, d.GrantID)
		b = append(b, `,"grant_expires_at":`...)
		b = jsonstr.Append(b, d.GrantExpiry.UTC().Format(time.RFC3339Nano))
	}
	b = append(b, '}')
	if evalErr != nil {
		b = append(b, `,"error":`...)
		b = jsonstr.Append(b, evalErr.Error())
	}
	b = append(b, `,"labels":{"policy_revision":`...)
	b = jsonstr.Append(b, d.PolicyRevision)
	b = append(b, `,"catalog_revision":`...)
	b = jsonstr.Append(b, d.CatalogRevision)
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
		b = jsonstr.Append(b, s)
	}
	return append(b, ']')
}
