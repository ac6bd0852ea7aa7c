package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/airlock-dev/airlock/pdk"
	"github.com/airlock-dev/airlock/pdk/pdkjson"
)

const (
	// baseURL is the only origin the connector talks to; the host may route it elsewhere (a
	// grant's upstreams), the connector never changes it.
	baseURL = "https://slack.com/api/"
	// credential is the manifest's credential slot: a bot token the host injects as a bearer.
	credential = "bot_token"

	maxTextLen       = 40000 // Slack's limit for chat.postMessage text
	maxListLimit     = 200   // channels per list_channels call
	defaultListLimit = 100
	maxListPages     = 10 // Slack pages list_channels follows per call
	maxHistoryLimit  = 200
	defaultHistory   = 20

	// historyTierKey is the grant setting that says which of Slack's conversations.history
	// limits apply to the app. Since 2025 Slack gives commercially distributed apps that are
	// not on the Slack Marketplace 1 request a minute and at most 15 messages per request
	// (tierNonMarketplace); Marketplace apps and a customer's own internal apps keep Tier 3
	// (tierStandard, the default). The manifest's non_marketplace value also brings the
	// matching rate, which the host's rate limiter enforces; the host refuses a grant whose
	// value is neither (README.md).
	historyTierKey           = "history_tier"
	tierStandard             = "standard"
	tierNonMarketplace       = "non_marketplace"
	maxNonMarketplaceHistory = 15
)

// slackError is Slack's failure envelope: HTTP 200 with ok false. For invalid_blocks and
// invalid_arguments, response_metadata.messages says what is wrong, e.g. "[ERROR] must be less
// than 3001 characters [json-pointer:/blocks/0/text/text]".
type slackError struct {
	OK       bool
	Error    string
	Needed   string
	Provided string
	Metadata struct {
		Messages []string
	}
}

// resultField reads a member of a Slack answer besides its envelope (ok, error, needed,
// provided, response_metadata) from d.
type resultField func(d *pdkjson.Decoder, key string)

// call invokes a Slack Web API method. Reads use GET with query parameters (idempotent, so the
// host may retry them); writes POST a JSON body. result reads the members of the answer;
// nextCursor is its response_metadata.next_cursor.
func call(method string, query url.Values, body []byte, channel string, result resultField) (nextCursor string, err error) {
	// Retry-After is the only header the connector reads: the host sends no others to decode.
	req := pdk.HTTPRequest{Method: "GET", URL: baseURL + method, Credential: credential, ResponseHeaders: retryAfter}
	if len(query) > 0 {
		req.URL += "?" + query.Encode()
	}
	if body != nil {
		req.Method, req.Body, req.Headers = "POST", body, jsonBody
	}
	resp, err := pdk.HTTP(req)
	if err != nil {
		return "", err // a host refusal: already agent-readable
	}
	switch {
	case resp.Status == 429:
		after := pdk.RetryAfter(resp.Headers)
		return "", pdk.Retryable(pdk.CodeRateLimited, after,
			"Slack is rate limiting %s; try again in %s", method, waitText(after))
	case resp.Status >= 500:
		return "", pdk.Retryable(pdk.CodeUnavailable, 0,
			"Slack is having trouble (HTTP %d); try again in a minute", resp.Status)
	case resp.Status != 200:
		return "", pdk.Fatal("unexpected_response",
			"Slack answered %s with HTTP %d, which this connector does not expect", method, resp.Status)
	}
	// One pass: the decoder goes on after a value of the wrong type (as encoding/json does), so
	// the envelope is read even when the result is not.
	var env slackError
	var d pdkjson.Decoder
	d.Reset(resp.Body)
	d.Object(func(key string) {
		switch key {
		case "ok":
			env.OK = d.Bool()
		case "error":
			env.Error = d.String()
		case "needed":
			env.Needed = d.String()
		case "provided":
			env.Provided = d.String()
		case "response_metadata":
			d.Object(func(key string) {
				switch key {
				case "messages":
					env.Metadata.Messages = env.Metadata.Messages[:0]
					d.Array(func(int) { env.Metadata.Messages = append(env.Metadata.Messages, d.String()) })
				case "next_cursor":
					nextCursor = d.String()
				}
			})
		default:
			if result != nil {
				result(&d, key)
			}
		}
	})
	err = d.End()
	if _, syntax := errors.AsType[*pdkjson.SyntaxError](err); syntax {
		return "", pdk.Fatal("unexpected_response", "Slack sent an answer to %s that is not JSON", method)
	}
	// A Slack error needs its code; an answer that is not an object has none and is unreadable.
	if !env.OK && (err == nil || env.Error != "") {
		return "", slackToolError(method, channel, env)
	}
	if err != nil {
		return "", pdk.Fatal("unexpected_response", "Slack sent an answer to %s this connector cannot read", method)
	}
	return nextCursor, nil
}

