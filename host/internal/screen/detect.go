package screen

import (
	"net/url"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/airlock-dev/airlock/host/manifest"
)

// hit is one match in a text: a finding and the byte span it covers (start == end when the
// span is not known, so the whole value is what must go).
type hit struct {
	Finding
	start, end int
}

// Rule names of the other built-in detectors.
const (
	RuleTagCharacters     = "tag_characters"      // Unicode tag block U+E0000–U+E007F (hidden ASCII)
	RuleZeroWidth         = "zero_width"          // zero-width characters inside words or in runs
	RuleBidi              = "bidi_control"        // bidirectional overrides, embeddings, isolates
	RuleVariationSmuggle  = "variation_selectors" // runs of U+E0100–U+E01EF carrying bytes
	RuleMarkdownImage     = "markdown_image"      // ![…](url) to a host outside the allow-list, or a data: URL
	RuleHTMLResource      = "html_resource"       // <img src>, <iframe>, <script> … that a renderer would fetch
	RuleDataURL           = "data_url"            // data:text/html, data:image/svg+xml … in text
	RuleScriptURL         = "javascript_url"      // javascript: URLs
	RuleLinkOutsideAllow  = "link_outside_allow_list"
	RuleClassifierFlagged = "classifier"
)

// textDetector runs the built-in detectors over one text.
type textDetector struct {
	detectors map[string]bool
	linkHosts []string
}

func (d *textDetector) detect(s string, out []hit) []hit {
	if d.detectors[DetectorInvisible] {
		out = invisible(s, out)
	}
	lower := ""
	if d.detectors[DetectorInstruction] || d.detectors[DetectorExfiltration] || d.detectors[DetectorLink] {
		lower = strings.ToLower(s)
	}
	if d.detectors[DetectorInstruction] {
		out = d.instructions(s, lower, out)
	}
	if d.detectors[DetectorExfiltration] {
		out = d.exfiltration(s, lower, out)
	}
	if d.detectors[DetectorLink] {
		out = d.links(s, lower, out)
	}
	return out
}

// interesting reports whether some detector could find something in b (a string, or a whole
// JSON document): non-ASCII, white space, markup and escape characters, a base64 run, a data:
// or script: URL, a link when the link detector runs. Most strings of API data (identifiers,
// timestamps, numbers as text) have none, and are not screened further.
func (d *textDetector) interesting(b []byte) bool {
	for i, c := range b {
		switch {
		case c >= utf8.RuneSelf, c == ' ', c == '\t', c == '\n', c == '\r', c == '<', c == '#', c == '%', c == '&', c == '\\':
			return true
		case c == '[' && i+1 < len(b) && (b[i+1] == 'i' || b[i+1] == 'I' || b[i+1] == '/'), c == '!' && i+1 < len(b) && b[i+1] == '[':
			return true
		case c == ':' && i >= 4:
			w := strings.ToLower(string(b[i-4 : i]))
			if w == "data" || w == "ript" || d.detectors[DetectorLink] && (w == "http" || w == "ttps") {
				return true
			}
		}
	}
	return hasRun(string(b), 24)
}

func (d *textDetector) instructions(s, lower string, out []hit) []hit {
	cjk, cyrillic := scripts(s)
	// A phrase has spaces, unless written in CJK; without, only role markers can match (most
	// strings of API data are identifiers, timestamps and URLs).
	phrases := cjk || strings.ContainsAny(s, " \t\n\u00a0\u3000")
	var tg trigrams
	tg.add(lower)
	for i := range instructionRules {
		ru := &instructionRules[i]
		if (ru.lang == "zh" || ru.lang == "ja") && !cjk || ru.lang == "ru" && !cyrillic || !phrases && ru.name != RuleRoleMarker {
			continue
		}
		if !tg.containsAny(lower, ru.triggers) {
			continue
		}
		loc := ru.re.FindStringIndex(s)
		if loc == nil {
			continue
		}
		end := loc[1]
		// The payload follows the phrase: the span runs to the end of its line.
		if nl := strings.IndexByte(s[end:], '\n'); nl >= 0 {
			end += nl
		} else {
			end = len(s)
		}
		out = append(out, hit{Finding: Finding{Detector: DetectorInstruction, Rule: ru.name, Lang: ru.lang}, start: loc[0], end: end})
	}
	return out
}

// scripts reports whether s has CJK characters and Cyrillic letters: the rules of the languages
// written in them run only then.
func scripts(s string) (cjk, cyrillic bool) {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			for _, c := range s[i:] {
				switch {
				case c >= 0x0400 && c <= 0x04FF:
					cyrillic = true
				case c >= 0x3000 && c <= 0x9FFF, c >= 0xF900 && c <= 0xFAFF, c >= 0xFF00 && c <= 0xFFEF:
					cjk = true
				}
			}
			return cjk, cyrillic
		}
	}
	return false, false
}

