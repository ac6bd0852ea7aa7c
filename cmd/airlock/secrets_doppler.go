package main

import (
	"fmt"
	"time"

	"github.com/airlock-dev/airlock/host/secret"
)

// dopplerConfig is the doppler: block of airlock.yaml: doppler: references.
//
//	doppler:
//	  token: env:DOPPLER_TOKEN                # a secret reference; default env:DOPPLER_TOKEN
//	  tokens:                                 # a service token reads one project/config only
//	    web/prd: file:/run/secrets/doppler-web-prd
//	  cache_ttl: 30s                          # how long a secret is reused (default 30s; -1s: never)
//	  timeout: 10s                            # one request to Doppler (default 10s)
//	  api: https://api.doppler.com            # default; a test points it at a local server
type dopplerConfig struct {
	API      string            `yaml:"api"`
	Token    string            `yaml:"token"`
	Tokens   map[string]string `yaml:"tokens"`
	CacheTTL time.Duration     `yaml:"cache_ttl"`
	Timeout  time.Duration     `yaml:"timeout"`
}

// doppler adds the doppler source to mux when the configuration has a doppler: block; its
// tokens are resolved through creds.
func (g *globals) doppler(cfg *fileConfig, mux, creds secret.Mux) error {
	c := cfg.Doppler
	if c == nil {
		return nil
	}
	d, err := secret.NewDoppler(&secret.DopplerConfig{API: c.API, Token: c.Token, Tokens: c.Tokens, Secrets: creds, CacheTTL: c.CacheTTL, Timeout: c.Timeout})
	if err != nil {
		return fmt.Errorf("%s: doppler: %w", g.config, err)
	}
	mux["doppler"] = d
	return nil
}
