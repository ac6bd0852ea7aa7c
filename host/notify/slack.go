package notify

import (
	"fmt"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/host"
)

// Slack's documented limits (https://api.slack.com/reference/block-kit/blocks): a section's
// text at most 3000 characters, a button's text at most 75, its url at most 3000, a message's
// text at most 40000 (longer is truncated by Slack), at most 50 blocks.
const (
	slackSectionMax = 3000
	slackTextMax    = 40000
)

// SlackMessage is an incoming-webhook message (https://api.slack.com/messaging/webhooks): the
// fallback text for notifications and clients without blocks, and Block Kit blocks.
type SlackMessage struct {
	Text   string       `json:"text"`
	Blocks []SlackBlock `json:"blocks"`
}

// SlackBlock is a Block Kit block: section (Text), actions or context (Elements).
type SlackBlock struct {
	Type     string         `json:"type"`
	Text     *SlackText     `json:"text,omitempty"`
	Elements []SlackElement `json:"elements,omitempty"`
}

// SlackElement is an element of a block: a button (type button, Text a plain_text
// *SlackText, URL, Style) in actions, a text object (type mrkdwn, Text a string) in context.
type SlackElement struct {
	Type  string `json:"type"`
	Text  any    `json:"text"`
	URL   string `json:"url,omitempty"`
	Style string `json:"style,omitempty"`
}

// SlackText is a text object: type mrkdwn or plain_text.
type SlackText struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

// slackEscape escapes the three characters Slack's mrkdwn gives meaning to (&, <, >), so a
// name or argument cannot make a link or a mention.
var slackEscape = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

func clip(s string, max int) string {
	if r := []rune(s); len(r) > max {
		return string(r[:max-1]) + "…"
	}
	return s
}

// slackMessage renders p for Slack.
func slackMessage(p Payload) SlackMessage {
	esc := slackEscape.Replace
	var title, summary string
	var lines []string
	switch p.Event {
	case host.NoticeApprovalPending:
		title = "Approval needed"
		summary = fmt.Sprintf("%s.%s waits for an admin's approval (%s)", p.Connector, p.Tool, p.ID)
		lines = append(lines, fmt.Sprintf("*%s:* `%s.%s`", title, esc(p.Connector), esc(p.Tool)),
			fmt.Sprintf("*Agent:* %s   *Subject:* %s", esc(or(p.Agent, "—")), esc(or(p.Subject, "—"))))
		if p.ExpiresAt != "" {
			lines = append(lines, "*Expires:* "+slackDate(p.ExpiresAt))
		}
	case host.NoticeConnectionNeedsReauth:
		title = "Connection needs re-consent"
		summary = fmt.Sprintf("the %s connection of subject %s must be authorised again", p.Connector, p.Subject)
		lines = append(lines, fmt.Sprintf("*%s:* %s (subject %s, credential %s)", title, esc(p.Connector), esc(p.Subject), esc(p.Slot)))
	case host.NoticeBreakerOpen:
		title = "Upstream failing"
		summary = fmt.Sprintf("the circuit breaker of %s (connector %s) opened", p.Host, p.Connector)
		lines = append(lines, fmt.Sprintf("*%s:* circuit breaker of `%s` opened (connector %s)", title, esc(p.Host), esc(p.Connector)))
	default:
		title, summary = p.Event, p.Event
		lines = append(lines, "*"+esc(p.Event)+"*")
	}
	if p.Detail != "" {
		lines = append(lines, esc(p.Detail))
	}
	m := SlackMessage{Text: clip("airlock: "+summary, slackTextMax)}
	if p.Link != "" {
		m.Text = clip("airlock: "+summary+": "+p.Link, slackTextMax)
	}
	m.Blocks = append(m.Blocks, SlackBlock{Type: "section", Text: &SlackText{Type: "mrkdwn", Text: clip(strings.Join(lines, "\n"), slackSectionMax)}})
	if len(p.Arguments) > 0 {
		m.Blocks = append(m.Blocks, SlackBlock{Type: "section", Text: &SlackText{Type: "mrkdwn",
			Text: "*Arguments:*\n```" + clip(esc(string(p.Arguments)), slackSectionMax-20) + "```"}})
	}
	if p.Link != "" {
		label := "Open the console"
		if p.Event == host.NoticeApprovalPending {
			label = "Review and decide"
		}
		m.Blocks = append(m.Blocks, SlackBlock{Type: "actions", Elements: []SlackElement{{Type: "button",
			Text: &SlackText{Type: "plain_text", Text: label}, URL: p.Link, Style: "primary"}}})
	}
	ctx := "airlock · " + esc(p.Event)
	if p.Event == host.NoticeApprovalPending {
		ctx += fmt.Sprintf(" · or run `airlock approve %s` / `airlock deny %s`", esc(p.ID), esc(p.ID))
	}
	m.Blocks = append(m.Blocks, SlackBlock{Type: "context", Elements: []SlackElement{{Type: "mrkdwn", Text: ctx}}})
	return m
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// slackDate formats an RFC 3339 time for Slack, shown in each reader's time zone.
func slackDate(rfc3339 string) string {
	t, err := time.Parse(time.RFC3339, rfc3339)
	if err != nil {
		return rfc3339
	}
	return fmt.Sprintf("<!date^%d^{date_short_pretty} {time}|%s>", t.Unix(), rfc3339)
}
