package main

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/airlock-dev/airlock/pdk"
)

// Block Kit checks, from Slack's Block Kit reference for messages (api.slack.com/reference/
// block-kit/blocks). The connector accepts the layout blocks an agent needs for a message —
// section, header, divider, context, actions and image — and checks each the way Slack does, so
// the agent learns which block is wrong, and why, before anything is sent.
const (
	maxBlocks          = 50   // blocks in one message
	maxBlockID         = 255  // block_id, unique within the message
	maxSectionText     = 3000 // section text
	maxSectionFields   = 10   // section fields
	maxFieldText       = 2000 // each section field
	maxHeaderText      = 150  // header text (plain_text only)
	maxContextElements = 10   // context elements (images and text)
	maxActionElements  = 25   // actions elements
	maxImageURL        = 3000 // image_url
	maxAltText         = 2000 // alt_text
	maxImageTitle      = 2000 // image block title
	maxButtonText      = 75   // a button's label
	maxActionID        = 255  // action_id
	maxButtonValue     = 2000 // a button's value
)

// blockKeys are the properties each accepted block type may have.
var blockKeys = map[string][]string{
	"section": {"type", "block_id", "text", "fields", "accessory", "expand"},
	"header":  {"type", "block_id", "text"},
	"divider": {"type", "block_id"},
	"context": {"type", "block_id", "elements"},
	"actions": {"type", "block_id", "elements"},
	"image":   {"type", "block_id", "image_url", "slack_file", "alt_text", "title"},
}

// interactive are the elements an actions block or a section accessory may hold.
var interactive = []string{"button", "checkboxes", "datepicker", "datetimepicker", "overflow", "radio_buttons",
	"static_select", "external_select", "users_select", "conversations_select", "channels_select",
	"multi_static_select", "multi_external_select", "multi_users_select", "multi_conversations_select",
	"multi_channels_select", "timepicker", "workflow_button"}

type object = map[string]json.RawMessage

// blockError is the correctable error for blocks[i].
func blockError(i int, typ, format string, args ...any) error {
	where := fmt.Sprintf("blocks[%d]", i)
	if typ != "" {
		where += " (" + typ + ")"
	}
	return pdk.Correctable("invalid_blocks", "%s: %s", where, fmt.Sprintf(format, args...))
}

// checkBlocks validates a message's blocks as Slack would and returns the first problem found,
// naming the block by its index.
func checkBlocks(blocks []json.RawMessage) error {
	if len(blocks) > maxBlocks {
		return pdk.Correctable("invalid_blocks", "the message has %d blocks; Slack allows at most %d: split it into several messages", len(blocks), maxBlocks)
	}
	ids := map[string]int{}
	for i, raw := range blocks {
		var b object
		if json.Unmarshal(raw, &b) != nil || b == nil {
			return blockError(i, "", "each block must be an object with a type, such as {\"type\": \"divider\"}")
		}
		var typ string
		if json.Unmarshal(b["type"], &typ) != nil || blockKeys[typ] == nil {
			return blockError(i, "", "the type must be one of %s", strings.Join(slices.Sorted(maps.Keys(blockKeys)), ", "))
		}
		if err := onlyKeys(b, blockKeys[typ]); err != "" {
			return blockError(i, typ, "%s", err)
		}
		if raw, ok := b["block_id"]; ok {
			var id string
			switch {
			case json.Unmarshal(raw, &id) != nil || id == "":
				return blockError(i, typ, "block_id must be a non-empty string")
			case utf8.RuneCountInString(id) > maxBlockID:
				return blockError(i, typ, "block_id is longer than %d characters", maxBlockID)
			}
			if j, dup := ids[id]; dup {
				return blockError(i, typ, "block_id %q is already used by blocks[%d]; each block_id must be unique in the message", truncate(id, 40), j)
			}
			ids[id] = i
		}
		if msg := checkBlock(typ, b); msg != "" {
			return blockError(i, typ, "%s", msg)
		}
	}
	return nil
}

