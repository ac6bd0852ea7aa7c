package secret_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/1Password/connect-sdk-go/connect"
	"github.com/1Password/connect-sdk-go/onepassword"
	"github.com/opentracing/opentracing-go"

	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/internal/opconnecttest"
)

const opToken = "eyJhbGciOiJFUzI1NiJ9.op-connect-canary-TOKEN.sig"

func opID(tag string) string { return opconnecttest.ID(tag) }

// newFakeConnect starts a Connect server holding vaults Production (items "Slack bot", "Twins",
// two "Dup"), HR (hidden from the token) and two vaults named Twin.
func newFakeConnect(t *testing.T) *opconnecttest.Server {
	f := opconnecttest.Start(t, opToken)
	f.AddVault(opID("vprod"), "Production", true)
	f.AddVault(opID("vhr"), "HR", false)
	f.AddVault(opID("vdup1"), "Twin", true)
	f.AddVault(opID("vdup2"), "Twin", true)
	backup := &onepassword.ItemSection{ID: "sbackup", Label: "Backup"}
	other := &onepassword.ItemSection{ID: "sother", Label: "Other"}
	prod := onepassword.ItemVault{ID: opID("vprod")}
	f.AddItem(&onepassword.Item{ID: opID("islack"), Title: "Slack bot", Category: onepassword.ApiCredential, Vault: prod,
		Sections: []*onepassword.ItemSection{backup},
		Fields: []*onepassword.ItemField{
			{ID: "username", Type: "STRING", Purpose: "USERNAME", Label: "username", Value: "airlock-bot"},
			{ID: "credential", Type: "CONCEALED", Label: "credential", Value: canary},
			{ID: "fold", Section: backup, Type: "CONCEALED", Label: "old credential", Value: "old-" + canary},
			{ID: "blank", Type: "CONCEALED", Label: "blank"},
		}})
	f.AddItem(&onepassword.Item{ID: opID("itwins"), Title: "Twins", Vault: prod,
		Sections: []*onepassword.ItemSection{backup, other},
		Fields: []*onepassword.ItemField{
			{ID: "ta", Section: backup, Type: "CONCEALED", Label: "token", Value: "a-" + canary},
			{ID: "tb", Section: other, Type: "CONCEALED", Label: "token", Value: "b-" + canary},
		}})
	f.AddItem(&onepassword.Item{ID: opID("idup1"), Title: "Dup", Vault: prod})
	f.AddItem(&onepassword.Item{ID: opID("idup2"), Title: "Dup", Vault: prod})
	f.AddItem(&onepassword.Item{ID: opID("ipay"), Title: "Payroll", Vault: onepassword.ItemVault{ID: opID("vhr")},
		Fields: []*onepassword.ItemField{{ID: "password", Label: "password", Value: "hr-" + canary}}})
	return f
}

func newOnePassword(t *testing.T, f *opconnecttest.Server, ttl time.Duration, clock *fakeClock) *secret.OnePassword {
	t.Helper()
	cfg := &secret.OnePasswordConfig{
		Host:     f.URL,
		Token:    "env:OP_TOKEN",
		Secrets:  staticSecrets(map[string]string{"OP_TOKEN": opToken}),
		CacheTTL: ttl,
	}
	if clock != nil {
		cfg.Now = clock.Now
	}
	o, err := secret.NewOnePassword(cfg)
	if err != nil {
		t.Fatalf("NewOnePassword: %v", err)
	}
	return o
}

var opCanaries = [][]byte{[]byte(canary), []byte(opToken)}

func TestOnePasswordResolves(t *testing.T) {
	f := newFakeConnect(t)
	o := newOnePassword(t, f, -1, nil)
	for ref, want := range map[string]string{
		"op://Production/Slack bot/credential":                         canary,
		"op://Production/Slack bot/CREDENTIAL":                         canary, // labels match without regard to case
		"op://Production/Slack bot/username":                           "airlock-bot",
		"op://Production/Slack bot/Backup/old credential":              "old-" + canary,
		"op://Production/Slack bot/sbackup/fold":                       "old-" + canary, // section and field IDs
		"op://" + opID("vprod") + "/" + opID("islack") + "/credential": canary,          // vault and item IDs
		"op://Production/" + opID("islack") + "/credential":            canary,
		"op://" + opID("vprod") + "/Slack bot/credential":              canary,
		"op://Production/Twins/Other/token":                            "b-" + canary,
		"op://Production/Twins/backup/token":                           "a-" + canary,
	} {
		got, err := o.Resolve(context.Background(), ref)
		if err != nil || got.Expose() != want {
			t.Errorf("Resolve(%q) = %v, want the field's value", ref, err)
		}
	}
	mux := secret.Mux{"op": o}
	if _, err := mux.Resolve(context.Background(), "op://Production/Slack bot/credential"); err != nil {
		t.Errorf("through a Mux: %v", err)
	}
	if s, ok := secret.Scheme("op://Production/Slack bot/credential"); !ok || s != "op" {
		t.Errorf(`Scheme("op://…") = %q, %v; want "op", true`, s, ok)
	}
	if d := secret.Display("op://Production/Slack bot/credential"); d != "op://Production/Slack bot/credential" {
		t.Errorf("Display shows %q", d)
	}
}

