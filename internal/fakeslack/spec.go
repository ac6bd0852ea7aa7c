package fakeslack

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
)

// The parameters of each method the fake serves, as Slack's published description of its Web
// API declares them (slackapi/slack-api-specs, web-api/slack_web_openapi_v2.json; a test checks
// this table against ../shared/specs/slack_web_openapi_v2.json when it is there). Every request
// is checked against it: an undeclared parameter, a value of the wrong type or a missing
// required one is refused with invalid_arguments and a response_metadata message naming it.
//
// Two documented differences from that description are allowed: the token may come as
// "Authorization: Bearer" instead of a token parameter, and a JSON body (not only a form)
// carries the parameters, where blocks and attachments may be JSON arrays rather than strings
// holding JSON. Where Slack's method documentation is stricter than the description
// (conversations.history needs channel), the table follows the documentation.

// param is one declared parameter: its type (string, boolean, integer, number) and whether it
// is required.
type param struct {
	typ      string
	required bool
}

// methodParams are the parameters of each method, the token aside.
var methodParams = map[string]map[string]param{
	"auth.test": {},
	"chat.postMessage": {
		"as_user": {typ: "string"}, "attachments": {typ: "string"}, "blocks": {typ: "string"},
		"channel": {typ: "string", required: true}, "icon_emoji": {typ: "string"}, "icon_url": {typ: "string"},
		"link_names": {typ: "boolean"}, "mrkdwn": {typ: "boolean"}, "parse": {typ: "string"},
		"reply_broadcast": {typ: "boolean"}, "text": {typ: "string"}, "thread_ts": {typ: "string"},
		"unfurl_links": {typ: "boolean"}, "unfurl_media": {typ: "boolean"}, "username": {typ: "string"},
	},
	"conversations.list": {
		"exclude_archived": {typ: "boolean"}, "types": {typ: "string"}, "limit": {typ: "integer"}, "cursor": {typ: "string"},
	},
	"conversations.history": {
		"channel": {typ: "string", required: true}, "latest": {typ: "number"}, "oldest": {typ: "number"},
		"inclusive": {typ: "boolean"}, "limit": {typ: "integer"}, "cursor": {typ: "string"},
	},
}

// jsonArrayParams may be sent as JSON arrays in a JSON body, rather than strings holding JSON.
var jsonArrayParams = []string{"blocks", "attachments"}

// typeErrors are the codes Slack documents for a badly typed parameter, where it has one;
// others get invalid_arguments.
var typeErrors = map[string]string{"oldest": "invalid_ts_oldest", "latest": "invalid_ts_latest", "limit": "invalid_limit"}

// checkParams returns the error code and the response_metadata message of the first way a
// breaks the method's declared parameters, or "" and "".
func checkParams(method string, a args) (code, message string) {
	declared := methodParams[method]
	for _, name := range slices.Sorted(maps.Keys(a)) {
		if name == "token" {
			continue
		}
		p, ok := declared[name]
		if !ok {
			return "invalid_arguments", fmt.Sprintf("[ERROR] unknown parameter %s, not one of %s's [json-pointer:/%s]", strconv.Quote(name), method, name)
		}
		if !typeOK(p.typ, name, a[name]) {
			code := typeErrors[name]
			if code == "" {
				code = "invalid_arguments"
			}
			return code, fmt.Sprintf("[ERROR] must be of type %s [json-pointer:/%s]", p.typ, name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(declared)) {
		if _, ok := a[name]; declared[name].required && !ok {
			return "invalid_arguments", fmt.Sprintf("[ERROR] missing required field: %s [json-pointer:/%s]", name, name)
		}
	}
	return "", ""
}

// typeOK reports whether raw, a JSON value from a JSON body or a string from a form or query,
// has type typ.
func typeOK(typ, name string, raw json.RawMessage) bool {
	var s string
	isString := json.Unmarshal(raw, &s) == nil
	switch typ {
	case "string":
		// A JSON value there is checked by the method (invalid_blocks_format).
		return isString || slices.Contains(jsonArrayParams, name)
	case "boolean":
		if !isString {
			s = string(raw)
		}
		return s == "true" || s == "false" || isString && (s == "1" || s == "0")
	case "integer":
		if !isString {
			s = string(raw)
		}
		_, err := strconv.ParseInt(s, 10, 64)
		return err == nil
	case "number":
		if !isString {
			s = string(raw)
		}
		_, err := strconv.ParseFloat(s, 64)
		return err == nil && s != "" && !bytes.ContainsAny([]byte(s), "xXpPiInN_")
	}
	return false
}