// checkBlock returns what is wrong with a block of a known type, or "".
func checkBlock(typ string, b object) string {
	switch typ {
	case "section":
		_, hasText := b["text"]
		_, hasFields := b["fields"]
		if !hasText && !hasFields {
			return "a section needs text (up to 3000 characters) or fields (up to 10)"
		}
		if hasText {
			if msg := checkText(b["text"], "text", maxSectionText, false); msg != "" {
				return msg
			}
		}
		if hasFields {
			var fields []json.RawMessage
			if json.Unmarshal(b["fields"], &fields) != nil || len(fields) == 0 {
				return "fields must be a list of 1 to 10 text objects"
			}
			if len(fields) > maxSectionFields {
				return fmt.Sprintf("fields has %d items; Slack allows at most %d: use another section for the rest", len(fields), maxSectionFields)
			}
			for j, f := range fields {
				if msg := checkText(f, fmt.Sprintf("fields[%d]", j), maxFieldText, false); msg != "" {
					return msg
				}
			}
		}
		if raw, ok := b["accessory"]; ok {
			return checkElement(raw, "accessory", append(slices.Clone(interactive), "image"))
		}
	case "header":
		if _, ok := b["text"]; !ok {
			return "a header needs text: {\"type\": \"plain_text\", \"text\": \"…\"} (at most 150 characters)"
		}
		return checkText(b["text"], "text", maxHeaderText, true)
	case "image":
		_, hasURL := b["image_url"]
		_, hasFile := b["slack_file"]
		if hasURL == hasFile {
			return "an image needs exactly one of image_url (a public URL) and slack_file"
		}
		if hasURL {
			if msg := checkString(b["image_url"], "image_url", maxImageURL); msg != "" {
				return msg
			}
		}
		if msg := checkString(b["alt_text"], "alt_text", maxAltText); msg != "" {
			return msg
		}
		if raw, ok := b["title"]; ok {
			return checkText(raw, "title", maxImageTitle, true)
		}
	case "context":
		var els []json.RawMessage
		if json.Unmarshal(b["elements"], &els) != nil || len(els) == 0 {
			return "a context block needs elements: a list of 1 to 10 text objects or image elements"
		}
		if len(els) > maxContextElements {
			return fmt.Sprintf("elements has %d items; Slack allows at most %d in a context block", len(els), maxContextElements)
		}
		for j, el := range els {
			var e struct {
				Type string `json:"type"`
			}
			json.Unmarshal(el, &e)
			name := fmt.Sprintf("elements[%d]", j)
			if e.Type == "image" {
				if msg := checkElement(el, name, []string{"image"}); msg != "" {
					return msg
				}
				continue
			}
			if msg := checkText(el, name, maxSectionText, false); msg != "" {
				return msg
			}
		}
	case "actions":
		var els []json.RawMessage
		if json.Unmarshal(b["elements"], &els) != nil || len(els) == 0 {
			return "an actions block needs elements: a list of 1 to 25 interactive elements such as buttons"
		}
		if len(els) > maxActionElements {
			return fmt.Sprintf("elements has %d items; Slack allows at most %d in an actions block", len(els), maxActionElements)
		}
		for j, el := range els {
			if msg := checkElement(el, fmt.Sprintf("elements[%d]", j), interactive); msg != "" {
				return msg
			}
		}
	}
	return ""
}

// checkText checks a text object: {"type": "plain_text"|"mrkdwn", "text": "…"} with at most
// maxLen characters (plain_text only when plainOnly).
func checkText(raw json.RawMessage, name string, maxLen int, plainOnly bool) string {
	var t object
	if json.Unmarshal(raw, &t) != nil || t == nil {
		return fmt.Sprintf("%s must be a text object such as {\"type\": \"mrkdwn\", \"text\": \"…\"}", name)
	}
	var typ string
	json.Unmarshal(t["type"], &typ)
	switch {
	case plainOnly && typ != "plain_text":
		return fmt.Sprintf("%s must be a plain_text object (mrkdwn is not allowed here)", name)
	case typ != "plain_text" && typ != "mrkdwn":
		return fmt.Sprintf("%s.type must be plain_text or mrkdwn", name)
	}
	allowed := []string{"type", "text", "emoji"}
	if typ == "mrkdwn" {
		allowed = []string{"type", "text", "verbatim"}
	}
	if msg := onlyKeys(t, allowed); msg != "" {
		return name + ": " + msg
	}
	return checkString(t["text"], name+".text", maxLen)
}

// checkString checks a required, non-empty string of at most maxLen characters.
func checkString(raw json.RawMessage, name string, maxLen int) string {
	var s string
	if raw == nil || json.Unmarshal(raw, &s) != nil || s == "" {
		return fmt.Sprintf("%s must be a non-empty string", name)
	}
	if n := utf8.RuneCountInString(s); n > maxLen {
		return fmt.Sprintf("%s is %d characters; Slack allows at most %d: shorten it", name, n, maxLen)
	}
	return ""
}

// checkElement checks an element's type against allowed, and what Slack documents for images
// and buttons (the elements whose limits an agent is likely to hit).
func checkElement(raw json.RawMessage, name string, allowed []string) string {
	var e object
	var typ string
	if json.Unmarshal(raw, &e) != nil || e == nil || json.Unmarshal(e["type"], &typ) != nil || !slices.Contains(allowed, typ) {
		return fmt.Sprintf("%s must be an element of type %s", name, strings.Join(allowed, ", "))
	}
	if raw, ok := e["action_id"]; ok {
		if msg := checkString(raw, name+".action_id", maxActionID); msg != "" {
			return msg
		}
	}
	switch typ {
	case "image":
		_, hasURL := e["image_url"]
		_, hasFile := e["slack_file"]
		if hasURL == hasFile {
			return name + " (image) needs exactly one of image_url and slack_file"
		}
		if hasURL {
			if msg := checkString(e["image_url"], name+".image_url", maxImageURL); msg != "" {
				return msg
			}
		}
		return checkString(e["alt_text"], name+".alt_text", maxAltText)
	case "button":
		if msg := checkText(e["text"], name+".text", maxButtonText, true); msg != "" {
			return msg
		}
		for key, maxLen := range map[string]int{"url": maxImageURL, "value": maxButtonValue} {
			if raw, ok := e[key]; ok {
				if msg := checkString(raw, name+"."+key, maxLen); msg != "" {
					return msg
				}
			}
		}
	}
	return ""
}

// onlyKeys returns a message naming the first property of o not in allowed, or "".
func onlyKeys(o object, allowed []string) string {
	for _, k := range slices.Sorted(maps.Keys(o)) {
		if !slices.Contains(allowed, k) {
			return fmt.Sprintf("%q is not a property Slack accepts here (allowed: %s)", truncate(k, 40), strings.Join(allowed, ", "))
		}
	}
	return ""
}

func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	return string([]rune(s)[:n]) + "…"
}
