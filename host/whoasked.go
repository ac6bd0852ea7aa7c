package host

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/airlock-dev/airlock/host/audit"
)

// MaxLabelLen bounds each who-asked label of a call (CallRequest.Session, Conversation, User)
// in bytes: a longer one is cut at a character boundary and ends with "…".
const MaxLabelLen = 128

// whoAsked copies the who-asked labels of req, sanitised, into req and the audit event. An
// agent controls them, so they are only labels: never used for a decision.
func whoAsked(req *CallRequest, ev *audit.Event) {
	req.Session, req.Conversation, req.User = Label(req.Session), Label(req.Conversation), Label(req.User)
	ev.Session, ev.Conversation, ev.User = req.Session, req.Conversation, req.User
}

// Label returns s as the host records a who-asked label: without control and formatting
// characters (line breaks, bidirectional overrides, zero-width characters, invalid UTF-8),
// with runs of spaces collapsed and the ends trimmed, and at most MaxLabelLen bytes.
func Label(s string) string {
	if s == "" {
		return ""
	}
	var b strings.Builder
	space := false
	for _, r := range s {
		switch {
		case r == utf8.RuneError, unicode.Is(unicode.Cf, r), unicode.IsControl(r) && !unicode.IsSpace(r):
			continue
		case unicode.IsSpace(r):
			space = b.Len() > 0
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
	}
	out := b.String()
	if len(out) > MaxLabelLen {
		cut := MaxLabelLen - len("…")
		for cut > 0 && !utf8.RuneStart(out[cut]) {
			cut--
		}
		out = out[:cut] + "…"
	}
	return out
}
