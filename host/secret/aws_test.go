package secret_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"

	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/internal/awsfake"
)

// awsEnv points the SDK's standard chain at the environment only (no ~/.aws, no instance
// metadata) with the given key pair, and returns a fake in us-east-1 that accepts AKIDFAKE.
func awsEnv(t *testing.T, keyID, secretKey string) (*awsfake.Server, *httptest.Server) {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_ACCESS_KEY_ID", keyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secretKey)
	f := &awsfake.Server{Region: "us-east-1", Keys: map[string]string{"AKIDFAKE": "fake/secret/key+0123456789abcdefABCDEF"}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv
}

func newAWS(t *testing.T, cfg secret.AWSConfig) *secret.AWS {
	t.Helper()
	a, err := secret.NewAWS(context.Background(), &cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func goodAWS(t *testing.T) (*awsfake.Server, string) {
	f, srv := awsEnv(t, "AKIDFAKE", "fake/secret/key+0123456789abcdefABCDEF")
	return f, srv.URL
}

func mustResolve(t *testing.T, src secret.Source, ctx context.Context, ref, want string) {
	t.Helper()
	v, err := src.Resolve(ctx, ref)
	if err != nil {
		t.Fatalf("%s: %v", ref, err)
	}
	if v.Expose() != want {
		t.Fatalf("%s = %q, want %q", ref, v.Expose(), want)
	}
}

func TestAWSSecretsManagerResolvesNamesARNsKeysAndVersions(t *testing.T) {
	f, url := goodAWS(t)
	ctx := context.Background()
	id1 := f.PutSecret("prod/slack", `{"bot_token":"xoxb-one","port":8080}`)
	f.PutSecret("plain@team", "sk-plain-AAAA")
	a := newAWS(t, secret.AWSConfig{Region: "us-east-1", Endpoint: url, CacheTTL: -1})

	mustResolve(t, a, ctx, "aws-sm:plain@team", "sk-plain-AAAA")
	mustResolve(t, a, ctx, "aws-sm:prod/slack#bot_token", "xoxb-one")
	mustResolve(t, a, ctx, "aws-sm:"+f.ARN("prod/slack")+"#bot_token", "xoxb-one")

	// Rotate through the SDK itself: the fake moves AWSCURRENT and AWSPREVIOUS.
	cfg, _ := awsconfig.LoadDefaultConfig(ctx, awsconfig.WithRegion("us-east-1"))
	sm := secretsmanager.NewFromConfig(cfg, func(o *secretsmanager.Options) { o.BaseEndpoint = aws.String(url) })
	if _, err := sm.PutSecretValue(ctx, &secretsmanager.PutSecretValueInput{SecretId: aws.String("prod/slack"), SecretString: aws.String(`{"bot_token":"xoxb-two"}`)}); err != nil {
		t.Fatal(err)
	}
	mustResolve(t, a, ctx, "aws-sm:prod/slack#bot_token", "xoxb-two")
	mustResolve(t, a, ctx, "aws-sm:prod/slack?stage=AWSPREVIOUS#bot_token", "xoxb-one")
	mustResolve(t, a, ctx, "aws-sm:prod/slack?stage=AWSCURRENT#bot_token", "xoxb-two")
	mustResolve(t, a, ctx, "aws-sm:prod/slack?version_id="+id1+"#bot_token", "xoxb-one")
}

func TestAWSParameterStoreDecryptsAndSelectsVersions(t *testing.T) {
	f, url := goodAWS(t)
	ctx := context.Background()
	f.PutParameter("/prod/slack/token", "SecureString", "xoxb-v1")
	f.PutParameter("/prod/slack/token", "SecureString", "xoxb-v2")
	f.LabelParameter("/prod/slack/token", 1, "stable")
	a := newAWS(t, secret.AWSConfig{Region: "us-east-1", Endpoint: url})
	mustResolve(t, a, ctx, "aws-ssm:/prod/slack/token", "xoxb-v2")
	mustResolve(t, a, ctx, "aws-ssm:/prod/slack/token?version=1", "xoxb-v1")
	mustResolve(t, a, ctx, "aws-ssm:/prod/slack/token?label=stable", "xoxb-v1")
	mustResolve(t, a, ctx, "aws-ssm:arn:aws:ssm:us-east-1:123456789012:parameter/prod/slack/token?version=1", "xoxb-v1")
}

func TestAWSCachesUntilTTLAndRereadsOnAFreshRead(t *testing.T) {
	f, url := goodAWS(t)
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	f.PutSecret("api", "key-one-AAAA")
	a := newAWS(t, secret.AWSConfig{Region: "us-east-1", Endpoint: url, CacheTTL: time.Minute, Now: clock})
	ctx := context.Background()
	mustResolve(t, a, ctx, "aws-sm:api", "key-one-AAAA")
	mustResolve(t, a, ctx, "aws-sm:api", "key-one-AAAA")
	if n := f.Calls("GetSecretValue"); n != 1 {
		t.Fatalf("two resolves within the TTL made %d GetSecretValue calls, want 1", n)
	}
	f.PutSecret("api", "key-two-BBBB")
	mustResolve(t, a, ctx, "aws-sm:api", "key-one-AAAA") // still cached
	mu.Lock()
	now = now.Add(61 * time.Second)
	mu.Unlock()
	mustResolve(t, a, ctx, "aws-sm:api", "key-two-BBBB")
	f.PutSecret("api", "key-three-CCCC")
	mustResolve(t, a, secret.WithFreshRead(ctx), "aws-sm:api", "key-three-CCCC")
	mustResolve(t, a, ctx, "aws-sm:api", "key-three-CCCC") // the fresh read refilled the cache
}

func TestAWSErrorsSayWhatToDoAndCarryNoValue(t *testing.T) {
	f, url := goodAWS(t)
	f.PutSecret("prod/slack", `{"bot_token":"xoxb-CANARY-1","signing":"CANARY-2"}`)
	f.PutSecret("locked", "CANARY-3")
	f.Deny("locked")
	f.PutBinarySecret("blob", []byte("CANARY-4"))
	f.PutParameter("/locked", "SecureString", "CANARY-5")
	f.Deny("/locked")
	a := newAWS(t, secret.AWSConfig{Region: "us-east-1", Endpoint: url})
	src := secret.Mux{"aws-sm": a, "aws-ssm": a}
	for _, c := range []struct {
		ref  string
		is   error
		says []string
	}{
		{"aws-sm:prod/nothing", secret.ErrNotFound, []string{"no secret prod/nothing", "us-east-1"}},
		{"aws-sm:prod/slack?stage=AWSPENDING", secret.ErrNotFound, []string{"version the reference selects"}},
		{"aws-sm:prod/slack#bot", secret.ErrNotFound, []string{`no key "bot"`, "bot_token, signing"}},
		{"aws-sm:locked", secret.ErrDenied, []string{"secretsmanager:GetSecretValue", "kms:Decrypt"}},
		{"aws-ssm:/locked", secret.ErrDenied, []string{"ssm:GetParameter", "kms:Decrypt"}},
		{"aws-ssm:/nothing", secret.ErrNotFound, []string{"no parameter /nothing"}},
		{"aws-ssm:/locked?version=9", secret.ErrDenied, nil},
		{"aws-sm:blob", nil, []string{"binary", "secret string"}},
		{"aws-sm:", secret.ErrBadReference, []string{"aws-sm:NAME_OR_ARN"}},
		{"aws-sm:has space CANARY-6", secret.ErrBadReference, []string{"characters AWS does not allow"}},
		{"aws-sm:x?stage=", secret.ErrBadReference, []string{"selector"}},
		{"aws-sm:x?version=3", secret.ErrBadReference, []string{"unknown selector"}},
		{"aws-ssm:/p#key", secret.ErrBadReference, []string{"no JSON keys"}},
		{"aws-ssm:/p?version=0", secret.ErrBadReference, []string{"positive integer"}},
		{"CANARY-7 pasted", secret.ErrBadReference, []string{"aws-sm:NAME_OR_ARN[#JSON_KEY] or aws-ssm:/PATH/NAME"}},
	} {
		_, err := src.Resolve(context.Background(), c.ref)
		if err == nil {
			t.Errorf("%s: resolved, want an error", c.ref)
			continue
		}
		if c.is != nil && !errors.Is(err, c.is) {
			t.Errorf("%s: %v, want errors.Is %v", c.ref, err, c.is)
		}
		for _, s := range c.says {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("%s: %q does not say %q", c.ref, err, s)
			}
		}
		if strings.Contains(err.Error(), "CANARY") || strings.Contains(err.Error(), "arn:aws:iam") {
			t.Errorf("%s: the error carries a value or the caller's ARN: %v", c.ref, err)
		}
	}
}

// The fake checks SigV4 itself: a wrong secret key, an unknown key id, the wrong region, a skewed
// clock and a body changed after signing are all refused, with AWS's error codes.
func TestAWSFakeRefusesBadSignatures(t *testing.T) {
	ctx := context.Background()
	t.Run("wrong secret key", func(t *testing.T) {
		f, srv := awsEnv(t, "AKIDFAKE", "not-the-secret-key")
		f.PutSecret("api", "CANARY")
		_, err := newAWS(t, secret.AWSConfig{Region: "us-east-1", Endpoint: srv.URL}).Resolve(ctx, "aws-sm:api")
		if !errors.Is(err, secret.ErrDenied) || !strings.Contains(err.Error(), "InvalidSignatureException") || strings.Contains(err.Error(), "not-the-secret") {
			t.Fatalf("err = %v, want ErrDenied with InvalidSignatureException and no key", err)
		}
	})
	t.Run("unknown key id", func(t *testing.T) {
		f, srv := awsEnv(t, "AKIDOTHER", "fake/secret/key+0123456789abcdefABCDEF")
		f.PutSecret("api", "CANARY")
		_, err := newAWS(t, secret.AWSConfig{Region: "us-east-1", Endpoint: srv.URL}).Resolve(ctx, "aws-sm:api")
		if !errors.Is(err, secret.ErrDenied) || !strings.Contains(err.Error(), "UnrecognizedClientException") {
			t.Fatalf("err = %v, want UnrecognizedClientException", err)
		}
	})
	t.Run("wrong region", func(t *testing.T) {
		f, url := goodAWS(t)
		f.PutParameter("/p", "SecureString", "CANARY")
		_, err := newAWS(t, secret.AWSConfig{Region: "eu-west-1", Endpoint: url}).Resolve(ctx, "aws-ssm:/p")
		if !errors.Is(err, secret.ErrDenied) || !strings.Contains(err.Error(), "InvalidSignatureException") {
			t.Fatalf("err = %v, want InvalidSignatureException", err)
		}
	})
	t.Run("clock skew", func(t *testing.T) {
		f, url := goodAWS(t)
		f.Now = func() time.Time { return time.Now().Add(20 * time.Minute) }
		f.PutSecret("api", "CANARY")
		_, err := newAWS(t, secret.AWSConfig{Region: "us-east-1", Endpoint: url}).Resolve(ctx, "aws-sm:api")
		if !errors.Is(err, secret.ErrDenied) || !strings.Contains(err.Error(), "clock") {
			t.Fatalf("err = %v, want a refused signature that mentions the clock", err)
		}
	})
	t.Run("body changed after signing", func(t *testing.T) {
		f, url := goodAWS(t)
		f.PutSecret("pub", "public-value")
		f.PutSecret("api", "CANARY")
		// A proxy between the host and AWS swaps the secret id; the signature must not match.
		tamper := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, err := io.ReadAll(r.Body)
			if err != nil {
				t.Error(err)
			}
			body := strings.Replace(string(b), `"pub"`, `"api"`, 1) // same length
			r.Body = io.NopCloser(strings.NewReader(body))
			f.ServeHTTP(w, r)
		}))
		t.Cleanup(tamper.Close)
		mustResolve(t, newAWS(t, secret.AWSConfig{Region: "us-east-1", Endpoint: url}), ctx, "aws-sm:pub", "public-value")
		_, err := newAWS(t, secret.AWSConfig{Region: "us-east-1", Endpoint: tamper.URL}).Resolve(ctx, "aws-sm:pub")
		if !errors.Is(err, secret.ErrDenied) || !strings.Contains(err.Error(), "InvalidSignatureException") {
			t.Fatalf("err = %v, want the tampered request refused", err)
		}
	})
}

