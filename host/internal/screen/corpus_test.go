package screen

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"html"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"
)

var dump = flag.String("dump", "", "write the corpus's documents to this file, one JSON sample a line")

// corpusLinkHosts is the allow-list the corpus is screened with: the hosts a grant of the Slack
// and Salesforce connectors allows, and the Salesforce file hosts an admin would add.
var corpusLinkHosts = []string{"slack.com", "*.slack.com", "*.slack-edge.com", "*.salesforce.com", "*.force.com", "*.documentforce.com"}

// sample is one labelled document of the corpus.
type sample struct {
	ID       string          `json:"id"`
	Attack   bool            `json:"attack"`
	Lang     string          `json:"lang"`
	Shape    string          `json:"shape"`              // slack_history, salesforce_query …
	Encoding string          `json:"encoding,omitempty"` // how the attack is hidden; "heldout" for held-out phrasings
	Data     json.RawMessage `json:"data"`
}

// TestCorpus screens the labelled corpus with the default detectors and prints precision,
// recall and false-positive rate, overall and by encoding and language. It fails when the
// false-positive rate on benign documents reaches 1% or recall falls below its floor.
func TestCorpus(t *testing.T) {
	samples := buildCorpus(t)
	if *dump != "" {
		writeSamples(t, *dump, samples)
	}
	s, err := New(Config{LinkHosts: corpusLinkHosts})
	if err != nil {
		t.Fatal(err)
	}
	type counts struct{ tp, fn, fp, tn int }
	var all counts
	byEnc, byLang := map[string]*counts{}, map[string]*counts{}
	get := func(m map[string]*counts, k string) *counts {
		if m[k] == nil {
			m[k] = &counts{}
		}
		return m[k]
	}
	var missed, falsePos []string
	apart := map[string]*[2]int{"paraphrases": {}, "heldout": {}} // found, total
	for _, sm := range samples {
		rep, err := s.Scan(context.Background(), sm.Data, Info{}, true)
		if err != nil {
			t.Fatalf("%s: %v", sm.ID, err)
		}
		flagged := rep.Total > 0
		if sm.Encoding == "heldout" || sm.Encoding == "paraphrases" {
			apart[sm.Encoding][1]++
			if flagged {
				apart[sm.Encoding][0]++
			} else {
				missed = append(missed, sm.ID)
			}
			continue
		}
		if flagged && !json.Valid(rep.Redacted) {
			t.Errorf("%s: the redacted document is not JSON: %s", sm.ID, rep.Redacted)
		}
		switch {
		case sm.Attack && flagged:
			all.tp++
			get(byEnc, sm.Encoding).tp++
			get(byLang, sm.Lang).tp++
		case sm.Attack:
			all.fn++
			get(byEnc, sm.Encoding).fn++
			get(byLang, sm.Lang).fn++
			missed = append(missed, sm.ID)
		case flagged:
			all.fp++
			get(byLang, sm.Lang).fp++
			falsePos = append(falsePos, fmt.Sprintf("%s %+v", sm.ID, rep.Findings))
		default:
			all.tn++
			get(byLang, sm.Lang).tn++
		}
	}
	precision := float64(all.tp) / float64(max(1, all.tp+all.fp))
	recall := float64(all.tp) / float64(max(1, all.tp+all.fn))
	fpRate := float64(all.fp) / float64(max(1, all.fp+all.tn))
	t.Logf("corpus: %d documents (%d attacks, %d benign)", len(samples), all.tp+all.fn, all.fp+all.tn)
	t.Logf("precision %.3f  recall %.3f  false-positive rate %.4f (%d of %d benign)", precision, recall, fpRate, all.fp, all.fp+all.tn)
	p, h := apart["paraphrases"], apart["heldout"]
	t.Logf("paraphrases (the rules were extended for them): recall %.3f (%d/%d)", float64(p[0])/float64(max(1, p[1])), p[0], p[1])
	t.Logf("held-out phrasings (never used to tune the rules): recall %.3f (%d/%d)", float64(h[0])/float64(max(1, h[1])), h[0], h[1])
	for _, k := range slices.Sorted(maps.Keys(byEnc)) {
		c := byEnc[k]
		t.Logf("  recall, encoding %-15s %.3f (%d/%d)", k, float64(c.tp)/float64(c.tp+c.fn), c.tp, c.tp+c.fn)
	}
	for _, k := range slices.Sorted(maps.Keys(byLang)) {
		c := byLang[k]
		line := fmt.Sprintf("  lang %-3s", k)
		if c.tp+c.fn > 0 {
			line += fmt.Sprintf(" recall %.3f (%d/%d)", float64(c.tp)/float64(c.tp+c.fn), c.tp, c.tp+c.fn)
		}
		if c.fp+c.tn > 0 {
			line += fmt.Sprintf(" false positives %d/%d", c.fp, c.fp+c.tn)
		}
		t.Log(line)
	}
	for _, id := range missed {
		t.Logf("  missed: %s", id)
	}
	for _, fp := range falsePos {
		t.Logf("  false positive: %s", fp)
	}
	if all.fp+all.tn < 300 || all.tp+all.fn < 300 {
		t.Fatalf("the corpus is too small to measure: %d benign, %d attacks", all.fp+all.tn, all.tp+all.fn)
	}
	if fpRate >= 0.01 {
		t.Errorf("false-positive rate on benign data %.4f, want < 0.01", fpRate)
	}
	if recall < recallFloor {
		t.Errorf("recall %.3f fell below its floor %.3f (what was measured when the corpus was made, minus a margin)", recall, recallFloor)
	}
}

