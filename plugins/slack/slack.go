package main

import (
	"encoding/json"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/airlock-dev/airlock/pdk"
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
	OK       bool   `json:"ok"`
	Error    string `json:"error"`
	Needed   string `json:"needed"`
	Provided string `json:"provided"`
	Metadata struct {
		Messages []string `json:"messages"`
	} `json:"response_metadata"`
}

// slackReply is a response struct of a Slack method. Each embeds slackError, so one decode of
// Slack's answer reads both its ok/error envelope and the result.
type slackReply interface{ envelope() *slackError }

func (e *slackError) envelope() *slackError { return e }

// call invokes a Slack Web API method. Reads use GET with query parameters (idempotent, so the
// host may retry them); writes POST a JSON body. out receives the successful response.
func call(method string, query url.Values, body any, out slackReply, channel string) error {
	req := pdk.HTTPRequest{Method: "GET", URL: baseURL + method, Credential: credential}
	if len(query) > 0 {
		req.URL += "?" + query.Encode()
	}
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return pdk.Fatal(pdk.CodeInternal, "the connector could not encode the request to Slack")
		}
		req.Method, req.Body = "POST", b
		req.Headers = map[string][]string{"Content-Type": {"application/json; charset=utf-8"}}
	}
	resp, err := pdk.HTTP(req)
	if err != nil {
		return err // a host refusal: already agent-readable
	}
	switch {
	case resp.Status == 429:
		after := pdk.RetryAfter(resp.Headers)
		return pdk.Retryable(pdk.CodeRateLimited, after,
			"Slack is rate limiting %s; try again in %s", method, waitText(after))
	case resp.Status >= 500:
		return pdk.Retryable(pdk.CodeUnavailable, 0,
			"Slack is having trouble (HTTP %d); try again in a minute", resp.Status)
	case resp.Status != 200:
		return pdk.Fatal("unexpected_response",
			"Slack answered %s with HTTP %d, which this connector does not expect", method, resp.Status)
	}
	// One decode: encoding/json goes on after a field of the wrong type, so the envelope is read
	// even when the result is not.
	err = json.Unmarshal(resp.Body, out)
	if _, syntax := err.(*json.SyntaxError); syntax {
		return pdk.Fatal("unexpected_response", "Slack sent an answer to %s that is not JSON", method)
	}
	// A Slack error needs its code; an answer that is not an object has none and is unreadable.
	if env := out.envelope(); !env.OK && (err == nil || env.Error != "") {
		return slackToolError(method, channel, *env)
	}
	if err != nil {
		return pdk.Fatal("unexpected_response", "Slack sent an answer to %s this connector cannot read", method)
	}
	return nil
}

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

type postMessageArgs struct {
	Channel  string            `json:"channel"`
	Text     string            `json:"text"`
	Blocks   []json.RawMessage `json:"blocks,omitempty"`
	ThreadTS string            `json:"thread_ts,omitempty"`
}

type postMessageResult struct {
	Channel  string `json:"channel"`
	TS       string `json:"ts"`
	ThreadTS string `json:"thread_ts,omitempty"`
}

func postMessage() error {
	var args postMessageArgs
	if err := pdk.Input(&args); err != nil {
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
	var resp struct {
		slackError
		Channel string `json:"channel"`
		TS      string `json:"ts"`
	}
	if err := call("chat.postMessage", nil, args, &resp, args.Channel); err != nil {
		return err
	}
	return pdk.Output(postMessageResult{Channel: resp.Channel, TS: resp.TS, ThreadTS: args.ThreadTS})
}

// --- list_channels ---

type listChannelsArgs struct {
	Limit           int      `json:"limit,omitempty"`
	Cursor          string   `json:"cursor,omitempty"`
	Types           []string `json:"types,omitempty"`
	ExcludeArchived bool     `json:"exclude_archived,omitempty"`
}

type channel struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	IsPrivate  bool   `json:"is_private"`
	IsArchived bool   `json:"is_archived"`
	IsMember   bool   `json:"is_member"`
	NumMembers int    `json:"num_members"`
	Topic      string `json:"topic,omitempty"`
	Purpose    string `json:"purpose,omitempty"`
}

