package fakeslack

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"unicode/utf8"
)

// Block Kit as Slack's reference documents it for messages, enforced the way Slack does:
// invalid_blocks with a response_metadata message such as "[ERROR] must be less than 3001
// characters [json-pointer:/blocks/0/text/text]". This is written apart from the connector's
// own check (plugins/slack) on purpose: a fake that shared the connector's validator could not
// catch the connector's mistakes.

// blockRules: the properties each message block type accepts (type and block_id aside).
var blockRules = map[string][]string{
	"section":   {"text", "fields", "accessory", "expand"},
	"header":    {"text"},
	"divider":   {},
	"context":   {"elements"},
	"actions":   {"elements"},
	"image":     {"image_url", "slack_file", "alt_text", "title"},
	"rich_text": {"elements"},
	"markdown":  {"text"},
	"video":     {"alt_text", "author_name", "description", "provider_icon_url", "provider_name", "title", "title_url", "thumbnail_url", "video_url"},
	"file":      {"external_id", "source"},
}

// actionElements are the interactive elements an actions block (and a section accessory) holds.
var actionElements = []string{"button", "checkboxes", "datepicker", "datetimepicker", "overflow", "radio_buttons",
	"static_select", "external_select", "users_select", "conversations_select", "channels_select",
	"multi_static_select", "multi_external_select", "multi_users_select", "multi_conversations_select",
	"multi_channels_select", "timepicker", "workflow_button", "rich_text_input", "plain_text_input",
	"email_text_input", "url_text_input", "number_input"}

// blockProblem is the first violation found: where (a JSON pointer) and what.
type blockProblem struct{ pointer, what string }

func (p *blockProblem) message() string {
	return "[ERROR] " + p.what + " [json-pointer:" + p.pointer + "]"
}

type blockChecker struct{ first *blockProblem }

func (c *blockChecker) fail(pointer, format string, args ...any) {
	if c.first == nil {
		c.first = &blockProblem{pointer, fmt.Sprintf(format, args...)}
	}
}

// validateBlocks checks a message's blocks and returns the first violation, or nil.
func validateBlocks(blocks []json.RawMessage) *blockProblem {
	c := &blockChecker{}
	if len(blocks) > maxBlocks {
		c.fail("/blocks", "no more than %d items allowed", maxBlocks)
	}
	seen := map[string]bool{}
	for i, raw := range blocks {
		at := "/blocks/" + strconv.Itoa(i)
		var b map[string]json.RawMessage
		if json.Unmarshal(raw, &b) != nil || b == nil {
			c.fail(at, "must be an object")
			continue
		}
		var typ string
		json.Unmarshal(b["type"], &typ)
		props, known := blockRules[typ]
		if !known {
			c.fail(at+"/type", "unsupported type: %s", strconv.Quote(typ))
			continue
		}
		for _, k := range slices.Sorted(maps.Keys(b)) {
			if k != "type" && k != "block_id" && !slices.Contains(props, k) {
				c.fail(at+"/"+k, "additional property not allowed")
			}
		}
		if id, ok := b["block_id"]; ok {
			s := c.str(at+"/block_id", id, 255)
			if seen[s] {
				c.fail(at+"/block_id", "duplicate block_id")
			}
			seen[s] = true
		}
		switch typ {
		case "section":
			if b["text"] == nil && b["fields"] == nil {
				c.fail(at, "must provide text or fields")
			}
			if b["text"] != nil {
				c.text(at+"/text", b["text"], 3000, false)
			}
			if b["fields"] != nil {
				fields := c.list(at+"/fields", b["fields"], 1, 10)
				for j, f := range fields {
					c.text(at+"/fields/"+strconv.Itoa(j), f, 2000, false)
				}
			}
			if b["accessory"] != nil {
				c.element(at+"/accessory", b["accessory"], append(slices.Clone(actionElements), "image"))
			}
		case "header":
			c.text(at+"/text", b["text"], 150, true)
		case "image":
			c.image(at, b)
			if b["title"] != nil {
				c.text(at+"/title", b["title"], 2000, true)
			}
		case "context":
			for j, el := range c.list(at+"/elements", b["elements"], 1, 10) {
				var e struct{ Type string }
				json.Unmarshal(el, &e)
				if e.Type == "image" {
					c.element(at+"/elements/"+strconv.Itoa(j), el, []string{"image"})
				} else {
					c.text(at+"/elements/"+strconv.Itoa(j), el, 3000, false)
				}
			}
		case "actions":
			for j, el := range c.list(at+"/elements", b["elements"], 1, 25) {
				c.element(at+"/elements/"+strconv.Itoa(j), el, actionElements)
			}
		case "rich_text":
			c.list(at+"/elements", b["elements"], 1, 0)
		case "markdown":
			c.str(at+"/text", b["text"], 12000)
		}
	}
	return c.first
}