func TestOnePasswordErrors(t *testing.T) {
	f := newFakeConnect(t)
	o := newOnePassword(t, f, -1, nil)
	tests := []struct {
		ref  string
		is   error // nil: neither ErrNotFound nor ErrDenied
		want string
	}{
		{"op://Staging/Slack bot/credential", secret.ErrNotFound, `no vault named "Staging" is visible to the Connect token`},
		{"op://HR/Payroll/password", secret.ErrNotFound, `no vault named "HR" is visible`}, // not shared with the token
		{"op://" + opID("vhr") + "/Payroll/password", secret.ErrDenied, `denied its token access to vault "` + opID("vhr") + `" (HTTP 403)`},
		{"op://" + opID("vnone") + "/Payroll/password", secret.ErrNotFound, "found no vault"},
		{"op://Production/Jira bot/credential", secret.ErrNotFound, `vault "Production" has no item named "Jira bot"`},
		{"op://Production/" + opID("inone") + "/credential", secret.ErrNotFound, "has no item named"},
		{"op://Production/Slack bot/password", secret.ErrNotFound, `item "Slack bot" has no field "password" (it has fields blank, credential, old credential, username)`},
		{"op://Production/Slack bot/Backup/credential", secret.ErrNotFound, `section "Backup" of item "Slack bot" has no field "credential" (it has fields old credential)`},
		{"op://Production/Slack bot/Main/credential", secret.ErrNotFound, `item "Slack bot" has no section "Main" (it has sections Backup)`},
		{"op://Production/Slack bot/blank", secret.ErrNotFound, `field "blank" of item "Slack bot" is empty`},
		{"op://Production/Twins/token", nil, `has 2 fields named "token": name the section`},
		{"op://Production/Dup/x", nil, `vault "Production" has 2 items named "Dup": use the item's ID`},
		{"op://Twin/Slack bot/x", nil, `2 vaults are named "Twin": use the vault's ID`},
	}
	for _, tt := range tests {
		_, err := o.Resolve(context.Background(), tt.ref)
		if err == nil {
			t.Errorf("Resolve(%q) succeeded, want an error", tt.ref)
			continue
		}
		for _, sentinel := range []error{secret.ErrNotFound, secret.ErrDenied} {
			if errors.Is(err, sentinel) != (sentinel == tt.is) {
				t.Errorf("Resolve(%q) = %v; errors.Is(%v) = %v", tt.ref, err, sentinel, !(sentinel == tt.is))
			}
		}
		if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.ref) {
			t.Errorf("Resolve(%q) = %v\nwant it to contain %q and the reference", tt.ref, err, tt.want)
		}
		noLeak(t, tt.ref, err, opCanaries...)
	}

	// The server answers 429 and 500: the errors say so.
	for status, want := range map[int]string{429: "rate-limiting the host (HTTP 429) reading op://Production/Slack bot/credential: retry after 7 s", 500: "HTTP status 500"} {
		f.FailWith(status)
		_, err := o.Resolve(context.Background(), "op://Production/Slack bot/credential")
		if err == nil || !strings.Contains(err.Error(), want) || errors.Is(err, secret.ErrNotFound) {
			t.Errorf("status %d: %v, want %q", status, err, want)
		}
		noLeak(t, "status", err, opCanaries...)
	}
}

