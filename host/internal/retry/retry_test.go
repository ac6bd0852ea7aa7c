package retry

import (
	"net/http"
	"strconv"
	"testing"
	"time"
)

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func TestClassify(t *testing.T) {
	h := func(kv ...string) map[string][]string {
		out := http.Header{}
		for i := 0; i < len(kv); i += 2 {
			out.Set(kv[i], kv[i+1])
		}
		return out
	}
	reset := func(d time.Duration) string { return strconv.FormatInt(now.Add(d).Unix(), 10) }
	tests := []struct {
		name   string
		status int
		header map[string][]string
		body   string
		class  Class
		wait   time.Duration
		pause  time.Duration // PauseUntil - now, 0 for none
		quota  bool
	}{
		{name: "200", status: 200, class: Final},
		{name: "400", status: 400, class: Final},
		{name: "401", status: 401, class: Final},
		{name: "403", status: 403, class: Final},
		{name: "404", status: 404, class: Final},
		{name: "501", status: 501, class: Final},
		{name: "500", status: 500, class: Transient},
		{name: "503", status: 503, class: Transient},
		{name: "599", status: 599, class: Transient},
		{name: "503 Retry-After", status: 503, header: h("Retry-After", "7"), class: Transient, wait: 7 * time.Second, pause: 7 * time.Second},
		{name: "429", status: 429, class: RateLimited},
		{name: "429 Retry-After", status: 429, header: h("Retry-After", "2"), class: RateLimited, wait: 2 * time.Second, pause: 2 * time.Second},
		{name: "429 Retry-After date", status: 429, header: h("Retry-After", now.Add(90*time.Second).Format(http.TimeFormat)), class: RateLimited,
			wait: 90 * time.Second, pause: 90 * time.Second},
		{name: "429 Retry-After past date", status: 429, header: h("Retry-After", now.Add(-time.Hour).Format(http.TimeFormat)), class: RateLimited},
		{name: "429 Retry-After garbage", status: 429, header: h("Retry-After", "soon"), class: RateLimited},
		{name: "429 Retry-After huge", status: 429, header: h("Retry-After", "99999999999999"), class: RateLimited, wait: maxSignalWait, pause: maxSignalWait},
		{name: "GitHub 403 remaining 0", status: 403, header: h("X-RateLimit-Remaining", "0", "X-RateLimit-Reset", reset(time.Minute)), class: RateLimited,
			wait: time.Minute, pause: time.Minute},
		{name: "GitHub 403 remaining 0 Retry-After wins", status: 403,
			header: h("X-RateLimit-Remaining", "0", "X-RateLimit-Reset", reset(time.Minute), "Retry-After", "5"), class: RateLimited,
			wait: 5 * time.Second, pause: 5 * time.Second},
		{name: "GitHub 403 remaining 0 reset past", status: 403, header: h("X-RateLimit-Remaining", "0", "X-RateLimit-Reset", reset(-time.Minute)), class: Final},
		{name: "GitHub 403 remaining 10", status: 403, header: h("X-RateLimit-Remaining", "10", "X-RateLimit-Reset", reset(time.Minute)), class: Final},
		{name: "GitHub 200 remaining 0", status: 200, header: h("X-RateLimit-Remaining", "0", "X-RateLimit-Reset", reset(time.Hour)), class: Final,
			pause: time.Hour},
		{name: "GitHub secondary 403", status: 403, body: `{"message":"You have exceeded a secondary rate limit."}`, class: RateLimited,
			wait: time.Minute, pause: time.Minute},
		{name: "GitHub secondary 429 Retry-After", status: 429, header: h("Retry-After", "30"), body: `Secondary Rate Limit`, class: RateLimited,
			wait: 30 * time.Second, pause: 30 * time.Second},
		{name: "Salesforce 403 daily quota", status: 403, body: `[{"message":"TotalRequests Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]`,
			header: h("Sforce-Limit-Info", "api-usage=100020/100000; per-app-api-usage=17/250(appName=airlock)"), class: QuotaExhausted, quota: true},
		{name: "Salesforce 403 concurrent long-running requests", status: 403,
			body:   `[{"message":"ConcurrentPerOrgLongTxn Limit exceeded.","errorCode":"REQUEST_LIMIT_EXCEEDED"}]`,
			header: h("Sforce-Limit-Info", "api-usage=25/100000"), class: RateLimited,
			wait: SalesforceConcurrencyWait, pause: SalesforceConcurrencyWait},
		// Salesforce lets an org go over its allocation for a while: a success never pauses.
		{name: "Sforce-Limit-Info over on a success", status: 200, header: h("Sforce-Limit-Info", "api-usage=100018/100000; api-bursts=1/750"), class: Final},
		{name: "Sforce-Limit-Info at the limit on a success", status: 200, header: h("Sforce-Limit-Info", "api-usage=15000/15000"), class: Final},
		{name: "Sforce-Limit-Info fine", status: 200, header: h("Sforce-Limit-Info", "api-usage=14999/15000"), class: Final},
		{name: "Slack ratelimited", status: 200, header: h("Content-Type", "application/json; charset=utf-8"), body: `{"ok":false,"error":"ratelimited"}`,
			class: RateLimited},
		{name: "Slack ratelimited Retry-After", status: 200, header: h("Retry-After", "3"), body: `{"ok":false,"error":"ratelimited"}`,
			class: RateLimited, wait: 3 * time.Second, pause: 3 * time.Second},
		{name: "Slack ok true mentions ratelimited", status: 200, body: `{"ok":true,"text":"ratelimited"}`, class: Final},
		{name: "Slack other error", status: 200, body: `{"ok":false,"error":"channel_not_found","x":"ratelimited"}`, class: Final},
		{name: "html ratelimited", status: 200, header: h("Content-Type", "text/html"), body: `{"ok":false,"error":"ratelimited"}`, class: Final},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Classify(now, tt.status, tt.header, []byte(tt.body))
			var pause time.Duration
			if !v.PauseUntil.IsZero() {
				pause = v.PauseUntil.Sub(now)
			}
			if v.Class != tt.class || v.Wait != tt.wait || pause != tt.pause || v.Quota != tt.quota {
				t.Errorf("Classify = {%v wait %v pause %v quota %v} (%s), want {%v wait %v pause %v quota %v}",
					v.Class, v.Wait, pause, v.Quota, v.Reason, tt.class, tt.wait, tt.pause, tt.quota)
			}
			if v.Class != Final && v.Reason == "" {
				t.Error("no reason")
			}
		})
	}
}

