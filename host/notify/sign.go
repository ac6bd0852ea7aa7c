package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
)

// SignatureHeader carries a generic webhook's signature: t=UNIX,v1=HEX.
const SignatureHeader = "X-Airlock-Signature"

// DefaultTolerance is how far from the receiver's clock a signature's timestamp may be before
// Verify refuses it as a possible replay.
const DefaultTolerance = 5 * time.Minute

// Sign returns the X-Airlock-Signature value for body sent at t: "t=UNIX,v1=HEX", HEX the
// lowercase hex HMAC-SHA256 under key of "UNIX.body". Each attempt is signed anew, so a
// retried delivery carries a fresh timestamp.
func Sign(key []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + mac(key, ts, body)
}

func mac(key []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Verification errors.
var (
	ErrNoSignature  = errors.New("notify: no valid X-Airlock-Signature header")
	ErrBadSignature = errors.New("notify: the signature does not match the body")
	ErrStale        = errors.New("notify: the signature's timestamp is too far from now (a replay?)")
)

// Verify checks header (an X-Airlock-Signature value) against body with key: the HMAC, in
// constant time, and the timestamp within tolerance of now (DefaultTolerance when zero). A
// receiver should also drop a repeated X-Airlock-Delivery: retries of one notice share it.
func Verify(key []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	var ts string
	var sigs []string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts = v
		case "v1":
			sigs = append(sigs, v)
		}
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || len(sigs) == 0 {
		return ErrNoSignature
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return ErrStale
	}
	want := []byte(mac(key, ts, body))
	for _, s := range sigs {
		if hmac.Equal([]byte(s), want) {
			return nil
		}
	}
	return ErrBadSignature
}