var (
	retryAfter = []string{"Retry-After"}
	jsonBody   = map[string][]string{"Content-Type": {"application/json; charset=utf-8"}} // read only
)

func waitText(after time.Duration) string {
	s := int(after.Seconds())
	switch {
	case s <= 0:
		return "a little while"
	case s == 1:
		return "1 second"
	default:
		return strconv.Itoa(s) + " seconds"
	}
}

// slackToolError turns a Slack error code into a tool error an agent can act on. Every code
// Slack documents for chat.postMessage, conversations.list and conversations.history, and the
// errors common to all methods, is mapped deliberately; README.md has the table.
func slackToolError(method, channel string, e slackError) error {
	ch := channel
	if ch == "" {
		ch = "(none given)"
	}
	switch e.Error {
	// The channel.
	case "not_in_channel":
		return pdk.Correctable(e.Error, "the bot is not in channel %s: invite it with /invite @bot, or choose another channel", ch)
	case "no_permission":
		return pdk.Correctable(e.Error, "Slack refused: the app has no permission in channel %s (usually it is not a member): invite the bot with /invite @bot, or ask a Slack admin to allow the app there", ch)
	case "channel_not_found":
		return pdk.Correctable(e.Error, "Slack has no channel %s that the bot can see: use list_channels to find the channel ID (it looks like C0123ABCD)", ch)
	case "is_archived":
		return pdk.Correctable(e.Error, "channel %s is archived, so nobody can post in it: choose another channel", ch)
	case "ekm_access_denied":
		return pdk.Correctable(e.Error, "Slack admins have suspended posting in channel %s (Enterprise Key Management); retrying will not help: choose another channel or ask a Slack admin", ch)
	case "restricted_action", "restricted_action_read_only_channel", "restricted_action_thread_only_channel",
		"restricted_action_non_threadable_channel", "restricted_action_thread_locked", "cannot_reply_to_message":
		return pdk.Correctable(e.Error, "Slack does not allow the bot to do this in channel %s (%s): choose another channel or thread, or ask a Slack admin", ch, e.Error)
	case "messages_tab_disabled":
		return pdk.Correctable(e.Error, "the app's Messages tab is turned off, so it cannot send direct messages: choose a channel, or ask a Slack admin to turn the tab on")
	case "slack_connect_file_link_sharing_blocked", "slack_connect_canvas_sharing_blocked", "slack_connect_lists_sharing_blocked":
		return pdk.Correctable(e.Error, "channel %s is shared with another organisation, which does not allow the linked file, canvas or list (%s): remove the link", ch, e.Error)
	case "message_limit_exceeded":
		return pdk.Correctable(e.Error, "Slack refused: the workspace has reached its message limit (free workspaces have usage limits); retrying soon will not help: ask a Slack admin")

	// The message.
	case "no_text":
		return pdk.Correctable(e.Error, "the message is empty: give text (and optionally blocks)")
	case "msg_too_long":
		return pdk.Correctable(e.Error, "the message text is too long: Slack accepts at most %d characters; shorten it or split it into several messages", maxTextLen)
	case "invalid_blocks", "invalid_blocks_format", "msg_blocks_too_long":
		return pdk.Correctable(e.Error, "Slack rejected the blocks%s (%s): fix that block (Block Kit: section text up to 3000 characters or up to 10 fields, header up to 150, at most 50 blocks), or send text only", blockDetail(e), e.Error)
	case "too_many_attachments", "attachment_payload_limit_exceeded", "too_many_contact_cards":
		return pdk.Correctable(e.Error, "the message carries too much (%s): send less", e.Error)

	// Arguments.
	case "invalid_cursor":
		return pdk.Correctable(e.Error, "the cursor is not valid (cursors come from next_cursor and expire): start again without a cursor")
	case "invalid_ts_oldest", "invalid_ts_latest":
		return pdk.Correctable(e.Error, "oldest and latest must be Slack timestamps such as 1700000000.000100")
	case "invalid_types", "method_not_supported_for_channel_type":
		return pdk.Correctable(e.Error, "types must be public_channel and/or private_channel")
	case "invalid_limit":
		return pdk.Correctable(e.Error, "limit is out of range: give a number from 1 to the tool's maximum")
	case "invalid_arguments", "missing_argument":
		return pdk.Correctable(e.Error, "Slack rejected the arguments of %s%s: check them and try again", method, detail(e))

	// The credential and the app's rights.
	case "missing_scope":
		has := e.Provided
		if has == "" {
			has = "none"
		}
		return pdk.Correctable(e.Error, "Slack refused: the token lacks scope %s (it has: %s); ask an admin to add it", e.Needed, has)
	case "not_authed", "invalid_auth", "account_inactive", "token_revoked", "token_expired", "org_login_required",
		"not_allowed_token_type", "two_factor_setup_required":
		return pdk.Fatal("credential_rejected", "the Slack credential was rejected (%s); ask an admin to check the grant", e.Error)
	case "team_access_not_granted", "access_denied", "accesslimited":
		return pdk.Correctable(e.Error, "Slack refused the app access (%s): ask a Slack admin to grant the app access to this workspace, or to allow it from this network", e.Error)
	case "enterprise_is_restricted", "is_bot", "as_user_not_supported", "deprecated_endpoint", "method_deprecated", "upgrade_required":
		return pdk.Fatal("unsupported", "Slack does not let this connector call %s here (%s); ask an admin to check the Slack app", method, e.Error)

	// Rate limits and outages.
	case "ratelimited", "rate_limited":
		return pdk.Retryable(pdk.CodeRateLimited, 0, "Slack is rate limiting %s; try again in a minute", method)
	case "internal_error", "fatal_error", "service_unavailable", "request_timeout", "team_added_to_org":
		return pdk.Retryable(pdk.CodeUnavailable, 0, "Slack had an internal problem (%s); try again in a minute", e.Error)

	// The connector's own request: nothing the agent can change.
	case "invalid_arg_name", "invalid_array_arg", "invalid_charset", "invalid_form_data", "invalid_post_type",
		"missing_post_type", "invalid_json", "json_not_object", "invalid_metadata_format", "invalid_metadata_schema",
		"metadata_too_large", "metadata_must_be_sent_from_app", "duplicate_channel_not_found", "duplicate_message_not_found":
		return pdk.Fatal("unexpected_response", "Slack could not read the connector's request to %s (%s%s); this is a connector problem: report it", method, e.Error, detail(e))
	default:
		return pdk.Correctable(e.Error, "Slack refused %s: %s%s", method, e.Error, detail(e))
	}
}

