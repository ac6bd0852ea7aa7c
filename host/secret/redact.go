package secret

import (
	"context"
	"log/slog"
	"regexp"
	"strings"
)

// RedactedCredential replaces a password or token inside a DSN or URL (see [RedactURLs]).
const RedactedCredential = "xxxxx"

var (
	// scheme://user:password@ — the password part, wherever the URL sits in the text.
	urlPassword = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]{0,31}://[^\s/@:'"]*):[^\s@'"]*@`)
	// ?password=… &token=… in a URL's query.
	queryCredential = regexp.MustCompile(`(?i)([?&;](?:password|passwd|pass|pwd|secret|client_secret|token|access_token|refresh_token|auth|api_?key|apikey|sslpassword|sslkey)=)[^&\s'"#]*`)
	// password=… in a key/value DSN (libpq: "host=db user=u password=p").
	keywordPassword = regexp.MustCompile(`(?i)((?:^|[\s,(])(?:password|sslpassword)\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s'"]+)`)
)

// RedactURLs returns text with the credentials of every DSN and URL in it replaced by
// [RedactedCredential]: the password of user:password@ (postgres://airlock:pw@db/x →
// postgres://airlock:xxxxx@db/x), credential query parameters (password, token, api_key,
// sslpassword …) and password=… in key/value DSNs. The rest is kept, so an operator can still
// tell which host and database an error is about. It is the one helper airlock uses wherever a
// DSN or URL may be printed: log lines (through [RedactingHandler]), errors a command prints,
// admin API responses.
func RedactURLs(text string) string {
	if !strings.Contains(text, "://") && !strings.Contains(text, "=") {
		return text // nothing that could hold a credential
	}
	text = urlPassword.ReplaceAllString(text, "${1}:"+RedactedCredential+"@")
	text = queryCredential.ReplaceAllString(text, "${1}"+RedactedCredential)
	return keywordPassword.ReplaceAllString(text, "${1}"+RedactedCredential)
}

// RedactingHandler wraps h so that every log record's message and attribute values (strings,
// errors, anything printed with %v) pass through [RedactURLs] first: a DSN or URL logged by any
// package, or inside an error from a driver, never shows its password.
func RedactingHandler(h slog.Handler) slog.Handler {
	switch h.(type) {
	case redactingHandler, *jsonHandler:
		return h // redacting already
	}
	return redactingHandler{h}
}

type redactingHandler struct{ next slog.Handler }

func (r redactingHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return r.next.Enabled(ctx, l)
}

func (r redactingHandler) Handle(ctx context.Context, rec slog.Record) error {
	if unchanged(rec) {
		return r.next.Handle(ctx, rec) // the common case, without copying the record
	}
	out := slog.NewRecord(rec.Time, rec.Level, RedactURLs(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(redactAttr(a))
		return true
	})
	return r.next.Handle(ctx, out)
}

// unchanged reports whether redaction would leave rec as it is: its message and string values
// hold nothing RedactURLs changes, and every other value is a number, bool, duration or time
// (a group, an error or any other value goes through redactAttr).
func unchanged(rec slog.Record) bool {
	if RedactURLs(rec.Message) != rec.Message {
		return false
	}
	same := true
	rec.Attrs(func(a slog.Attr) bool {
		switch a.Value.Kind() {
		case slog.KindString:
			s := a.Value.String()
			same = RedactURLs(s) == s
		case slog.KindAny, slog.KindGroup, slog.KindLogValuer:
			same = false
		}
		return same
	})
	return same
}

func (r redactingHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	red := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		red[i] = redactAttr(a)
	}
	return redactingHandler{r.next.WithAttrs(red)}
}

func (r redactingHandler) WithGroup(name string) slog.Handler {
	return redactingHandler{r.next.WithGroup(name)}
}

func redactAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, RedactURLs(v.String()))
	case slog.KindGroup:
		g := v.Group()
		red := make([]any, len(g))
		for i, x := range g {
			red[i] = redactAttr(x)
		}
		return slog.Group(a.Key, red...)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return slog.String(a.Key, RedactURLs(x.Error()))
		case interface{ String() string }:
			return slog.String(a.Key, RedactURLs(x.String()))
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}

// RedactedError returns err with its text passed through [RedactURLs]; errors.Is and errors.As
// still see err.
func RedactedError(err error) error {
	if err == nil {
		return nil
	}
	if t := RedactURLs(err.Error()); t != err.Error() {
		return redactedError{text: t, err: err}
	}
	return err
}

type redactedError struct {
	text string
	err  error
}

func (e redactedError) Error() string { return e.text }
func (e redactedError) Unwrap() error { return e.err }