// The standard chain: a profile in a shared credentials file, chosen by the configuration.
func TestAWSSharedCredentialsProfile(t *testing.T) {
	f, url := goodAWS(t)
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	creds := os.Getenv("AWS_SHARED_CREDENTIALS_FILE")
	os.WriteFile(creds, []byte("[default]\naws_access_key_id = AKIDWRONG\naws_secret_access_key = nope\n\n[airlock]\naws_access_key_id = AKIDFAKE\naws_secret_access_key = fake/secret/key+0123456789abcdefABCDEF\n"), 0o600)
	os.WriteFile(os.Getenv("AWS_CONFIG_FILE"), []byte("[profile airlock]\nregion = us-east-1\n"), 0o600)
	f.PutSecret("api", "key-from-profile")
	a := newAWS(t, secret.AWSConfig{Profile: "airlock", Endpoint: url})
	mustResolve(t, a, context.Background(), "aws-sm:api", "key-from-profile")
	// The default profile holds another key: the fake refuses it.
	_, err := newAWS(t, secret.AWSConfig{Region: "us-east-1", Endpoint: url}).Resolve(context.Background(), "aws-sm:api")
	if !errors.Is(err, secret.ErrDenied) {
		t.Fatalf("default profile: err = %v, want ErrDenied", err)
	}
}

// go test -run - -bench AWSResolve ./host/secret: the cost of a cached read and of a read from
// the local fake (SDK request, SigV4 signing and the fake's verification, loopback HTTP).
func BenchmarkAWSResolve(b *testing.B) {
	b.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	b.Setenv("AWS_CONFIG_FILE", filepath.Join(b.TempDir(), "none"))
	b.Setenv("AWS_ACCESS_KEY_ID", "AKIDFAKE")
	b.Setenv("AWS_SECRET_ACCESS_KEY", "k")
	f := &awsfake.Server{Region: "us-east-1", Keys: map[string]string{"AKIDFAKE": "k"}}
	srv := httptest.NewServer(f)
	b.Cleanup(srv.Close)
	f.PutSecret("api", `{"key":"v"}`)
	a, err := secret.NewAWS(context.Background(), &secret.AWSConfig{Region: "us-east-1", Endpoint: srv.URL})
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		ctx  context.Context
	}{{"cached", context.Background()}, {"uncached", secret.WithFreshRead(context.Background())}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := a.Resolve(c.ctx, "aws-sm:api#key"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