// blockPointerRE finds the block a Slack validation message points at ("[json-pointer:/blocks/3/text]").
var blockPointerRE = regexp.MustCompile(`\[json-pointer:/blocks/([0-9]{1,3})(/[^\]]*)?\]`)

// blockDetail names the offending block of an invalid_blocks answer, with Slack's reason:
// " in blocks[3] (must be less than 3001 characters at /text/text)"; "" when Slack said none.
func blockDetail(e slackError) string {
	for _, m := range e.Metadata.Messages {
		if sub := blockPointerRE.FindStringSubmatch(m); sub != nil {
			reason := strings.TrimSpace(strings.TrimPrefix(blockPointerRE.ReplaceAllString(m, ""), "[ERROR]"))
			if sub[2] != "" {
				reason += " at " + sub[2]
			}
			return fmt.Sprintf(" in blocks[%s] (%s)", sub[1], truncate(reason, 200))
		}
	}
	return detail(e)
}

// detail is Slack's first response_metadata message, as " (…)", or "".
func detail(e slackError) string {
	if len(e.Metadata.Messages) == 0 {
		return ""
	}
	return ": " + truncate(strings.TrimSpace(strings.TrimPrefix(e.Metadata.Messages[0], "[ERROR]")), 200)
}

// validChannel reports whether id looks like a Slack conversation ID (manifest: channel pattern).
func validChannel(id string) bool {
	if len(id) < 3 || !strings.ContainsRune("CGD", rune(id[0])) {
		return false
	}
	for _, r := range id[1:] {
		if !('A' <= r && r <= 'Z' || '0' <= r && r <= '9') {
			return false
		}
	}
	return true
}

