package secret_test

import (
	"bytes"
	"context"
	"encoding/gob"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"text/template"

	"github.com/airlock-dev/airlock/host/secret"
)

// TestValueRedactsInMoreEncoders covers encoders that find their way to a Value through
// reflection rather than through a method call a reader would notice.
func TestValueRedactsInMoreEncoders(t *testing.T) {
	v := secret.New(canary)
	type cred struct {
		Name  string
		Token secret.Value
		Ptr   *secret.Value
		Any   any
	}
	c := cred{Name: "slack", Token: v, Ptr: &v, Any: v}
	out := map[string]string{}

	var g bytes.Buffer
	if err := gob.NewEncoder(&g).Encode(c); err == nil || !strings.Contains(err.Error(), "cannot be gob-encoded") {
		t.Errorf("gob.Encode of a struct holding a Value = %v, want a refusal", err)
	}
	out["gob"] = g.String()

	js, err := json.MarshalIndent(map[string]any{"c": c, "list": []any{v, &v}}, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	out["json"] = string(js)

	type attr struct {
		Token secret.Value `xml:"token,attr"`
	}
	x, err := xml.Marshal(attr{v})
	if err != nil {
		t.Fatal(err)
	}
	out["xml attr"] = string(x)

	var tb bytes.Buffer
	tmpl := template.Must(template.New("t").Parse(`{{.Token}} {{.Ptr}} {{printf "%x %q" .Token .Any}} {{.}}`))
	if err := tmpl.Execute(&tb, c); err != nil {
		t.Fatal(err)
	}
	out["template"] = tb.String()

	var lb bytes.Buffer
	l := slog.New(slog.NewJSONHandler(&lb, &slog.HandlerOptions{AddSource: true}))
	l.Info("m", slog.Group("g", "token", v, "cred", c), "err", fmt.Errorf("wrapped: %v", v))
	out["slog"] = lb.String()

	out["error %w chain"] = fmt.Errorf("outer: %w", errors.New(fmt.Sprint("inner ", v))).Error()
	out["Sprintf %+v struct"] = fmt.Sprintf("%+v %#v", c, c)

	for name, s := range out {
		if strings.Contains(s, canary) || strings.Contains(s, fmt.Sprintf("%x", canary)) {
			t.Errorf("%s leaks the secret: %s", name, s)
		}
	}
	if !strings.Contains(out["json"], `"Token": "[REDACTED]"`) {
		t.Errorf("json = %s, want the token redacted", out["json"])
	}
	if !strings.Contains(out["template"], "[REDACTED]") {
		t.Errorf("template = %s, want [REDACTED]", out["template"])
	}
}

// captureLogs routes the default slog logger into a buffer for the duration of the test.
func captureLogs(t *testing.T) *bytes.Buffer {
	t.Helper()
	var buf bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	t.Cleanup(func() { slog.SetDefault(old) })
	return &buf
}

// TestStoreAndVaultCanaryNeverInLogsOrErrors drives every failure path with a canary secret and
// checks neither the default logger nor any error carries it.
func TestStoreAndVaultCanaryNeverInLogsOrErrors(t *testing.T) {
	logs := captureLogs(t)
	ctx := context.Background()
	var errs []error

	b := &secret.MemoryBackend{}
	key := mustKey(t)
	s := mustOpen(t, b, key)
	errs = append(errs, s.Set(ctx, "k", secret.New(canary)))
	r, _ := b.GetSealed(ctx, secret.KindSecret, "k")
	r.Blob[len(r.Blob)-1] ^= 1
	_ = b.PutSealed(ctx, r)
	_, err := s.Get(ctx, "k")
	errs = append(errs, err)
	_, err = s.Open("x", []byte(canary))
	errs = append(errs, err)
	_, err = secret.OpenStore(ctx, b, mustKey(t))
	errs = append(errs, err)
	errs = append(errs, secret.RotateMasterKey(ctx, b, mustKey(t), mustKey(t)))
	_, err = s.Resolve(ctx, "store:"+canary+"!")
	errs = append(errs, err)

	f, srv := newFakeVault(t)
	v := newTokenVault(t, srv, -1, nil)
	for _, ref := range []string{"vault:secret/slack/prod#retries", "vault:secret/broken#x", "vault:secret/forbidden#x", "vault:secret/slack/prod#bot_token@3"} {
		_, err := v.Resolve(ctx, ref)
		errs = append(errs, err)
	}
	f.revokeAll()
	_, err = v.Resolve(ctx, "vault:secret/slack/prod#bot_token")
	errs = append(errs, err)

	failures := 0
	for _, err := range errs {
		if err != nil {
			failures++
			noLeak(t, "error", err, append(vaultCanaries, key)...)
		}
	}
	if failures < len(errs)-1 { // only the first Set succeeds
		t.Errorf("%d of %d hostile operations failed, want all but one", failures, len(errs))
	}
	for _, c := range vaultCanaries {
		if bytes.Contains(logs.Bytes(), c) {
			t.Errorf("the logs contain a secret: %s", logs)
		}
	}
}