func TestOnePasswordRefusedToken(t *testing.T) {
	f := newFakeConnect(t)
	o, err := secret.NewOnePassword(&secret.OnePasswordConfig{
		Host: f.URL, Token: "env:OP_TOKEN", CacheTTL: -1,
		Secrets: staticSecrets(map[string]string{"OP_TOKEN": "wrong-" + opToken}),
	})
	if err != nil {
		t.Fatal(err)
	}
	_, err = o.Resolve(context.Background(), "op://Production/Slack bot/credential")
	if !errors.Is(err, secret.ErrDenied) || !strings.Contains(err.Error(), "refused its token (HTTP 401)") || !strings.Contains(err.Error(), "env:OP_TOKEN") {
		t.Errorf("wrong token: %v, want ErrDenied naming the token reference", err)
	}
	noLeak(t, "wrong token", err, append(opCanaries, []byte("wrong-"+opToken))...)
	if len(f.Requests()) != 0 {
		t.Errorf("%d requests were served with a wrong token", len(f.Requests()))
	}

	// No token at all: the error names the reference to set.
	o, _ = secret.NewOnePassword(&secret.OnePasswordConfig{Host: f.URL, Secrets: staticSecrets(nil)})
	_, err = o.Resolve(context.Background(), "op://Production/Slack bot/credential")
	if !errors.Is(err, secret.ErrNotFound) || !strings.Contains(err.Error(), "env:OP_CONNECT_TOKEN") {
		t.Errorf("no token: %v", err)
	}
	// No server address.
	t.Setenv("OP_CONNECT_HOST", "")
	if _, err := secret.NewOnePassword(nil); err == nil || !strings.Contains(err.Error(), "OP_CONNECT_HOST") {
		t.Errorf("NewOnePassword without a host: %v", err)
	}
	if _, err := secret.NewOnePassword(&secret.OnePasswordConfig{Host: "https://user:" + opToken + "@connect"}); err == nil {
		t.Error("NewOnePassword accepted a URL with credentials")
	} else {
		noLeak(t, "host", err, opCanaries...)
	}
}

func TestOnePasswordRereadsARenewedToken(t *testing.T) {
	f := newFakeConnect(t)
	var mu sync.Mutex
	current := opToken
	o, err := secret.NewOnePassword(&secret.OnePasswordConfig{
		Host: f.URL, Token: "env:OP_TOKEN", CacheTTL: -1,
		Secrets: secret.Env{Lookup: func(string) (string, bool) { mu.Lock(); defer mu.Unlock(); return current, true }},
	})
	if err != nil {
		t.Fatal(err)
	}
	const ref = "op://Production/Slack bot/credential"
	if _, err := o.Resolve(context.Background(), ref); err != nil {
		t.Fatal(err)
	}
	// The token is replaced: the old one is revoked and the reference yields the new one.
	f.SetTokens("renewed-" + opToken)
	mu.Lock()
	current = "renewed-" + opToken
	mu.Unlock()
	if got, err := o.Resolve(context.Background(), ref); err != nil || got.Expose() != canary {
		t.Fatalf("after the token was renewed: %v", err)
	}
	// Revoked and not renewed: one attempt, ErrDenied, no loop.
	f.SetTokens()
	n := len(f.Requests())
	_, err = o.Resolve(context.Background(), ref)
	if !errors.Is(err, secret.ErrDenied) {
		t.Errorf("revoked: %v, want ErrDenied", err)
	}
	if len(f.Requests()) != n {
		t.Errorf("a revoked token was served")
	}
	noLeak(t, "revoked", err, append(opCanaries, []byte("renewed-"+opToken))...)
}

func TestOnePasswordRejectsMalformedReferences(t *testing.T) {
	f := newFakeConnect(t)
	o := newOnePassword(t, f, -1, nil)
	for _, ref := range []string{
		"op:", "op:Production/Slack bot/credential", "op://", "op://Production", "op://Production/Slack bot",
		"op://Production/Slack bot/a/b/c", "op://Production//credential", "op:///Slack bot/credential",
		"op://Production/Slack bot/credential?attribute=otp", "op://Production/Slack bot/credential#x",
		`op://Production/Slack" or title eq "x/credential`, "op://Production/../credential", "op://Production/ Slack/x",
		"op://Production/Slack\x00bot/x", "op://Production/Slack%20bot/credential", "op://Production/" + strings.Repeat("a", 300) + "/x",
		"env:X", canary, "op://" + canary + "!/x/y",
	} {
		_, err := o.Resolve(context.Background(), ref)
		if err == nil {
			t.Errorf("Resolve(%q) succeeded, want an error", ref)
			continue
		}
		if ref != canary && !errors.Is(err, secret.ErrBadReference) {
			t.Errorf("Resolve(%q) = %v, want ErrBadReference", ref, err)
		}
		if !strings.Contains(err.Error(), "op://VAULT/ITEM/FIELD") {
			t.Errorf("Resolve(%q) = %v, want the syntax in the error", ref, err)
		}
		noLeak(t, "Resolve", err, opCanaries...)
	}
	if len(f.Requests()) != 0 {
		t.Errorf("malformed references reached the server %d times", len(f.Requests()))
	}
}