func badChannel(id string) error {
	return pdk.Correctable(pdk.CodeInvalidArguments,
		"channel %q is not a Slack channel ID (like C0123ABCD): use list_channels to find it", id)
}

// --- post_message ---
//
// The tools read their arguments and Slack's answers and write the request and their result with
// pdkjson, without reflection: as WebAssembly, encoding/json was most of a call's own work
// (RATIONALE.md). The JSON is the same as encoding/json's for the structs below.

type postMessageArgs struct {
	Channel  string
	Text     string
	Blocks   []json.RawMessage
	ThreadTS string
}

func postMessage() error {
	var args postMessageArgs
	if err := pdk.InputObject(func(d *pdkjson.Decoder, key string) {
		switch key {
		case "channel":
			args.Channel = d.String()
		case "text":
			args.Text = d.String()
		case "blocks":
			args.Blocks = args.Blocks[:0]
			d.Array(func(int) { args.Blocks = append(args.Blocks, d.Raw()) })
		case "thread_ts":
			args.ThreadTS = d.String()
		}
	}); err != nil {
		return err
	}
	switch {
	case !validChannel(args.Channel):
		return badChannel(args.Channel)
	case strings.TrimSpace(args.Text) == "" && len(args.Blocks) == 0:
		return pdk.Correctable("no_text", "the message is empty: give text (and optionally blocks)")
	case utf8.RuneCountInString(args.Text) > maxTextLen:
		// Slack would cut the text at 40,000 characters without saying so; refuse instead.
		return slackToolError("chat.postMessage", args.Channel, slackError{Error: "msg_too_long"})
	}
	if err := checkBlocks(args.Blocks); err != nil {
		return err
	}
	var w pdkjson.Writer
	w.Reset(make([]byte, 0, 64+len(args.Text)))
	w.ObjectStart()
	w.Key("channel")
	w.String(args.Channel)
	w.Key("text")
	w.String(args.Text)
	if len(args.Blocks) > 0 {
		w.Key("blocks")
		w.ArrayStart()
		for _, b := range args.Blocks {
			w.Raw(b)
		}
		w.ArrayEnd()
	}
	optional(&w, "thread_ts", args.ThreadTS)
	w.ObjectEnd()
	if w.Err() != nil {
		return pdk.Fatal(pdk.CodeInternal, "the connector could not encode the request to Slack")
	}
	var channel, ts string
	_, err := call("chat.postMessage", nil, w.Bytes(), args.Channel, func(d *pdkjson.Decoder, key string) {
		switch key {
		case "channel":
			channel = d.String()
		case "ts":
			ts = d.String()
		}
	})
	if err != nil {
		return err
	}
	w.Reset(w.Bytes())
	w.ObjectStart()
	w.Key("channel")
	w.String(channel)
	w.Key("ts")
	w.String(ts)
	optional(&w, "thread_ts", args.ThreadTS)
	w.ObjectEnd()
	pdk.OutputBytes(w.Bytes())
	return nil
}