// recallFloor is the recall measured on the corpus (see RATIONALE.md) minus a margin of two
// points (held-out phrasings excluded).
const recallFloor = 0.98

func writeSamples(t *testing.T, path string, samples []sample) {
	var buf bytes.Buffer
	for _, s := range samples {
		b, _ := json.Marshal(s)
		buf.Write(b)
		buf.WriteByte('\n')
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// line is one line of benign.txt or attacks.txt.
type line struct{ lang, text string }

func readLines(t *testing.T, name string) []line {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata/corpus", name))
	if err != nil {
		t.Fatal(err)
	}
	var out []line
	for _, l := range strings.Split(string(b), "\n") {
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		lang, text, ok := strings.Cut(l, "\t")
		if !ok {
			t.Fatalf("%s: no tab in %q", name, l)
		}
		out = append(out, line{lang, strings.ReplaceAll(text, `\n`, "\n")})
	}
	return out
}

// buildCorpus builds the labelled documents from testdata/corpus: each benign text in a Slack history page and in a
// Salesforce query result, among other benign texts; each attack the same ways, plain and
// hidden by each encoding an attacker may use, at several nesting depths.
func buildCorpus(t *testing.T) []sample {
	benign, attacks := readLines(t, "benign.txt"), readLines(t, "attacks.txt")
	var out []sample
	add := func(s sample, doc any) {
		b, err := json.Marshal(doc)
		if err != nil {
			t.Fatal(err)
		}
		s.Data = b
		out = append(out, s)
	}
	neighbours := func(i int) []string { // two other benign texts, for context
		a, b := benign[(i*7+3)%len(benign)], benign[(i*13+5)%len(benign)]
		return []string{a.text, b.text}
	}
	for i, l := range benign {
		n := neighbours(i)
		add(sample{ID: fmt.Sprintf("benign-%03d-slack", i), Lang: l.lang, Shape: "slack_history"}, slackHistory(i, []string{n[0], l.text, n[1]}, nil))
		add(sample{ID: fmt.Sprintf("benign-%03d-salesforce", i), Lang: l.lang, Shape: "salesforce_query"}, salesforceQuery(i, l.text, n[0], nil))
	}
	for i := range 40 { // structure without free text: users, channels
		add(sample{ID: fmt.Sprintf("benign-users-%02d", i), Lang: "en", Shape: "slack_users"}, slackUsers(i))
	}
	for i, a := range attacks {
		n := neighbours(i)
		for _, enc := range encodings {
			hidden, ok := enc.hide(a.text)
			if !ok {
				continue
			}
			id := fmt.Sprintf("attack-%02d-%s", i, enc.name)
			switch enc.where {
			case "text":
				add(sample{ID: id + "-slack", Attack: true, Lang: a.lang, Shape: "slack_history", Encoding: enc.name},
					slackHistory(i, []string{n[0], hidden, n[1]}, nil))
				add(sample{ID: id + "-salesforce", Attack: true, Lang: a.lang, Shape: "salesforce_query", Encoding: enc.name},
					salesforceQuery(i, n[0]+"\n\n"+hidden, n[1], nil))
			case "lines": // the halves are neighbouring strings of one array
				half := strings.SplitN(hidden, "\x00", 2)
				add(sample{ID: id + "-slack", Attack: true, Lang: a.lang, Shape: "slack_history", Encoding: enc.name},
					slackHistory(i, []string{n[0], n[1]}, map[string]any{"metadata": map[string]any{"event_type": "note", "event_payload": map[string]any{"lines": half}}}))
				add(sample{ID: id + "-salesforce", Attack: true, Lang: a.lang, Shape: "salesforce_query", Encoding: enc.name},
					salesforceQuery(i, n[0], n[1], map[string]any{"Checklist__c": half}))
			case "field":
				add(sample{ID: id + "-slack", Attack: true, Lang: a.lang, Shape: "slack_history", Encoding: enc.name},
					slackHistory(i, []string{n[0], n[1]}, map[string]any{"metadata": map[string]any{"event_type": "note", "event_payload": map[string]any{"body": hidden}}}))
				add(sample{ID: id + "-salesforce", Attack: true, Lang: a.lang, Shape: "salesforce_query", Encoding: enc.name},
					salesforceQuery(i, n[0], n[1], map[string]any{"Legacy_Payload__c": hidden}))
			}
		}
	}
	// Plain only: the question is whether the phrasing is known.
	for _, set := range []string{"paraphrases", "heldout"} {
		for i, a := range readLines(t, set+".txt") {
			n := neighbours(i)
			add(sample{ID: fmt.Sprintf("%s-%02d-slack", set, i), Attack: true, Lang: a.lang, Shape: "slack_history", Encoding: set},
				slackHistory(i, []string{n[0], a.text, n[1]}, nil))
		}
	}
	return out
}

// encodings are the ways the corpus hides an attack: where says whether the result stands in
// for the text of a message or fills a field of its own.
var encodings = []struct {
	name, where string
	hide        func(string) (string, bool)
}{
	{"plain", "text", func(s string) (string, bool) { return s, true }},
	{"nested_json", "field", func(s string) (string, bool) {
		b, _ := json.Marshal(map[string]any{"version": 2, "notes": []any{map[string]any{"author": "system", "body": s}}})
		return string(b), true
	}},
	{"base64", "field", func(s string) (string, bool) { return base64.StdEncoding.EncodeToString([]byte(s)), true }},
	{"percent", "field", func(s string) (string, bool) { return url.PathEscape(s), true }},
	{"html_entities", "text", func(s string) (string, bool) {
		var b strings.Builder
		for _, c := range s {
			if c == ' ' || c > 0x7f {
				fmt.Fprintf(&b, "&#x%x;", c)
			} else {
				b.WriteString(html.EscapeString(string(c)))
			}
		}
		return b.String(), true
	}},
	{"escapes", "text", func(s string) (string, bool) {
		var b strings.Builder
		for _, c := range s {
			if c > 0x7f || c == 'e' || c == 'i' || c == 'a' {
				fmt.Fprintf(&b, `\u%04x`, c)
			} else {
				b.WriteRune(c)
			}
		}
		return b.String(), true
	}},
	{"tag_characters", "text", func(s string) (string, bool) {
		var b strings.Builder
		b.WriteString("Thanks, see you tomorrow! ")
		for _, c := range s {
			if c < 0x20 || c > 0x7e {
				return "", false // only ASCII has tag characters
			}
			b.WriteRune(0xE0000 + c)
		}
		return b.String(), true
	}},
	{"zero_width", "text", func(s string) (string, bool) {
		var b strings.Builder
		prev := rune(0)
		for _, c := range s {
			if prev != 0 && prev != ' ' && c != ' ' {
				b.WriteRune(0x200B)
			}
			b.WriteRune(c)
			prev = c
		}
		return b.String(), true
	}},
	{"fullwidth", "text", func(s string) (string, bool) {
		var b strings.Builder
		for _, c := range s {
			if c > ' ' && c <= '~' {
				c += 0xFF01 - '!'
			}
			b.WriteRune(c)
		}
		return b.String(), utf8.ValidString(b.String())
	}},
	// Split: the text cut after its second word into two neighbouring strings, which cuts the
	// phrase most attacks open with (text in a script written without spaces is not split).
	{"split", "lines", func(s string) (string, bool) {
		words := strings.SplitN(s, " ", 3)
		if len(words) < 3 {
			return "", false
		}
		return words[0] + " " + words[1] + "\x00" + words[2], true
	}},
	// Look-alikes: Latin letters swapped for the Cyrillic ones that look the same, digits for
	// letters, combining marks between letters, mathematical bold letters. Each applies only
	// to Latin text.
	{"homoglyphs", "text", func(s string) (string, bool) {
		return mapLatin(s, func(c rune) string {
			if h, ok := map[rune]string{'a': "а", 'e': "е", 'o': "о", 'i': "і", 'c': "с", 'p': "р", 'x': "х", 'y': "у"}[c]; ok {
				return h
			}
			return string(c)
		})
	}},
	{"leetspeak", "text", func(s string) (string, bool) {
		return mapLatin(s, func(c rune) string {
			if h, ok := map[rune]string{'o': "0", 'i': "1", 'e': "3", 'a': "4"}[c]; ok {
				return h
			}
			return string(c)
		})
	}},
	{"combining_marks", "text", func(s string) (string, bool) {
		return mapLatin(s, func(c rune) string { return string(c) + "\u0323" })
	}},
	{"math_alphanumerics", "text", func(s string) (string, bool) {
		return mapLatin(s, func(c rune) string {
			if c >= 'a' && c <= 'z' {
				return string(0x1D41A + c - 'a') // MATHEMATICAL BOLD SMALL A…
			}
			return string(c)
		})
	}},
}

// mapLatin applies f to each ASCII letter of s; false when s has none (the encoding does not
// apply to text in another script).
func mapLatin(s string, f func(rune) string) (string, bool) {
	var b strings.Builder
	n := 0
	for _, c := range s {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
			n++
			b.WriteString(f(c))
			continue
		}
		b.WriteRune(c)
	}
	return b.String(), n*2 > utf8.RuneCountInString(s)
}

// slackHistory is a conversations.history page (the shapes of the Slack Web API's
// objs_message: blocks, reactions, files, user_profile).
func slackHistory(seed int, texts []string, extra map[string]any) map[string]any {
	var msgs []any
	for j, text := range texts {
		user := fmt.Sprintf("U0%07X", 0x1A2B3C+seed*31+j)
		m := map[string]any{
			"type": "message", "user": user, "text": text,
			"ts":            fmt.Sprintf("17%08d.%06d", 10000000+seed*97+j, 100+j),
			"client_msg_id": fmt.Sprintf("%08x-4b1c-4e2a-9f3d-%012x", seed*7919+j, seed*104729+j),
			"team":          "T0123ABCD",
			"blocks": []any{map[string]any{"type": "rich_text", "block_id": fmt.Sprintf("b%04d", seed+j), "elements": []any{
				map[string]any{"type": "rich_text_section", "elements": []any{map[string]any{"type": "text", "text": text}}}}}},
			"user_profile": map[string]any{"avatar_hash": fmt.Sprintf("g%011x", seed*31+j), "image_72": fmt.Sprintf("https://avatars.slack-edge.com/2023-01-0%d/%d_72.png", j+1, 4000+seed),
				"first_name": []string{"Maria", "Sam", "Priya", "Jamie", "Wei", "Yuki", "Olga"}[(seed+j)%7], "display_name": "", "team": "T0123ABCD"},
		}
		if j%2 == 1 {
			m["reactions"] = []any{map[string]any{"name": "+1", "users": []any{"U024BE7LH"}, "count": 1}}
		}
		if seed%5 == 0 && j == 0 {
			m["files"] = []any{map[string]any{"id": fmt.Sprintf("F0%08X", seed), "name": "report.pdf", "mimetype": "application/pdf",
				"url_private": fmt.Sprintf("https://files.slack.com/files-pri/T0123ABCD-F0%08X/report.pdf", seed),
				"permalink":   fmt.Sprintf("https://acme.slack.com/files/U024BE7LH/F0%08X/report.pdf", seed)}}
		}
		msgs = append(msgs, m)
	}
	if extra != nil {
		m := msgs[len(msgs)-1].(map[string]any)
		for k, v := range extra {
			m[k] = v
		}
	}
	return map[string]any{"ok": true, "messages": msgs, "has_more": seed%3 == 0, "pin_count": seed % 4,
		"channel_actions_ts": nil, "channel_actions_count": 0,
		"response_metadata": map[string]any{"next_cursor": base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("bmV4dF90czoxNz%d", seed)))}}
}

