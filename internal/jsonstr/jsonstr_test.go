package jsonstr

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"
	"unicode/utf8"
)

// slogQuoted is how slog's JSON handler writes s as the value of "k".
func slogQuoted(t testing.TB, s string) []byte {
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey || a.Key == slog.LevelKey || a.Key == slog.MessageKey {
				return slog.Attr{}
			}
			return a
		},
	})).Info("", "k", s)
	out := bytes.TrimSuffix(buf.Bytes(), []byte("}\n"))
	q, ok := bytes.CutPrefix(out, []byte(`{"k":`))
	if !ok {
		t.Fatalf("slog wrote %q", buf.Bytes())
	}
	return q
}

var seeds = []string{"", "plain", "quote\"back\\slash", "\x00\x1f\x7f", "line\nfeed\r\ttab", "\xff\xfe", "\u2028 é 日本 \u2029",
	"<script>&amp;</script>", "a\xc3"}

func TestAppendMatchesSlog(t *testing.T) {
	for _, s := range seeds {
		if got, want := Append([]byte("x"), s), append([]byte("x"), slogQuoted(t, s)...); !bytes.Equal(got, want) {
			t.Errorf("Append(%q) = %s, slog writes %s", s, got[1:], want[1:])
		}
	}
}

func FuzzAppend(f *testing.F) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := Append(nil, s)
		if want := slogQuoted(t, s); !bytes.Equal(b, want) {
			t.Fatalf("Append(%q) = %s, slog writes %s", s, b, want)
		}
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("invalid JSON %s for %q: %v", b, s, err)
		}
		if utf8.ValidString(s) && got != s {
			t.Fatalf("round trip %q -> %q", s, got)
		}
	})
}

func BenchmarkAppend(b *testing.B) {
	b.ReportAllocs()
	buf := make([]byte, 0, 256)
	for b.Loop() {
		buf = Append(buf[:0], "GET /api/v1/payments?x=1 \"quoted\" é")
	}
}
