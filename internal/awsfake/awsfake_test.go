package awsfake

import (
	"net/http"
	"testing"
	"time"
)

// The fake's SigV4 check reproduces AWS's own worked example (GET IAM ListUsers, in the
// "Create a signed AWS API request" guide), so it does not merely agree with the SDK it tests.
func TestVerifyMatchesAWSDocumentedExample(t *testing.T) {
	s := &Server{Region: "us-east-1", Keys: map[string]string{"AKIDEXAMPLE": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"},
		Now: func() time.Time { return time.Date(2015, 8, 30, 12, 36, 0, 0, time.UTC) }}
	const sig = "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
	req := func(signature string) *http.Request {
		r, _ := http.NewRequest("GET", "https://iam.amazonaws.com/?Action=ListUsers&Version=2010-05-08", nil)
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
		r.Header.Set("X-Amz-Date", "20150830T123600Z")
		r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/iam/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature="+signature)
		return r
	}
	if code, msg := s.verify(req(sig), nil, "iam"); code != "" {
		t.Fatalf("AWS's example refused: %s %s", code, msg)
	}
	bad := []byte(sig)
	bad[0] = '6'
	if code, _ := s.verify(req(string(bad)), nil, "iam"); code != "InvalidSignatureException" {
		t.Fatalf("a changed signature: code %q, want InvalidSignatureException", code)
	}
	if code, _ := s.verify(req(sig), nil, "ssm"); code != "InvalidSignatureException" {
		t.Fatalf("signed for iam, sent to ssm: code %q, want InvalidSignatureException", code)
	}
}
