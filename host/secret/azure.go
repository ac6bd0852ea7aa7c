package secret

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
)

// AzureConfig configures an [AzureKeyVault]. The zero value authenticates with
// DefaultAzureCredential against the public cloud.
type AzureConfig struct {
	// TenantID and ClientID name the Entra ID application (service principal) the host signs in
	// as when ClientSecret is set. With ManagedIdentity, ClientID selects a user-assigned
	// identity (empty: the system-assigned one).
	TenantID, ClientID string

	// ClientSecret is a secret reference ("env:AZURE_CLIENT_SECRET", "file:/run/secrets/azure")
	// to the application's client secret: client credentials flow. Read again when Entra ID
	// refuses it, so a rotated client secret is picked up.
	ClientSecret string

	// ManagedIdentity signs in with the managed identity of the VM, App Service, Container App
	// or AKS pod (ClientID selects a user-assigned one).
	//
	// With neither ClientSecret nor ManagedIdentity, DefaultAzureCredential is used: the
	// AZURE_TENANT_ID / AZURE_CLIENT_ID / AZURE_CLIENT_SECRET (or _CERTIFICATE_PATH) variables,
	// workload identity, managed identity, then the Azure CLI's login.
	ManagedIdentity bool

	// AuthorityHost is the Entra ID endpoint, such as "https://login.microsoftonline.us/". Empty
	// means AZURE_AUTHORITY_HOST, else the public cloud.
	AuthorityHost string

	// VaultSuffix is the DNS suffix of vaults: a vault name N means https://N.VaultSuffix.
	// Empty means "vault.azure.net" (the public cloud; vault.azure.cn, vault.usgovcloudapi.net
	// for the others). Vault URLs in references must end in it too.
	VaultSuffix string

	// Secrets resolves ClientSecret. Nil means env: and file: references (absolute paths) only.
	Secrets Source

	// CacheTTL is how long a secret read is reused. Zero means [DefaultRemoteCacheTTL]; a negative
	// value disables the cache. A context from [WithFreshRead] bypasses it.
	CacheTTL time.Duration

	// Transport sends the requests to Entra ID and the vaults (tests, proxies). Nil means the
	// SDK's default HTTP client.
	Transport policy.Transporter

	// Now is the cache's clock. Nil means time.Now.
	Now func() time.Time
}

// AzureKeyVault resolves references to Azure Key Vault secrets:
//
//	azure-kv:VAULT/SECRET             the current version
//	azure-kv:VAULT/SECRET/VERSION     a version (32 hexadecimal characters)
//	azure-kv:VAULT/SECRET#KEY         the string KEY of a JSON secret (also with a VERSION)
//
// VAULT is the vault's name ("contoso-prod" for https://contoso-prod.vault.azure.net) or its URL;
// the secret identifier the portal shows (https://VAULT.vault.azure.net/secrets/SECRET/VERSION)
// is accepted after "azure-kv:" as it is. It calls Get Secret through the official azsecrets
// client with the host's Entra ID identity, which needs the role "Key Vault Secrets User" on the
// vault or secret (RBAC), or the Get secret permission of an access policy. Reads are cached
// for [AzureConfig.CacheTTL].
//
// Errors name the reference and say what to do; they never contain a value, a token, the
// client secret, nor what the server said. An AzureKeyVault is safe for concurrent use.
type AzureKeyVault struct {
	cfg   AzureConfig
	cache *ttlCache[string]

	mu      sync.Mutex
	cred    azcore.TokenCredential       // created at the first Resolve, dropped when refused
	clients map[string]*azsecrets.Client // by vault URL
}