// optional writes a string member unless it is empty (omitempty).
func optional(w *pdkjson.Writer, key, value string) {
	if value != "" {
		w.Key(key)
		w.String(value)
	}
}

// --- list_channels ---

type listChannelsArgs struct {
	Limit           int
	Cursor          string
	Types           []string
	ExcludeArchived bool
}

// channel is a conversation as conversations.list returns it (the fields used here), and as
// list_channels reports it (topic and purpose flattened to their values).
type channel struct {
	ID         string
	Name       string
	IsPrivate  bool
	IsArchived bool
	IsMember   bool
	NumMembers int
	Topic      string
	Purpose    string
}

// readChannel reads a channel object of Slack's answer.
func readChannel(d *pdkjson.Decoder) channel {
	var c channel
	d.Object(func(key string) {
		switch key {
		case "id":
			c.ID = d.String()
		case "name":
			c.Name = d.String()
		case "is_private":
			c.IsPrivate = d.Bool()
		case "is_archived":
			c.IsArchived = d.Bool()
		case "is_member":
			c.IsMember = d.Bool()
		case "num_members":
			c.NumMembers = int(d.Int())
		case "topic":
			c.Topic = readValue(d)
		case "purpose":
			c.Purpose = readValue(d)
		}
	})
	return c
}

// readValue reads the value member of a topic or purpose object.
func readValue(d *pdkjson.Decoder) (v string) {
	d.Object(func(key string) {
		if key == "value" {
			v = d.String()
		}
	})
	return v
}

func writeChannel(w *pdkjson.Writer, c *channel) {
	w.ObjectStart()
	w.Key("id")
	w.String(c.ID)
	w.Key("name")
	w.String(c.Name)
	w.Key("is_private")
	w.Bool(c.IsPrivate)
	w.Key("is_archived")
	w.Bool(c.IsArchived)
	w.Key("is_member")
	w.Bool(c.IsMember)
	w.Key("num_members")
	w.Int(int64(c.NumMembers))
	optional(w, "topic", c.Topic)
	optional(w, "purpose", c.Purpose)
	w.ObjectEnd()
}

