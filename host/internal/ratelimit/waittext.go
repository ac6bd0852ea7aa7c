package ratelimit

import (
	"strconv"
	"time"
)

// WaitText renders a wait for a sentence an agent reads: "250 ms", "3 seconds", "2 minutes",
// "1 hour 5 minutes". It rounds up, so "try again in" never says too little.
func WaitText(d time.Duration) string {
	switch {
	case d < time.Second:
		return strconv.FormatInt(max(1, int64((d+time.Millisecond-1)/time.Millisecond)), 10) + " ms"
	case d < time.Minute:
		return Plural(int64((d+time.Second-1)/time.Second), "second")
	case d < time.Hour:
		return Plural(int64((d+time.Minute-1)/time.Minute), "minute")
	}
	h := int64(d / time.Hour)
	m := int64((d%time.Hour + time.Minute - 1) / time.Minute)
	if m == 0 {
		return Plural(h, "hour")
	}
	return Plural(h, "hour") + " " + Plural(m, "minute")
}

// Plural renders a count of a unit: "1 call", "3 calls".
func Plural(n int64, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return strconv.FormatInt(n, 10) + " " + unit + "s"
}