func TestOnePasswordCacheAndRotation(t *testing.T) {
	f := newFakeConnect(t)
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	o := newOnePassword(t, f, 30*time.Second, clock)
	ctx := context.Background()
	const ref = "op://Production/Slack bot/credential"
	for range 3 {
		if _, err := o.Resolve(ctx, ref); err != nil {
			t.Fatal(err)
		}
	}
	// Another field of the same item comes from the cached item too.
	if got, err := o.Resolve(ctx, "op://Production/Slack bot/username"); err != nil || got.Expose() != "airlock-bot" {
		t.Fatal(err)
	}
	if n := len(f.Requests()); n != 3 { // vault by title, item by title, item by ID
		t.Errorf("4 resolves of one item within the TTL made %d requests, want 3: %q", n, f.Requests())
	}
	// Rotated in 1Password: within the TTL the cached value is used, after it the new one.
	f.SetField(opID("vprod"), opID("islack"), "credential", "rotated-"+canary)
	if got, _ := o.Resolve(ctx, ref); got.Expose() != canary {
		t.Error("a rotated value was read within the TTL")
	}
	clock.Add(31 * time.Second)
	if got, err := o.Resolve(ctx, ref); err != nil || got.Expose() != "rotated-"+canary {
		t.Errorf("after the TTL: %v, want the rotated value", err)
	}
	// A fresh read (the host's, after an upstream 401) bypasses the cache.
	f.SetField(opID("vprod"), opID("islack"), "credential", "again-"+canary)
	if got, err := o.Resolve(secret.WithFreshRead(ctx), ref); err != nil || got.Expose() != "again-"+canary {
		t.Errorf("fresh read: %v, want the newest value", err)
	}
	// Errors are not cached.
	n := len(f.Requests())
	_, _ = o.Resolve(ctx, "op://Production/Nope/x")
	_, _ = o.Resolve(ctx, "op://Production/Nope/x")
	if len(f.Requests())-n != 4 {
		t.Errorf("two failing resolves made %d requests, want 4", len(f.Requests())-n)
	}
}

// The fake answers what the official SDK expects: connect-sdk-go, unmodified, reads the same
// item through it. This is what makes the fake a fair stand-in for a Connect server.
func TestFakeConnectSpeaksToTheOfficialSDK(t *testing.T) {
	f := newFakeConnect(t)
	if !opentracing.IsGlobalTracerRegistered() {
		// connect.NewClient would otherwise install a Jaeger tracer for the whole process.
		opentracing.SetGlobalTracer(opentracing.NoopTracer{})
	}
	c := connect.NewClient(f.URL, opToken)
	item, err := c.GetItem("Slack bot", "Production")
	if err != nil {
		t.Fatalf("connect-sdk-go GetItem: %v", err)
	}
	if got := item.GetValue("credential"); got != canary {
		t.Errorf("connect-sdk-go read credential = %q, want the canary", got)
	}
	if got := item.GetValue("Backup.old credential"); got != "old-"+canary {
		t.Errorf("connect-sdk-go read Backup.old credential = %q", got)
	}
	if _, err := c.GetItem("Jira bot", "Production"); err == nil || !strings.Contains(err.Error(), "Found 0 item(s)") {
		t.Errorf("connect-sdk-go GetItem(missing) = %v", err)
	}
	_, err = c.GetItemByUUID(opID("inone"), opID("vprod"))
	var oe *onepassword.Error
	if !errors.As(err, &oe) || oe.StatusCode != 404 {
		t.Errorf("connect-sdk-go GetItemByUUID(missing) = %v, want a *onepassword.Error with status 404", err)
	}
	_, err = connect.NewClient(f.URL, "wrong").GetVaults()
	if !errors.As(err, &oe) || oe.StatusCode != 401 {
		t.Errorf("connect-sdk-go with a wrong token = %v, want status 401", err)
	}
}