// str checks a required string of 1 to max characters and returns it.
func (c *blockChecker) str(at string, raw json.RawMessage, max int) string {
	var s string
	switch {
	case raw == nil:
		c.fail(at, "missing required field")
	case json.Unmarshal(raw, &s) != nil:
		c.fail(at, "must be a string")
	case s == "":
		c.fail(at, "must be more than 0 characters")
	case utf8.RuneCountInString(s) > max:
		c.fail(at, "must be less than %d characters", max+1)
	}
	return s
}

// list checks a required array of min to max items (max 0: any) and returns it.
func (c *blockChecker) list(at string, raw json.RawMessage, min, max int) []json.RawMessage {
	var items []json.RawMessage
	switch {
	case raw == nil:
		c.fail(at, "missing required field")
	case json.Unmarshal(raw, &items) != nil:
		c.fail(at, "must be an array")
	case len(items) < min:
		c.fail(at, "must provide at least %d items", min)
	case max > 0 && len(items) > max:
		c.fail(at, "no more than %d items allowed", max)
	}
	return items
}

// text checks a composition text object.
func (c *blockChecker) text(at string, raw json.RawMessage, max int, plainOnly bool) {
	var t map[string]json.RawMessage
	if raw == nil || json.Unmarshal(raw, &t) != nil || t == nil {
		c.fail(at, "must be a text object")
		return
	}
	var typ string
	json.Unmarshal(t["type"], &typ)
	allowed := map[string][]string{"plain_text": {"type", "text", "emoji"}, "mrkdwn": {"type", "text", "verbatim"}}[typ]
	if allowed == nil || plainOnly && typ != "plain_text" {
		c.fail(at+"/type", "must be plain_text%s", map[bool]string{false: " or mrkdwn"}[plainOnly])
		return
	}
	for _, k := range slices.Sorted(maps.Keys(t)) {
		if !slices.Contains(allowed, k) {
			c.fail(at+"/"+k, "additional property not allowed")
		}
	}
	c.str(at+"/text", t["text"], max)
}

// image checks the image_url / slack_file and alt_text of an image block or element.
func (c *blockChecker) image(at string, o map[string]json.RawMessage) {
	if (o["image_url"] == nil) == (o["slack_file"] == nil) {
		c.fail(at, "must provide exactly one of image_url and slack_file")
	}
	if o["image_url"] != nil {
		c.str(at+"/image_url", o["image_url"], 3000)
	}
	c.str(at+"/alt_text", o["alt_text"], 2000)
}

// element checks an element's type and the documented limits of images and buttons.
func (c *blockChecker) element(at string, raw json.RawMessage, allowed []string) {
	var e map[string]json.RawMessage
	var typ string
	if json.Unmarshal(raw, &e) != nil || e == nil || json.Unmarshal(e["type"], &typ) != nil || !slices.Contains(allowed, typ) {
		c.fail(at+"/type", "unsupported element type")
		return
	}
	if e["action_id"] != nil {
		c.str(at+"/action_id", e["action_id"], 255)
	}
	switch typ {
	case "image":
		c.image(at, e)
	case "button":
		c.text(at+"/text", e["text"], 75, true)
		if e["url"] != nil {
			c.str(at+"/url", e["url"], 3000)
		}
		if e["value"] != nil {
			c.str(at+"/value", e["value"], 2000)
		}
	}
}