// trigrams is a 4096-bit set of the byte triples of a text (hashed): a trigger whose first
// triple is absent cannot occur, so most triggers are ruled out without searching.
type trigrams [64]uint64

func trigram(a, b, c byte) uint { return (uint(a)*961 + uint(b)*31 + uint(c)) & 4095 }

func (g *trigrams) add(s string) {
	for i := 0; i+2 < len(s); i++ {
		h := trigram(s[i], s[i+1], s[i+2])
		g[h>>6] |= 1 << (h & 63)
	}
}

func (g *trigrams) containsAny(s string, subs []string) bool {
	for _, t := range subs {
		if len(t) >= 3 {
			if h := trigram(t[0], t[1], t[2]); g[h>>6]&(1<<(h&63)) == 0 {
				continue
			}
		}
		if strings.Contains(s, t) {
			return true
		}
	}
	return false
}

// invisible reports characters a human reading the rendered text does not see but a model
// reads: the tag block, zero-width characters inside words or in runs, bidi controls, and runs
// of variation selectors. ZWJ/ZWNJ between emoji or in joining scripts, a leading BOM, LRM and
// RLM are left alone: benign text uses them.
func invisible(s string, out []hit) []hit {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return out
	}
	var tags, bidi, vs, zwRun, zwTotal int
	var prev rune
	zwAfterWord, midWord := false, false
	for i, c := range s {
		switch {
		case c >= 0xE0000 && c <= 0xE007F:
			tags++
		case c >= 0xE0100 && c <= 0xE01EF:
			vs++
		case c >= 0x202A && c <= 0x202E, c >= 0x2066 && c <= 0x2069:
			bidi++
		case c == 0x200B, c >= 0x2060 && c <= 0x2064, c == 0x180E, c == 0xFEFF && i > 0, c == 0x200C, c == 0x200D:
			if c != 0x200C && c != 0x200D { // joiners: emoji sequences and joining scripts use them
				zwTotal++
			}
			if zwRun == 0 {
				zwAfterWord = asciiAlnum(prev)
			}
			zwRun++
			continue
		default:
			if zwRun > 0 && zwAfterWord && asciiAlnum(c) {
				midWord = true // "ig\u200bnore": splits a word so that filters miss it
			}
			zwRun = 0
		}
		prev = c
	}
	if tags > 0 {
		out = append(out, hit{Finding: Finding{Detector: DetectorInvisible, Rule: RuleTagCharacters}})
	}
	if vs >= 4 {
		out = append(out, hit{Finding: Finding{Detector: DetectorInvisible, Rule: RuleVariationSmuggle}})
	}
	if bidi > 0 {
		out = append(out, hit{Finding: Finding{Detector: DetectorInvisible, Rule: RuleBidi}})
	}
	if midWord || zwTotal >= 3 {
		out = append(out, hit{Finding: Finding{Detector: DetectorInvisible, Rule: RuleZeroWidth}})
	}
	return out
}

func asciiAlnum(c rune) bool {
	return c < utf8.RuneSelf && (unicode.IsLetter(c) || unicode.IsDigit(c))
}

// isInvisible reports the characters invisible removes when it redacts or normalizes.
func isInvisible(c rune) bool {
	switch {
	case c >= 0xE0000 && c <= 0xE007F, c >= 0xE0100 && c <= 0xE01EF,
		c >= 0x202A && c <= 0x202E, c >= 0x2066 && c <= 0x2069,
		c == 0x200B, c == 0x200C, c == 0x200D, c >= 0x2060 && c <= 0x2064, c == 0x180E, c == 0xFEFF, c == 0x00AD:
		return true
	}
	return false
}

// tagText returns the ASCII a run of tag characters spells (U+E0020–U+E007E map to ' '–'~').
func tagText(s string) string {
	var b strings.Builder
	for _, c := range s {
		if c >= 0xE0020 && c <= 0xE007E {
			b.WriteRune(c - 0xE0000)
		}
	}
	return b.String()
}

var (
	mdImage    = regexp.MustCompile(`!\[[^\]]*\]\(\s*<?([^)\s>]+)[^)]*\)?`)
	mdRefImage = regexp.MustCompile(`!\[[^\]]*\]\[([^\]]+)\]`)
	mdRefDef   = regexp.MustCompile(`(?m)^\s{0,3}\[([^\]]+)\]:\s*<?(\S+?)>?(?:\s|$)`)
	htmlRes    = regexp.MustCompile(`(?i)<\s*(img|image|iframe|frame|object|embed|video|audio|source|input|link|meta|body|table|td|svg|use)\b[^>]*?\b(src|href|data|srcset|content|poster|background|xlink:href)\s*=\s*["']?([^"'\s>]+)`)
	htmlScript = regexp.MustCompile(`(?i)<\s*script\b|\bon(?:error|load|mouseover|focus)\s*=\s*["']?[a-z]`)
	dataURL    = regexp.MustCompile(`(?i)\bdata:\s*([a-z]+/[a-z0-9.+-]+)[^,\s]{0,200},`)
	scriptURL  = regexp.MustCompile(`(?i)(?:^|[\s("'=<\[])(?:javascript|vbscript)\s*:`)
	bareURL    = regexp.MustCompile(`(?i)\bhttps?://[^\s<>"'()\[\]|]+`)
)

