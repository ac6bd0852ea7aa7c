package secret_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/host/secret"
)

func TestRedactURLs(t *testing.T) {
	const pw = "S3cr-et_pw"
	for _, tc := range []struct{ in, want string }{
		{"postgres://airlock:" + pw + "@db:5432/airlock?sslmode=require", "postgres://airlock:xxxxx@db:5432/airlock?sslmode=require"},
		{`cannot parse "postgresql://u:` + pw + `@h/d": bad port`, `cannot parse "postgresql://u:xxxxx@h/d": bad port`},
		{"redis://:" + pw + "@cache:6379/0", "redis://:xxxxx@cache:6379/0"},
		{"postgres://h/d?user=a&password=" + pw + "&sslmode=disable", "postgres://h/d?user=a&password=xxxxx&sslmode=disable"},
		{"https://api.example.com/x?api_key=" + pw, "https://api.example.com/x?api_key=xxxxx"},
		{"host=db user=a password=" + pw + " dbname=x", "host=db user=a password=xxxxx dbname=x"},
		{"host=db password='" + pw + " x' dbname=x", "host=db password=xxxxx dbname=x"},
		{"https://slack.com/api/chat.postMessage", "https://slack.com/api/chat.postMessage"},
		{"postgres://airlock@db/airlock", "postgres://airlock@db/airlock"},
		{"no url here", "no url here"},
	} {
		if got := secret.RedactURLs(tc.in); got != tc.want {
			t.Errorf("RedactURLs(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// Whatever logs a DSN — a message, a string attribute, an error from a driver, a group —
// the record that reaches the handler has no password.
func TestRedactingHandler(t *testing.T) {
	const pw = "Log-Canary-pw-77"
	dsn := "postgres://airlock:" + pw + "@db/airlock"
	var buf bytes.Buffer
	l := slog.New(secret.RedactingHandler(slog.NewJSONHandler(&buf, nil))).With("state", dsn)
	l.Warn("cannot reach "+dsn, "err", errors.New("dial "+dsn+": refused"), slog.Group("g", "dsn", dsn))
	l.WithGroup("x").Info("ok", "url", "redis://:"+pw+"@cache/0")
	if strings.Contains(buf.String(), pw) || !strings.Contains(buf.String(), "postgres://airlock:xxxxx@db/airlock") {
		t.Errorf("log output = %s", buf.String())
	}
	err := secret.RedactedError(errors.New("connect " + dsn))
	if strings.Contains(err.Error(), pw) || errors.Unwrap(err) == nil {
		t.Errorf("RedactedError = %q (unwraps to %v)", err, errors.Unwrap(err))
	}
}

type dsnStringer string

func (s dsnStringer) String() string { return string(s) }

// Records that are clean but for one value — the last string among numbers, a Stringer, a
// value resolved later, the message alone — are redacted too (the handler passes clean records
// through without copying them, so each kind of value must be recognised as maybe unclean).
func TestRedactingHandlerFindsTheOneUncleanValue(t *testing.T) {
	const pw = "Log-Canary-pw-78"
	dsn := "postgres://airlock:" + pw + "@db/airlock"
	for name, log := range map[string]func(*slog.Logger){
		"last string": func(l *slog.Logger) {
			l.LogAttrs(context.Background(), slog.LevelInfo, "call", slog.Int("n", 1), slog.Float64("ms", 2.5),
				slog.Bool("ok", true), slog.Duration("d", time.Second), slog.String("clean", "a=b?"), slog.String("dsn", dsn))
		},
		"stringer":  func(l *slog.Logger) { l.Info("call", "n", 1, "dsn", dsnStringer(dsn)) },
		"valuer":    func(l *slog.Logger) { l.Info("call", "dsn", slog.AnyValue(dsnValuer(dsn))) },
		"message":   func(l *slog.Logger) { l.Info("cannot reach "+dsn, "n", 1) },
		"query key": func(l *slog.Logger) { l.Info("call", "url", "https://h/p?password="+pw) },
	} {
		var buf bytes.Buffer
		log(slog.New(secret.RedactingHandler(slog.NewJSONHandler(&buf, nil))))
		if strings.Contains(buf.String(), pw) || buf.Len() == 0 {
			t.Errorf("%s: log output = %s", name, buf.String())
		}
	}
}

type dsnValuer string

func (v dsnValuer) LogValue() slog.Value { return slog.StringValue(string(v)) }