// slackChannel is a conversation as conversations.list returns it (the fields used here).
type slackChannel struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	IsPrivate  bool   `json:"is_private"`
	IsArchived bool   `json:"is_archived"`
	IsMember   bool   `json:"is_member"`
	NumMembers int    `json:"num_members"`
	Topic      struct {
		Value string `json:"value"`
	} `json:"topic"`
	Purpose struct {
		Value string `json:"value"`
	} `json:"purpose"`
}

type listChannelsResult struct {
	Channels   []channel `json:"channels"`
	NextCursor string    `json:"next_cursor,omitempty"`
}

func listChannels() error {
	var args listChannelsArgs
	if err := pdk.Input(&args); err != nil {
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

	out := listChannelsResult{Channels: []channel{}}
	cursor := args.Cursor
	// Slack may return fewer channels than asked for while more exist: follow next_cursor until
	// the limit is reached, the list ends, or the page cap.
	for page := 0; page < maxListPages; page++ {
		q := url.Values{"limit": {strconv.Itoa(limit - len(out.Channels))}, "types": {types}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		if args.ExcludeArchived {
			q.Set("exclude_archived", "true")
		}
		var resp struct {
			slackError
			Channels []slackChannel `json:"channels"`
			Metadata struct {
				NextCursor string `json:"next_cursor"`
			} `json:"response_metadata"`
		}
		if err := call("conversations.list", q, nil, &resp, ""); err != nil {
			return err
		}
		for _, c := range resp.Channels {
			out.Channels = append(out.Channels, channel{ID: c.ID, Name: c.Name, IsPrivate: c.IsPrivate,
				IsArchived: c.IsArchived, IsMember: c.IsMember, NumMembers: c.NumMembers,
				Topic: c.Topic.Value, Purpose: c.Purpose.Value})
		}
		cursor = resp.Metadata.NextCursor
		if cursor == "" || len(out.Channels) >= limit {
			break
		}
	}
	out.NextCursor = cursor
	return pdk.Output(out)
}

// --- channel_history ---

type channelHistoryArgs struct {
	Channel string `json:"channel"`
	Limit   int    `json:"limit,omitempty"`
	Cursor  string `json:"cursor,omitempty"`
	Oldest  string `json:"oldest,omitempty"`
	Latest  string `json:"latest,omitempty"`
}

type message struct {
	TS         string `json:"ts"`
	User       string `json:"user,omitempty"`
	BotID      string `json:"bot_id,omitempty"`
	Subtype    string `json:"subtype,omitempty"`
	Text       string `json:"text"`
	ThreadTS   string `json:"thread_ts,omitempty"`
	ReplyCount int    `json:"reply_count,omitempty"`
}

type channelHistoryResult struct {
	Channel    string    `json:"channel"`
	Messages   []message `json:"messages"`
	HasMore    bool      `json:"has_more"`
	NextCursor string    `json:"next_cursor,omitempty"`
}

func channelHistory() error {
	var args channelHistoryArgs
	if err := pdk.Input(&args); err != nil {
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
	var resp struct {
		slackError
		Messages []message `json:"messages"`
		HasMore  bool      `json:"has_more"`
		Metadata struct {
			NextCursor string `json:"next_cursor"`
		} `json:"response_metadata"`
	}
	if err := call("conversations.history", q, nil, &resp, args.Channel); err != nil {
		return err
	}
	out := channelHistoryResult{Channel: args.Channel, Messages: resp.Messages, HasMore: resp.HasMore,
		NextCursor: resp.Metadata.NextCursor}
	if out.Messages == nil {
		out.Messages = []message{}
	}
	return pdk.Output(out)
}