// exfiltration reports markup that a client rendering the text would fetch without anyone
// clicking — an image, a frame, a script — from a host outside the allow-list (the URL can carry
// the conversation out), and data:/javascript: URLs.
func (d *textDetector) exfiltration(s, lower string, out []hit) []hit {
	if strings.Contains(lower, "![") {
		for _, m := range mdImage.FindAllStringSubmatchIndex(s, -1) {
			if d.offList(s[m[2]:m[3]]) {
				out = append(out, hit{Finding: Finding{Detector: DetectorExfiltration, Rule: RuleMarkdownImage}, start: m[0], end: m[1]})
			}
		}
		if refs := mdRefImage.FindAllStringSubmatch(s, -1); refs != nil {
			defs := map[string]string{}
			for _, m := range mdRefDef.FindAllStringSubmatch(s, -1) {
				defs[strings.ToLower(m[1])] = m[2]
			}
			for _, m := range refs {
				if u, ok := defs[strings.ToLower(m[1])]; ok && d.offList(u) {
					out = append(out, hit{Finding: Finding{Detector: DetectorExfiltration, Rule: RuleMarkdownImage}})
				}
			}
		}
	}
	if strings.Contains(lower, "<") {
		for _, m := range htmlRes.FindAllStringSubmatchIndex(s, -1) {
			if d.offList(s[m[6]:m[7]]) {
				out = append(out, hit{Finding: Finding{Detector: DetectorExfiltration, Rule: RuleHTMLResource}, start: m[0], end: m[1]})
			}
		}
		if loc := htmlScript.FindStringIndex(s); loc != nil {
			out = append(out, hit{Finding: Finding{Detector: DetectorExfiltration, Rule: RuleHTMLResource}, start: loc[0], end: loc[1]})
		}
	}
	if strings.Contains(lower, "data:") {
		for _, m := range dataURL.FindAllStringSubmatchIndex(s, -1) {
			// A raster image is inert unless markup renders it (the image rules see that); an
			// avatar field holds one.
			if rasterImage(strings.ToLower(s[m[2]:m[3]])) {
				continue
			}
			out = append(out, hit{Finding: Finding{Detector: DetectorExfiltration, Rule: RuleDataURL}, start: m[0], end: m[1]})
		}
	}
	if strings.Contains(lower, "script") {
		if loc := scriptURL.FindStringIndex(s); loc != nil {
			out = append(out, hit{Finding: Finding{Detector: DetectorExfiltration, Rule: RuleScriptURL}, start: loc[0], end: loc[1]})
		}
	}
	return out
}

func rasterImage(mime string) bool {
	switch mime {
	case "image/png", "image/jpeg", "image/jpg", "image/gif", "image/webp":
		return true
	}
	return false
}

// links reports http(s) links to hosts outside the allow-list (opt-in: the link detector).
func (d *textDetector) links(s, lower string, out []hit) []hit {
	if !strings.Contains(lower, "http") {
		return out
	}
	for _, m := range bareURL.FindAllStringIndex(s, -1) {
		if d.offList(s[m[0]:m[1]]) {
			out = append(out, hit{Finding: Finding{Detector: DetectorLink, Rule: RuleLinkOutsideAllow}, start: m[0], end: m[1]})
		}
	}
	return out
}

// offList reports whether a URL a renderer would fetch leaves the allow-list: a data: or
// script URL, a protocol-relative or absolute URL to another host. A relative URL stays on
// the page's host.
func (d *textDetector) offList(raw string) bool {
	raw = strings.TrimSpace(raw)
	low := strings.ToLower(raw)
	if strings.HasPrefix(low, "data:") || strings.HasPrefix(low, "javascript:") || strings.HasPrefix(low, "vbscript:") {
		return true
	}
	if !strings.HasPrefix(low, "http:") && !strings.HasPrefix(low, "https:") && !strings.HasPrefix(low, "//") {
		return false
	}
	u, err := url.Parse(raw)
	if err != nil || u.Hostname() == "" {
		return true
	}
	return !d.allowed(strings.ToLower(u.Hostname()))
}

func (d *textDetector) allowed(host string) bool {
	for _, p := range d.linkHosts {
		if manifest.MatchHost(p, host) {
			return true
		}
	}
	return false
}