// TestSforceUsage reads the header in the forms Salesforce documents: items separated by ";".
func TestSforceUsage(t *testing.T) {
	tests := []struct {
		in          string
		used, limit int64
		ok          bool
	}{
		{"api-usage=10018/100000; api-bursts=1/750", 10018, 100000, true},
		{"api-usage=18/5000; per-app-api-usage=17/250(appName=sample-connected-app)", 18, 5000, true},
		{"per-app-api-usage=17/250(appName=x); api-usage=25/15000", 25, 15000, true},
		{"api-usage=25/15000", 25, 15000, true},
		{" api-usage = 25/15000", 0, 0, false},
		{"api-usage=x/0", 0, 0, false},
		{"api-usage=5/0", 0, 0, false},
		{"per-app-api-usage=17/250", 0, 0, false},
		{"", 0, 0, false},
	}
	for _, tt := range tests {
		used, limit, ok := SforceUsage(tt.in)
		if used != tt.used || limit != tt.limit || ok != tt.ok {
			t.Errorf("SforceUsage(%q) = %d, %d, %v; want %d, %d, %v", tt.in, used, limit, ok, tt.used, tt.limit, tt.ok)
		}
	}
}

func TestBackoff(t *testing.T) {
	p := Policy{}.WithDefaults()
	ceiling := func(n int64) int64 { return n - 1 }
	want := []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, 1600 * time.Millisecond,
		3200 * time.Millisecond, 5 * time.Second, 5 * time.Second}
	for i, w := range want {
		if got := p.Backoff(i+1, ceiling); got != w {
			t.Errorf("Backoff(%d) = %v, want %v", i+1, got, w)
		}
	}
	if got := p.Backoff(500, ceiling); got != 5*time.Second {
		t.Errorf("Backoff(500) = %v, want the cap", got)
	}
	if got := p.Backoff(3, func(int64) int64 { return 0 }); got != 0 {
		t.Errorf("full jitter floor = %v, want 0", got)
	}
}

func BenchmarkClassify(b *testing.B) {
	header := http.Header{"Content-Type": {"application/json"}, "X-Ratelimit-Remaining": {"4999"}, "X-Ratelimit-Reset": {"1700000000"}}
	body := []byte(`{"ok":true,"channel":"C123","ts":"1700000000.000100"}`)
	b.ReportAllocs()
	for b.Loop() {
		Classify(now, 200, header, body)
	}
}
