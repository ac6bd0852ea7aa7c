package suggest

import "testing"

func TestClosest(t *testing.T) {
	known := []string{"channel", "limit", "scopes", "text"}
	for word, want := range map[string]string{"chanel": "channel", "Channel": "channel", "scope": "scopes", "lmit": "limit", "zzz": "", "x": "", "txt": "text"} {
		if got := Closest(word, known); got != want {
			t.Errorf("Closest(%q) = %q, want %q", word, got, want)
		}
	}
}