// salesforceQuery is a SOQL query result of Cases with an account and owner.
func salesforceQuery(seed int, description, comment string, extra map[string]any) map[string]any {
	id := fmt.Sprintf("5005e00000%05dAAA", seed)
	rec := map[string]any{
		"attributes":  map[string]any{"type": "Case", "url": "/services/data/v60.0/sobjects/Case/" + id},
		"Id":          id,
		"CaseNumber":  fmt.Sprintf("%08d", 12000+seed),
		"Subject":     []string{"Login issue", "Invoice question", "Renewal", "Feature request", "Outage report"}[seed%5],
		"Status":      []string{"New", "Working", "Escalated", "Closed"}[seed%4],
		"Priority":    []string{"Low", "Medium", "High"}[seed%3],
		"Origin":      "Email",
		"Description": description,
		"CreatedDate": fmt.Sprintf("2024-%02d-%02dT10:%02d:00.000+0000", seed%12+1, seed%28+1, seed%60),
		"Account": map[string]any{"attributes": map[string]any{"type": "Account"}, "Name": []string{"Globex", "Initech", "Umbrella", "Hooli", "Stark Industries"}[seed%5],
			"Website": "https://www.example.com", "BillingCity": []string{"Denver", "Lyon", "München", "São Paulo", "Osaka"}[seed%5]},
		"Owner": map[string]any{"attributes": map[string]any{"type": "User"}, "Name": "M. Chen", "Email": "m.chen@acme.example"},
		"CaseComments": map[string]any{"totalSize": 1, "done": true, "records": []any{
			map[string]any{"attributes": map[string]any{"type": "CaseComment"}, "CommentBody": comment, "IsPublished": seed%2 == 0}}},
	}
	for k, v := range extra {
		rec[k] = v
	}
	return map[string]any{"totalSize": 1, "done": true, "records": []any{rec}}
}

