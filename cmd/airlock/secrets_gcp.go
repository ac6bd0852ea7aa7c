package main

import (
	"time"

	"github.com/airlock-dev/airlock/host/secret"
)

// gcpConfig is the gcp: block of airlock.yaml, for gcp-sm: references. Without it gcp-sm:
// references still resolve, with Application Default Credentials.
//
//	gcp:
//	  credentials_file: /run/secrets/gcp-sa.json  # a service account key; default ADC
//	  endpoint: https://secretmanager.europe-west1.rep.googleapis.com  # default the global one
//	  cache_ttl: 30s                              # how long a value read is reused
type gcpConfig struct {
	CredentialsFile string        `yaml:"credentials_file"`
	Endpoint        string        `yaml:"endpoint"`
	CacheTTL        time.Duration `yaml:"cache_ttl"`
}

// addGCPSecrets registers gcp-sm: (Google Secret Manager) in mux. Nothing is contacted until a
// reference is resolved.
func (g *globals) addGCPSecrets(cfg *fileConfig, mux secret.Mux) {
	var c secret.GCPConfig
	if gc := cfg.GCP; gc != nil {
		c = secret.GCPConfig{CredentialsFile: gc.CredentialsFile, Endpoint: gc.Endpoint, CacheTTL: gc.CacheTTL}
	}
	mux["gcp-sm"] = secret.NewGCPSecretManager(&c)
}
