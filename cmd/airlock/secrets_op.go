package main

import (
	"fmt"
	"time"

	"github.com/airlock-dev/airlock/host/secret"
)

// onePasswordConfig is the onepassword: block of airlock.yaml: op:// references, read through
// a 1Password Connect server.
//
//	onepassword:
//	  host: http://op-connect:8080            # default $OP_CONNECT_HOST
//	  token: file:/run/secrets/op-connect     # a secret reference; default env:OP_CONNECT_TOKEN
//	  cache_ttl: 30s                          # how long an item is reused (default 30s; -1s: never)
//	  timeout: 10s                            # one request to Connect (default 10s)
type onePasswordConfig struct {
	Host     string        `yaml:"host"`
	Token    string        `yaml:"token"`
	CacheTTL time.Duration `yaml:"cache_ttl"`
	Timeout  time.Duration `yaml:"timeout"`
}

// onePassword adds the op source to mux when the configuration has a onepassword: block; the
// Connect token is resolved through creds.
func (g *globals) onePassword(cfg *fileConfig, mux, creds secret.Mux) error {
	c := cfg.OnePassword
	if c == nil {
		return nil
	}
	op, err := secret.NewOnePassword(&secret.OnePasswordConfig{Host: c.Host, Token: c.Token, Secrets: creds, CacheTTL: c.CacheTTL, Timeout: c.Timeout})
	if err != nil {
		return fmt.Errorf("%s: onepassword: %w", g.config, err)
	}
	mux["op"] = op
	return nil
}