// slackUsers is a users.list page.
func slackUsers(seed int) map[string]any {
	var members []any
	for j := range 5 {
		n := seed*5 + j
		members = append(members, map[string]any{
			"id": fmt.Sprintf("U0%07X", 0x2B3C4D+n), "team_id": "T0123ABCD", "name": fmt.Sprintf("user%d", n), "deleted": n%11 == 0,
			"real_name": []string{"Maria García", "Sam O'Neil", "Priya Natarajan", "Jamie Lee", "王伟", "山田 由紀", "Ольга Иванова"}[n%7],
			"tz":        "America/Denver", "tz_offset": -25200, "is_admin": n%9 == 0, "is_bot": n%13 == 0,
			"profile": map[string]any{"title": []string{"Account Executive", "AI Engineer", "Support Agent", "Assistant Controller", "SRE"}[n%5],
				"phone": "", "status_text": []string{"", "In a meeting", "OOO until Monday 🌴", "Focus time 🎧", "Commuting"}[n%5], "status_emoji": ":spiral_calendar_pad:",
				"image_192": fmt.Sprintf("https://avatars.slack-edge.com/2023-02-01/%d_192.jpg", 5000+n), "email": fmt.Sprintf("user%d@acme.example", n)},
			"updated": 1700000000 + n,
		})
	}
	return map[string]any{"ok": true, "members": members, "cache_ts": 1700000000 + seed, "response_metadata": map[string]any{"next_cursor": ""}}
}
