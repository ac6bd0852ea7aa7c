package main

import (
	"fmt"
	"time"

	"github.com/airlock-dev/airlock/host/secret"
)

// azureConfig is the azure: block of airlock.yaml, for azure-kv: references. Without it
// azure-kv: references still resolve, with DefaultAzureCredential (AZURE_* variables, workload
// identity, managed identity, Azure CLI).
//
//	azure:
//	  tenant_id: 72f988bf-…             # with client_id and client_secret: a service principal
//	  client_id: 0b5c6a0e-…             # with managed_identity: a user-assigned identity
//	  client_secret: file:/run/secrets/azure-client-secret  # a secret reference (env:, file:, store:)
//	  managed_identity: true            # the VM's, App Service's or pod's identity
//	  authority_host: https://login.microsoftonline.us/  # default AZURE_AUTHORITY_HOST, else the public cloud
//	  vault_suffix: vault.usgovcloudapi.net              # default vault.azure.net
//	  cache_ttl: 30s
type azureConfig struct {
	TenantID        string        `yaml:"tenant_id"`
	ClientID        string        `yaml:"client_id"`
	ClientSecret    string        `yaml:"client_secret"`
	ManagedIdentity bool          `yaml:"managed_identity"`
	AuthorityHost   string        `yaml:"authority_host"`
	VaultSuffix     string        `yaml:"vault_suffix"`
	CacheTTL        time.Duration `yaml:"cache_ttl"`
}

// addAzureSecrets registers azure-kv: (Azure Key Vault) in mux; creds resolves the client
// secret reference. Nothing is contacted until a reference is resolved.
func (g *globals) addAzureSecrets(cfg *fileConfig, mux, creds secret.Mux) error {
	var c secret.AzureConfig
	if ac := cfg.Azure; ac != nil {
		c = secret.AzureConfig{TenantID: ac.TenantID, ClientID: ac.ClientID, ClientSecret: ac.ClientSecret,
			ManagedIdentity: ac.ManagedIdentity, AuthorityHost: ac.AuthorityHost, VaultSuffix: ac.VaultSuffix, CacheTTL: ac.CacheTTL}
	}
	c.Secrets = creds
	kv, err := secret.NewAzureKeyVault(&c)
	if err != nil {
		return fmt.Errorf("%s: %w", g.config, err)
	}
	mux["azure-kv"] = kv
	return nil
}
