package screen

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// confusables maps letters of other scripts that look like Latin ones to those (a subset of
// Unicode TR39's confusables.txt: the Cyrillic, Greek, Armenian and Latin-extension letters
// whose glyph is the Latin letter's in common fonts). Fullwidth and mathematical letters
// (U+FF21…, U+1D400…) need no entry: NFKC maps them.
var confusables = map[rune]rune{
	// Cyrillic.
	'а': 'a', 'в': 'b', 'е': 'e', 'ё': 'e', 'к': 'k', 'м': 'm', 'н': 'h', 'о': 'o', 'р': 'p', 'с': 'c', 'т': 't', 'у': 'y', 'х': 'x',
	'і': 'i', 'ї': 'i', 'ј': 'j', 'ѕ': 's', 'ԁ': 'd', 'ԛ': 'q', 'ԝ': 'w', 'һ': 'h', 'ӏ': 'l',
	'А': 'A', 'В': 'B', 'Е': 'E', 'К': 'K', 'М': 'M', 'Н': 'H', 'О': 'O', 'Р': 'P', 'С': 'C', 'Т': 'T', 'Х': 'X', 'У': 'Y',
	'І': 'I', 'Ј': 'J', 'Ѕ': 'S', 'Ԁ': 'D', 'Ԛ': 'Q', 'Ԝ': 'W', 'Һ': 'H', 'Ӏ': 'I',
	// Greek.
	'α': 'a', 'ε': 'e', 'ι': 'i', 'κ': 'k', 'ν': 'v', 'ο': 'o', 'ρ': 'p', 'τ': 't', 'υ': 'u', 'χ': 'x', 'γ': 'y',
	'Α': 'A', 'Β': 'B', 'Ε': 'E', 'Ζ': 'Z', 'Η': 'H', 'Ι': 'I', 'Κ': 'K', 'Μ': 'M', 'Ν': 'N', 'Ο': 'O', 'Ρ': 'P', 'Τ': 'T', 'Υ': 'Y', 'Χ': 'X',
	// Armenian.
	'օ': 'o', 'ս': 'u', 'հ': 'h', 'զ': 'q', 'ո': 'n', 'ց': 'g',
	// Latin extensions and letterlike symbols NFKC leaves alone.
	'ı': 'i', 'ȷ': 'j', 'ɑ': 'a', 'ɡ': 'g', 'ɩ': 'i', 'ʏ': 'y', 'ℓ': 'l', 'ꞇ': 't',
}

// leet maps the digits and signs "leetspeak-lite" puts in words ("1gn0re") to the letters they
// stand for.
var leet = [128]byte{'0': 'o', '1': 'i', '3': 'e', '4': 'a', '5': 's', '7': 't', '@': 'a', '$': 's'}

// fold returns s, already normalized, with what makes it look like Latin text without being
// so undone: combining marks removed ("i̇gno̸re"; the precomposed letters of Latin-1 and
// Latin Extended-A, "é", "ç", "ß", are kept: the rules of real languages spell them),
// confusable letters mapped (confusables), and digits and signs inside a word that has a
// letter (leet). Real Cyrillic or Greek text becomes a mix no Latin pattern matches: no letter
// of those scripts stands for r, so "ignore", "previous" or "instructions" need Latin letters
// to read. It returns s when nothing changed.
//
// With all, every combining mark goes, accents included ("ìgnòrè"): the English rules then
// read it, the rules of languages written with accents read the fold without all.
func fold(s string, all bool) string {
	ascii := isPlainASCII(s)
	if ascii && !strings.ContainsAny(s, "0134579@$") {
		return s
	}
	t := s
	if !ascii {
		var b strings.Builder
		for _, c := range norm.NFC.String(s) {
			if !all && c >= 0xC0 && c <= 0x17F { // Latin-1 and Extended-A: the accents of real text
				b.WriteRune(c)
				continue
			}
			for _, d := range norm.NFD.String(string(c)) {
				if unicode.Is(unicode.Mn, d) {
					continue
				}
				if l, ok := confusables[d]; ok {
					d = l
				}
				b.WriteRune(d)
			}
		}
		t = b.String()
	}
	return unleet(t)
}

// unleet maps leet characters in every word (a run of letters, digits, @ and $) that has both
// an ASCII letter and a leet character: "1gn0re" becomes "ignore"; "2024", "v1.2" and "$40"
// keep their meaning in a way no pattern cares about.
func unleet(s string) string {
	b := []byte(s)
	changed := false
	for i := 0; i < len(b); {
		if !wordByte(b[i]) {
			i++
			continue
		}
		j, letters, leets := i, 0, 0
		for ; j < len(b) && wordByte(b[j]); j++ {
			if b[j] < utf8.RuneSelf && leet[b[j]] != 0 {
				leets++
			} else if 'a' <= b[j]|0x20 && b[j]|0x20 <= 'z' {
				letters++
			}
		}
		if letters > 0 && leets > 0 {
			for k := i; k < j; k++ {
				if l := leet[b[k]]; l != 0 {
					b[k], changed = l, true
				}
			}
		}
		i = j
	}
	if !changed {
		return s
	}
	return string(b)
}

func wordByte(c byte) bool {
	return 'a' <= c|0x20 && c|0x20 <= 'z' || '0' <= c && c <= '9' || c == '@' || c == '$'
}