func listChannels() error {
	var args listChannelsArgs
	if err := pdk.InputObject(func(d *pdkjson.Decoder, key string) {
		switch key {
		case "limit":
			args.Limit = int(d.Int())
		case "cursor":
			args.Cursor = d.String()
		case "types":
			args.Types = args.Types[:0]
			d.Array(func(int) { args.Types = append(args.Types, d.String()) })
		case "exclude_archived":
			args.ExcludeArchived = d.Bool()
		}
	}); err != nil {
		return err
	}
	limit := args.Limit
	if limit <= 0 {
		limit = defaultListLimit
	}
	limit = min(limit, maxListLimit)
	types := "public_channel"
	if len(args.Types) > 0 {
		types = strings.Join(args.Types, ",")
	}

	channels := []channel{}
	cursor := args.Cursor
	// Slack may return fewer channels than asked for while more exist: follow next_cursor until
	// the limit is reached, the list ends, or the page cap.
	for page := 0; page < maxListPages; page++ {
		q := url.Values{"limit": {strconv.Itoa(limit - len(channels))}, "types": {types}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		if args.ExcludeArchived {
			q.Set("exclude_archived", "true")
		}
		var err error
		cursor, err = call("conversations.list", q, nil, "", func(d *pdkjson.Decoder, key string) {
			if key == "channels" {
				d.Array(func(int) { channels = append(channels, readChannel(d)) })
			}
		})
		if err != nil {
			return err
		}
		if cursor == "" || len(channels) >= limit {
			break
		}
	}
	var w pdkjson.Writer
	w.Reset(make([]byte, 0, 256*len(channels)+64))
	w.ObjectStart()
	w.Key("channels")
	w.ArrayStart()
	for i := range channels {
		writeChannel(&w, &channels[i])
	}
	w.ArrayEnd()
	optional(&w, "next_cursor", cursor)
	w.ObjectEnd()
	pdk.OutputBytes(w.Bytes())
	return nil
}

// --- channel_history ---

type channelHistoryArgs struct {
	Channel string
	Limit   int
	Cursor  string
	Oldest  string
	Latest  string
}

type message struct {
	TS         string
	User       string
	BotID      string
	Subtype    string
	Text       string
	ThreadTS   string
	ReplyCount int
}

func readMessage(d *pdkjson.Decoder) message {
	var m message
	d.Object(func(key string) {
		switch key {
		case "ts":
			m.TS = d.String()
		case "user":
			m.User = d.String()
		case "bot_id":
			m.BotID = d.String()
		case "subtype":
			m.Subtype = d.String()
		case "text":
			m.Text = d.String()
		case "thread_ts":
			m.ThreadTS = d.String()
		case "reply_count":
			m.ReplyCount = int(d.Int())
		}
	})
	return m
}

func writeMessage(w *pdkjson.Writer, m *message) {
	w.ObjectStart()
	w.Key("ts")
	w.String(m.TS)
	optional(w, "user", m.User)
	optional(w, "bot_id", m.BotID)
	optional(w, "subtype", m.Subtype)
	w.Key("text")
	w.String(m.Text)
	optional(w, "thread_ts", m.ThreadTS)
	if m.ReplyCount != 0 {
		w.Key("reply_count")
		w.Int(int64(m.ReplyCount))
	}
	w.ObjectEnd()
}

func channelHistory() error {
	var args channelHistoryArgs
	if err := pdk.InputObject(func(d *pdkjson.Decoder, key string) {
		switch key {
		case "channel":
			args.Channel = d.String()
		case "limit":
			args.Limit = int(d.Int())
		case "cursor":
			args.Cursor = d.String()
		case "oldest":
			args.Oldest = d.String()
		case "latest":
			args.Latest = d.String()
		}
	}); err != nil {
		return err
	}
	if !validChannel(args.Channel) {
		return badChannel(args.Channel)
	}
	maxLimit := maxHistoryLimit
	switch tier, _ := pdk.Config(historyTierKey); tier {
	case "", tierStandard:
	case tierNonMarketplace:
		maxLimit = maxNonMarketplaceHistory
	default:
		return pdk.Fatal("bad_config", "the grant's %s is %q; it must be %s or %s: ask an admin to fix the grant",
			historyTierKey, truncate(tier, 40), tierStandard, tierNonMarketplace)
	}
	limit := args.Limit
	if limit <= 0 {
		limit = defaultHistory
	}
	// Beyond the tier's maximum Slack returns no more: ask for what it serves (a documented
	// clamp, not an error: the schema's 200 stays true for every grant), and has_more with
	// next_cursor lead to the rest.
	q := url.Values{"channel": {args.Channel}, "limit": {strconv.Itoa(min(limit, maxLimit))}}
	for k, v := range map[string]string{"cursor": args.Cursor, "oldest": args.Oldest, "latest": args.Latest} {
		if v != "" {
			q.Set(k, v)
		}
	}
	messages := []message{}
	var hasMore bool
	next, err := call("conversations.history", q, nil, args.Channel, func(d *pdkjson.Decoder, key string) {
		switch key {
		case "messages":
			messages = messages[:0]
			d.Array(func(int) { messages = append(messages, readMessage(d)) })
		case "has_more":
			hasMore = d.Bool()
		}
	})
	if err != nil {
		return err
	}
	var w pdkjson.Writer
	w.Reset(make([]byte, 0, 256*len(messages)+64))
	w.ObjectStart()
	w.Key("channel")
	w.String(args.Channel)
	w.Key("messages")
	w.ArrayStart()
	for i := range messages {
		writeMessage(&w, &messages[i])
	}
	w.ArrayEnd()
	w.Key("has_more")
	w.Bool(hasMore)
	optional(&w, "next_cursor", next)
	w.ObjectEnd()
	pdk.OutputBytes(w.Bytes())
	return nil
}