// NewAzureKeyVault returns a source for cfg. It neither reads the client secret nor contacts
// Azure: the first [AzureKeyVault.Resolve] does.
func NewAzureKeyVault(cfg *AzureConfig) (*AzureKeyVault, error) {
	var c AzureConfig
	if cfg != nil {
		c = *cfg
	}
	if c.ClientSecret != "" && (c.TenantID == "" || c.ClientID == "") {
		return nil, errors.New("azure: a client_secret needs the application's tenant_id and client_id")
	}
	if c.ClientSecret != "" && c.ManagedIdentity {
		return nil, errors.New("azure: choose either a client_secret or managed_identity, not both")
	}
	if c.VaultSuffix == "" {
		c.VaultSuffix = "vault.azure.net"
	}
	c.VaultSuffix = strings.TrimPrefix(strings.ToLower(c.VaultSuffix), ".")
	if c.Secrets == nil {
		c.Secrets = Mux{"env": Env{}, "file": File{}}
	}
	if c.CacheTTL == 0 {
		c.CacheTTL = DefaultRemoteCacheTTL
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return &AzureKeyVault{cfg: c, cache: newTTLCache[string](c.CacheTTL, c.Now), clients: map[string]*azsecrets.Client{}}, nil
}

// azureRef is a parsed "azure-kv:" reference.
type azureRef struct {
	vault, name, version, key string // vault: the vault's URL
}

func (r azureRef) location() string {
	s := r.vault + "/secrets/" + r.name
	if r.version != "" {
		s += "/" + r.version
	}
	return s
}

func (r azureRef) String() string {
	s := "azure-kv:" + r.location()
	if r.key != "" {
		s += "#" + r.key
	}
	return s
}

const azureRefHelp = "write azure-kv:VAULT/SECRET or azure-kv:VAULT/SECRET/VERSION (VAULT a vault name or https://NAME.vault.azure.net; add #KEY for a key of a JSON secret), for example azure-kv:contoso-prod/slack-bot-token"

func (a *AzureKeyVault) parseRef(ref string) (azureRef, error) {
	bad := func(why string) (azureRef, error) { return azureRef{}, badRef("azure-kv", why, azureRefHelp) }
	rest, key, err := cutRemoteRef(ref, "azure-kv", azureRefHelp)
	if err != nil {
		return azureRef{}, err
	}
	r := azureRef{key: key}
	var vault string
	if u, ok := strings.CutPrefix(rest, "https://"); ok {
		host, path, _ := strings.Cut(u, "/")
		name, ok := strings.CutSuffix(strings.ToLower(host), "."+a.cfg.VaultSuffix)
		if !ok || !validAzureVaultName(name) {
			return bad("the vault URL is not https://NAME." + a.cfg.VaultSuffix)
		}
		vault, rest = name, strings.TrimPrefix(path, "secrets/")
	} else {
		vault, rest, _ = strings.Cut(rest, "/")
		if !validAzureVaultName(vault) {
			return bad("the vault name is not 3 to 24 letters, digits and hyphens starting with a letter")
		}
	}
	r.vault = "https://" + strings.ToLower(vault) + "." + a.cfg.VaultSuffix
	p := strings.Split(rest, "/")
	if len(p) > 2 || !validAzureSecretName(p[0]) {
		return bad("the secret name is not 1 to 127 letters, digits and hyphens")
	}
	r.name = p[0]
	if len(p) == 2 {
		if !validAzureVersion(p[1]) {
			return bad("the version is not 32 hexadecimal characters")
		}
		r.version = strings.ToLower(p[1])
	}
	return r, nil
}

func validAzureVaultName(n string) bool {
	if len(n) < 3 || len(n) > 24 || !isLetter(n[0]) || n[len(n)-1] == '-' || strings.Contains(n, "--") {
		return false
	}
	return allBytes(n, func(c byte) bool { return isLetter(c) || isDigit(c) || c == '-' })
}

func validAzureSecretName(n string) bool {
	return n != "" && len(n) <= 127 && allBytes(n, func(c byte) bool { return isLetter(c) || isDigit(c) || c == '-' })
}

func validAzureVersion(v string) bool {
	return len(v) == 32 && allBytes(v, func(c byte) bool { return isDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' })
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
func isDigit(c byte) bool  { return '0' <= c && c <= '9' }

func allBytes(s string, ok func(byte) bool) bool {
	for _, c := range []byte(s) {
		if !ok(c) {
			return false
		}
	}
	return true
}

// Resolve implements [Source] for "azure-kv:" references.
func (a *AzureKeyVault) Resolve(ctx context.Context, ref string) (Value, error) {
	if err := ctx.Err(); err != nil {
		return Value{}, err
	}
	r, err := a.parseRef(ref)
	if err != nil {
		return Value{}, err
	}
	read := func(ctx context.Context) (string, error) { return a.get(ctx, r) }
	return remoteValue(ctx, a.cache, r.location(), read, r.key, "azure-kv: secret "+r.location(), r.String())
}

// client returns the client for vault, signing in the host's identity first if needed.
func (a *AzureKeyVault) client(ctx context.Context, vault string) (*azsecrets.Client, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if c := a.clients[vault]; c != nil {
		return c, nil
	}
	if a.cred == nil {
		cred, err := a.credential(ctx)
		if err != nil {
			return nil, err
		}
		a.cred = cred
	}
	c, err := azsecrets.NewClient(vault, a.cred, &azsecrets.ClientOptions{ClientOptions: a.clientOptions()})
	if err != nil {
		return nil, fmt.Errorf("azure-kv: %s: %w", vault, err)
	}
	a.clients[vault] = c
	return c, nil
}

func (a *AzureKeyVault) clientOptions() azcore.ClientOptions {
	o := azcore.ClientOptions{Transport: a.cfg.Transport}
	o.Retry.MaxRetries = 1
	if a.cfg.AuthorityHost != "" {
		o.Cloud = cloud.AzurePublic
		o.Cloud.ActiveDirectoryAuthorityHost = a.cfg.AuthorityHost
	}
	return o
}

// forget drops the credential and clients, so the next use signs in again (with the client
// secret read again).
func (a *AzureKeyVault) forget() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.cred = nil
	clear(a.clients)
}

func (a *AzureKeyVault) credential(ctx context.Context) (azcore.TokenCredential, error) {
	co := a.clientOptions()
	switch {
	case a.cfg.ClientSecret != "":
		s, err := a.cfg.Secrets.Resolve(ctx, a.cfg.ClientSecret)
		if err != nil {
			return nil, fmt.Errorf("azure-kv: the client_secret reference of azure: in airlock.yaml: %w", err)
		}
		cred, err := azidentity.NewClientSecretCredential(a.cfg.TenantID, a.cfg.ClientID, s.Expose(), &azidentity.ClientSecretCredentialOptions{ClientOptions: co})
		if err != nil {
			return nil, errors.New("azure-kv: the tenant_id or client_id in azure: of airlock.yaml is not valid: use the directory (tenant) ID and application (client) ID the portal shows")
		}
		return cred, nil
	case a.cfg.ManagedIdentity:
		o := &azidentity.ManagedIdentityCredentialOptions{ClientOptions: co}
		if a.cfg.ClientID != "" {
			o.ID = azidentity.ClientID(a.cfg.ClientID)
		}
		cred, err := azidentity.NewManagedIdentityCredential(o)
		if err != nil {
			return nil, fmt.Errorf("azure-kv: managed identity: %w", ErrDenied)
		}
		return cred, nil
	}
	cred, err := azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{ClientOptions: co, TenantID: a.cfg.TenantID})
	if err != nil {
		return nil, fmt.Errorf("azure-kv: no Azure credentials: set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET, run with a managed identity, or configure azure: in airlock.yaml: %w", ErrDenied)
	}
	return cred, nil
}

func (a *AzureKeyVault) get(ctx context.Context, r azureRef) (string, error) {
	var resp azsecrets.GetSecretResponse
	for attempt := 0; ; attempt++ {
		c, err := a.client(ctx, r.vault)
		if err != nil {
			return "", err
		}
		resp, err = c.GetSecret(ctx, r.name, r.version, nil)
		var re *azcore.ResponseError
		if err != nil && attempt == 0 && errors.As(err, &re) && re.StatusCode == http.StatusUnauthorized {
			// The vault refused a token the credential still caches (revoked early): sign in
			// again, once.
			a.forget()
			continue
		}
		if err != nil {
			return "", a.getError(ctx, r, err)
		}
		break
	}
	if resp.Value == nil {
		return "", fmt.Errorf("azure-kv: secret %s has no value: set one (reference %s): %w", r.location(), r, ErrNotFound)
	}
	return *resp.Value, nil
}

// getError turns an error of Get Secret into one that says what to do. It never repeats what
// the server or Entra ID said, which could carry anything.
func (a *AzureKeyVault) getError(ctx context.Context, r azureRef, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	var authErr *azidentity.AuthenticationFailedError
	if errors.As(err, &authErr) {
		a.forget() // a rotated client secret is read at the next use
		if authErr.RawResponse == nil {
			return fmt.Errorf("azure-kv: reading %s: cannot reach Entra ID to sign in: check authority_host in azure: of airlock.yaml (or AZURE_AUTHORITY_HOST) and the network (reference %s)", r.location(), r)
		}
		return fmt.Errorf("azure-kv: reading %s: Entra ID refused the host's credentials (HTTP status %d): %s (reference %s): %w", r.location(), authErr.RawResponse.StatusCode, a.credentialHint(), r, ErrDenied)
	}
	// azidentity's "credential unavailable" type is unexported; its messages name the credential.
	if msg := err.Error(); strings.Contains(msg, "DefaultAzureCredential") || strings.Contains(msg, "ManagedIdentityCredential") {
		a.forget()
		return fmt.Errorf("azure-kv: reading %s: the host has no usable Azure identity: %s (reference %s): %w", r.location(), a.credentialHint(), r, ErrDenied)
	}
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		return fmt.Errorf("azure-kv: reading %s: cannot reach the vault: check the vault name, its firewall and the network (reference %s)", r.location(), r)
	}
	inner := azureInnerCode(re)
	switch {
	case re.ErrorCode == "SecretNotFound" || re.StatusCode == http.StatusNotFound:
		what := "there is no secret " + r.name + " in vault " + r.vault
		if r.version != "" {
			what = "secret " + r.name + " in vault " + r.vault + " has no version " + r.version
		}
		return fmt.Errorf("azure-kv: %s: create it (az keyvault secret set --vault-name %s --name %s --file …) or fix the reference %s: %w",
			what, vaultName(r.vault), r.name, r, ErrNotFound)
	case inner == "SecretDisabled":
		return fmt.Errorf("azure-kv: secret %s is disabled: enable it (az keyvault secret set-attributes --vault-name %s --name %s --enabled true) or point the reference %s at another version: %w",
			r.location(), vaultName(r.vault), r.name, r, ErrNotFound)
	case re.StatusCode == http.StatusForbidden:
		return fmt.Errorf("azure-kv: permission denied reading %s: assign the host's identity the role \"Key Vault Secrets User\" on the vault or the secret (RBAC), or give it the Get secret permission in the vault's access policies; check the vault's firewall allows the host (reference %s): %w",
			r.location(), r, ErrDenied)
	case re.StatusCode == http.StatusUnauthorized:
		return fmt.Errorf("azure-kv: the vault refused the host's Entra ID token reading %s: check the identity belongs to the vault's tenant (reference %s): %w", r.location(), r, ErrDenied)
	case re.StatusCode == http.StatusBadRequest:
		return fmt.Errorf("azure-kv: the vault refused the request for %s as invalid: %s: %w", r.location(), azureRefHelp, ErrBadReference)
	}
	return fmt.Errorf("azure-kv: reading %s failed with HTTP status %d: check the vault (reference %s)", r.location(), re.StatusCode, r)
}

func (a *AzureKeyVault) credentialHint() string {
	switch {
	case a.cfg.ClientSecret != "":
		return fmt.Sprintf("check the client secret %s is current and belongs to application %s in tenant %s", Display(a.cfg.ClientSecret), a.cfg.ClientID, a.cfg.TenantID)
	case a.cfg.ManagedIdentity:
		return "check the managed identity is assigned to this VM, App Service or pod"
	}
	return "set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET, run with a managed identity, or configure azure: in airlock.yaml"
}

// azureInnerCode is error.innererror.code of a Key Vault error body ("SecretDisabled",
// "ForbiddenByRbac", "AccessDenied").
func azureInnerCode(re *azcore.ResponseError) string {
	if re.RawResponse == nil || re.RawResponse.Body == nil {
		return ""
	}
	b, err := io.ReadAll(io.LimitReader(re.RawResponse.Body, 64<<10))
	if err != nil {
		return ""
	}
	var body struct {
		Error struct {
			InnerError struct {
				Code string `json:"code"`
			} `json:"innererror"`
		} `json:"error"`
	}
	_ = json.Unmarshal(b, &body)
	return body.Error.InnerError.Code
}

func vaultName(vaultURL string) string {
	name, _, _ := strings.Cut(strings.TrimPrefix(vaultURL, "https://"), ".")
	return name
}
