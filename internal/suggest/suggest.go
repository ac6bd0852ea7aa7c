// Package suggest finds the likely intended word for a typo, for "did you mean" hints in
// error messages (unknown keys of manifests, grants, airlock.yaml and tool arguments).
//
//	suggest.Closest("chanel", []string{"channel", "text"}) // "channel"
package suggest

import "strings"

// Closest returns the candidate closest to word when it is close enough to be a likely typo
// (edit distance at most 2, or a case-insensitive or prefix match), and "" otherwise.
func Closest(word string, candidates []string) string {
	best, bestDist := "", 3
	lw := strings.ToLower(word)
	for _, c := range candidates {
		lc := strings.ToLower(c)
		if lc == lw {
			return c
		}
		d := distance(lw, lc)
		if len(lw) >= 3 && (strings.HasPrefix(lc, lw) || strings.HasPrefix(lw, lc)) {
			d = min(d, 1)
		}
		if d < bestDist && d < max(len(lw), 2) {
			best, bestDist = c, d
		}
	}
	return best
}

// distance is the Levenshtein distance of a and b, capped to keep it cheap on long input.
func distance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		if a == b {
			return 0
		}
		return 64
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
