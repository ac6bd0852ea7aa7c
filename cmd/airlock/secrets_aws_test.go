package main

import (
	"context"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/internal/awsfake"
)

// An admin adds an aws: block to airlock.yaml: aws-sm: and aws-ssm: references resolve with the
// credentials of the standard chain (here the environment); without the block they are an
// unsupported scheme, and a block the SDK cannot use fails with the file's name.
func TestAWSBlockTurnsOnAWSSchemes(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(dir, "config"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(dir, "credentials"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIDCLI")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "cli-secret-key")
	fake := &awsfake.Server{Region: "ap-south-1", Keys: map[string]string{"AKIDCLI": "cli-secret-key"}}
	srv := httptest.NewServer(fake)
	t.Cleanup(srv.Close)
	fake.PutSecret("db", `{"password":"pw-from-sm"}`)
	fake.PutParameter("/app/token", "SecureString", "tok-from-ssm")
	ctx := context.Background()
	g := &globals{config: "airlock.yaml"}

	var cfg fileConfig
	if err := decodeConfig("airlock.yaml", []byte("aws: {region: ap-south-1, endpoint: "+srv.URL+", cache_ttl: 1m}\n"), &cfg); err != nil {
		t.Fatal(err)
	}
	mux := secret.Mux{"env": secret.Env{}}
	if err := g.addAWS(ctx, &cfg, mux); err != nil {
		t.Fatal(err)
	}
	for ref, want := range map[string]string{"aws-sm:db#password": "pw-from-sm", "aws-ssm:/app/token": "tok-from-ssm"} {
		if v, err := mux.Resolve(ctx, ref); err != nil || v.Expose() != want {
			t.Errorf("%s = %q, %v; want %q", ref, v.Expose(), err, want)
		}
	}

	none := secret.Mux{"env": secret.Env{}}
	if err := g.addAWS(ctx, &fileConfig{}, none); err != nil {
		t.Fatal(err)
	}
	if _, err := none.Resolve(ctx, "aws-sm:db"); !errors.Is(err, secret.ErrBadReference) {
		t.Errorf("without an aws: block: %v, want an unsupported scheme", err)
	}

	var noRegion fileConfig
	if err := decodeConfig("airlock.yaml", []byte("aws: {}\n"), &noRegion); err != nil {
		t.Fatal(err)
	}
	if err := g.addAWS(ctx, &noRegion, secret.Mux{}); err == nil || !strings.Contains(err.Error(), "airlock.yaml: aws: no region") {
		t.Errorf("aws: {} without AWS_REGION: %v, want a missing-region error naming the file", err)
	}
}
