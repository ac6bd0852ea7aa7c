package secret

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	vault "github.com/hashicorp/vault/api"
)

// DefaultVaultCacheTTL is how long [Vault] reuses a secret it read, when
// [VaultConfig.CacheTTL] is zero.
const DefaultVaultCacheTTL = 30 * time.Second

// VaultConfig configures a [Vault] source. The zero value talks to VAULT_ADDR with VAULT_TOKEN.
type VaultConfig struct {
	// Address is the server's URL, such as "https://vault.example.com:8200".
	// Empty means the VAULT_ADDR environment variable (and the client's default after that).
	Address string

	// Namespace is the Vault Enterprise / OpenBao namespace. Empty means none.
	Namespace string

	// Token is a secret reference ("env:VAULT_TOKEN", "file:/run/secrets/vault-token") to the
	// token used when AppRole is nil. Empty means the VAULT_TOKEN environment variable.
	Token string

	// AppRole, when non-nil, logs in with AppRole instead of using a token.
	AppRole *AppRole

	// Secrets resolves the references in Token and AppRole. Nil means env: and file: references
	// (with absolute paths) only.
	Secrets Source

	// CacheTTL is how long a secret read from the server is reused. Zero means
	// [DefaultVaultCacheTTL]; a negative value disables the cache.
	CacheTTL time.Duration

	// HTTPClient sends the requests. Nil means the Vault client's default, which honours
	// VAULT_CACERT, VAULT_CLIENT_CERT and the other VAULT_* TLS variables.
	HTTPClient *http.Client

	// Now is the clock for the cache and token lifetimes. Nil means time.Now.
	Now func() time.Time
}

// AppRole holds the AppRole credentials, as secret references.
type AppRole struct {
	// RoleID and SecretID are secret references such as "file:/run/secrets/vault-role-id".
	RoleID, SecretID string
	// Mount is the path the AppRole auth method is mounted at. Empty means "approle".
	Mount string
}

// Vault resolves references to HashiCorp Vault or OpenBao KV version 2 secrets:
//
//	vault:MOUNT/PATH#FIELD      the latest version of the field
//	vault:MOUNT/PATH#FIELD@N    version N (a positive integer)
//
// MOUNT is the first path segment (the KV engine's mount, such as "secret"); PATH is the rest.
// "vault:secret/slack/prod#bot_token" reads GET /v1/secret/data/slack/prod and returns the
// string field bot_token. Reads are cached for [VaultConfig.CacheTTL]. With AppRole, Vault
// logs in at auth/MOUNT/login, and logs in again when the token's lease runs out or the server
// answers 403.
//
// Errors name the reference and say what to do; they never contain a value, a token or a
// secret_id. A Vault is safe for concurrent use.
type Vault struct {
	client  *vault.Client
	login   *vault.Client // same server, never carries a token
	approle *AppRole
	tokRef  string
	secrets Source
	ttl     time.Duration
	now     func() time.Time

	loginMu sync.Mutex // one login at a time
	mu      sync.Mutex
	token   string    // current token ("" before the first login)
	expires time.Time // zero: does not expire
	cache   map[string]vaultEntry
}

type vaultEntry struct {
	data    map[string]any
	expires time.Time
}

const maxVaultCache = 1024

// NewVault returns a Vault source for cfg. It does not contact the server; the first
// [Vault.Resolve] does.
func NewVault(cfg *VaultConfig) (*Vault, error) {
	var c VaultConfig
	if cfg != nil {
		c = *cfg
	}
	vc := vault.DefaultConfig()
	if vc.Error != nil {
		return nil, fmt.Errorf("vault: reading the VAULT_* environment variables: %w", vc.Error)
	}
	if c.Address != "" {
		vc.Address = c.Address
	}
	if c.HTTPClient != nil {
		vc.HttpClient = c.HTTPClient
	}
	vc.MaxRetries = 1
	vc.MinRetryWait, vc.MaxRetryWait = 250*time.Millisecond, time.Second
	client, err := vault.NewClient(vc)
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	client.ClearToken() // the token comes from our configuration, never implicitly
	if c.Namespace != "" {
		client.SetNamespace(c.Namespace)
	}
	login, err := client.CloneWithHeaders()
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	login.ClearToken()
	v := &Vault{
		client:  client,
		login:   login,
		tokRef:  c.Token,
		secrets: c.Secrets,
		ttl:     c.CacheTTL,
		now:     c.Now,
		cache:   map[string]vaultEntry{},
	}
	if c.AppRole != nil {
		ar := *c.AppRole
		if ar.Mount == "" {
			ar.Mount = "approle"
		}
		if ar.RoleID == "" || ar.SecretID == "" {
			return nil, errors.New("vault: AppRole needs both a role_id and a secret_id reference (for example file:/run/secrets/vault-role-id)")
		}
		v.approle = &ar
	}
	if v.tokRef == "" {
		v.tokRef = "env:" + vault.EnvVaultToken
	}
	if v.secrets == nil {
		v.secrets = Mux{"env": Env{}, "file": File{}}
	}
	if v.ttl == 0 {
		v.ttl = DefaultVaultCacheTTL
	}
	if v.now == nil {
		v.now = time.Now
	}
	return v, nil
}

// vaultRef is a parsed "vault:" reference.
type vaultRef struct {
	mount, path, field string
	version            int // 0: latest
}

func (r vaultRef) String() string {
	s := "vault:" + r.mount + "/" + r.path + "#" + r.field
	if r.version > 0 {
		s += "@" + strconv.Itoa(r.version)
	}
	return s
}

func (r vaultRef) location() string {
	s := r.mount + "/" + r.path
	if r.version > 0 {
		s += " version " + strconv.Itoa(r.version)
	}
	return s
}

const vaultRefHelp = "write vault:MOUNT/PATH#FIELD or vault:MOUNT/PATH#FIELD@VERSION, for example vault:secret/slack#bot_token"

func parseVaultRef(ref string) (vaultRef, error) {
	scheme, rest, ok := splitRef(ref)
	if !ok || scheme != "vault" {
		return vaultRef{}, errors.New(`vault source: the reference does not start with "vault:": ` + vaultRefHelp)
	}
	loc, field, ok := strings.Cut(rest, "#")
	if !ok || field == "" {
		return vaultRef{}, errors.New("vault source: the reference names no field after '#': " + vaultRefHelp)
	}
	var r vaultRef
	if i := strings.LastIndexByte(field, '@'); i >= 0 {
		n, err := strconv.Atoi(field[i+1:])
		if err != nil || n < 1 || field[i+1] == '+' {
			return vaultRef{}, errors.New("vault source: the version after '@' is not a positive integer: " + vaultRefHelp)
		}
		r.version, field = n, field[:i]
	}
	mount, path, ok := strings.Cut(loc, "/")
	if !ok || !validVaultPath(mount) || !validVaultPath(path) || !validVaultField(field) {
		// Do not echo the reference: it may be a secret pasted by mistake.
		return vaultRef{}, errors.New("vault source: the reference is not a valid KV v2 location: " + vaultRefHelp)
	}
	r.mount, r.path, r.field = mount, path, field
	return r, nil
}

func validVaultPath(p string) bool {
	if p == "" || len(p) > 512 {
		return false
	}
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
	}
	for _, c := range []byte(p) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '_' || c == '-' || c == '.' || c == '/' || c == '+' || c == '=' || c == '@' || c == ':':
		default:
			return false
		}
	}
	return true
}

func validVaultField(f string) bool {
	if f == "" || len(f) > 256 {
		return false
	}
	for _, c := range []byte(f) {
		if c < 0x20 || c == 0x7f || c == '#' {
			return false
		}
	}
	return true
}

// Resolve implements [Source] for references "vault:MOUNT/PATH#FIELD[@VERSION]".
func (v *Vault) Resolve(ctx context.Context, ref string) (Value, error) {
	if err := ctx.Err(); err != nil {
		return Value{}, err
	}
	r, err := parseVaultRef(ref)
	if err != nil {
		return Value{}, err
	}
	data, err := v.read(ctx, r)
	if err != nil {
		return Value{}, err
	}
	raw, ok := data[r.field]
	if !ok {
		names := make([]string, 0, len(data))
		for k := range data {
			names = append(names, k)
		}
		slices.Sort(names)
		return Value{}, fmt.Errorf("vault: secret %s has no field %q (it has %s): fix the field after '#' in %s or add the field in Vault: %w",
			r.location(), r.field, fieldList(names), r, ErrNotFound)
	}
	s, ok := raw.(string)
	if !ok {
		return Value{}, fmt.Errorf("vault: field %q of secret %s is %s, not a string: store the secret as a string value (reference %s)", r.field, r.location(), jsonKind(raw), r)
	}
	if s == "" {
		return Value{}, fmt.Errorf("vault: field %q of secret %s is empty: write the secret into it (reference %s): %w", r.field, r.location(), r, ErrNotFound)
	}
	return New(s), nil
}

func fieldList(names []string) string {
	if len(names) == 0 {
		return "no fields"
	}
	if len(names) > 20 {
		names = append(names[:20:20], "…")
	}
	return "fields " + strings.Join(names, ", ")
}

func jsonKind(x any) string {
	switch x.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case json.Number, float64, int, int64:
		return "a number"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return "not a string"
}

// read returns the data map of the secret at r, from the cache or the server.
func (v *Vault) read(ctx context.Context, r vaultRef) (map[string]any, error) {
	key := r.mount + "\x00" + r.path + "\x00" + strconv.Itoa(r.version)
	now := v.now()
	if v.ttl > 0 && !uncached(ctx) {
		v.mu.Lock()
		e, ok := v.cache[key]
		v.mu.Unlock()
		if ok && now.Before(e.expires) {
			return e.data, nil
		}
	}
	data, err := v.fetch(ctx, r)
	if err != nil {
		return nil, err
	}
	if v.ttl > 0 {
		v.mu.Lock()
		if len(v.cache) >= maxVaultCache {
			clear(v.cache)
		}
		v.cache[key] = vaultEntry{data: data, expires: now.Add(v.ttl)}
		v.mu.Unlock()
	}
	return data, nil
}

func (v *Vault) fetch(ctx context.Context, r vaultRef) (map[string]any, error) {
	for attempt := 0; ; attempt++ {
		tok, err := v.ensureToken(ctx, "")
		if err != nil {
			return nil, err
		}
		kv := v.client.KVv2(r.mount)
		var s *vault.KVSecret
		if r.version > 0 {
			s, err = kv.GetVersion(ctx, r.path, r.version)
		} else {
			s, err = kv.Get(ctx, r.path)
		}
		var re *vault.ResponseError
		switch {
		case err == nil:
			if s == nil || s.Data == nil {
				return nil, fmt.Errorf("vault: %s is deleted or destroyed: undelete it, write a new version or change the reference %s: %w", r.location(), r, ErrNotFound)
			}
			return s.Data, nil
		case errors.Is(err, vault.ErrSecretNotFound):
			return nil, fmt.Errorf("vault: there is no secret at %s (KV v2 mount %q): check the mount and path in %s: %w", r.location(), r.mount, r, ErrNotFound)
		case errors.As(err, &re) && re.StatusCode == http.StatusForbidden:
			if attempt == 0 {
				// The token may have expired or been revoked: log in again (AppRole) or re-read
				// the token reference (a token file an agent renews), and retry once if that
				// gave a different token.
				fresh, err := v.ensureToken(ctx, tok)
				if err != nil {
					return nil, err
				}
				if fresh != tok {
					continue
				}
			}
			return nil, fmt.Errorf("vault: permission denied reading %s: give the token's policy the \"read\" capability on %s/data/%s, or check the token is valid (reference %s)",
				r.location(), r.mount, r.path, r)
		case errors.As(err, &re):
			return nil, fmt.Errorf("vault: reading %s failed with HTTP status %d: check the server (reference %s)", r.location(), re.StatusCode, r)
		default:
			if cerr := ctx.Err(); cerr != nil {
				return nil, cerr
			}
			return nil, fmt.Errorf("vault: reading %s: cannot reach the server at %s: check VAULT_ADDR and the network (reference %s)", r.location(), v.client.Address(), r)
		}
	}
}

// ensureToken returns a usable token, logging in with AppRole if there is none yet, it has
// expired, or it equals stale (a token the server just refused).
func (v *Vault) ensureToken(ctx context.Context, stale string) (string, error) {
	v.mu.Lock()
	tok, exp := v.token, v.expires
	v.mu.Unlock()
	if tok != "" && tok != stale && (exp.IsZero() || v.now().Before(exp)) {
		return tok, nil
	}
	v.loginMu.Lock()
	defer v.loginMu.Unlock()
	v.mu.Lock()
	tok, exp = v.token, v.expires
	v.mu.Unlock()
	if tok != "" && tok != stale && (exp.IsZero() || v.now().Before(exp)) {
		return tok, nil // another caller logged in meanwhile
	}
	var err error
	if v.approle == nil {
		tok, exp, err = v.staticToken(ctx)
	} else {
		tok, exp, err = v.appRoleLogin(ctx)
	}
	if err != nil {
		return "", err
	}
	v.mu.Lock()
	v.token, v.expires = tok, exp
	v.mu.Unlock()
	v.client.SetToken(tok)
	return tok, nil
}

func (v *Vault) staticToken(ctx context.Context) (string, time.Time, error) {
	t, err := v.secrets.Resolve(ctx, v.tokRef)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("vault: no token: set VAULT_TOKEN, configure a token reference, or use AppRole: %w", err)
	}
	return t.Expose(), time.Time{}, nil
}

func (v *Vault) appRoleLogin(ctx context.Context) (string, time.Time, error) {
	ar := v.approle
	roleID, err := v.secrets.Resolve(ctx, ar.RoleID)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("vault: AppRole role_id: %w", err)
	}
	secretID, err := v.secrets.Resolve(ctx, ar.SecretID)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("vault: AppRole secret_id: %w", err)
	}
	path := "auth/" + ar.Mount + "/login"
	start := v.now()
	s, err := v.login.Logical().WriteWithContext(ctx, path, map[string]any{
		"role_id":   roleID.Expose(),
		"secret_id": secretID.Expose(),
	})
	var re *vault.ResponseError
	switch {
	case errors.As(err, &re):
		return "", time.Time{}, fmt.Errorf("vault: AppRole login at %s was refused with HTTP status %d: check the role_id and secret_id references and that the secret_id has not expired or run out of uses", path, re.StatusCode)
	case err != nil:
		if cerr := ctx.Err(); cerr != nil {
			return "", time.Time{}, cerr
		}
		return "", time.Time{}, fmt.Errorf("vault: AppRole login at %s: cannot reach the server at %s: check VAULT_ADDR and the network", path, v.login.Address())
	case s == nil || s.Auth == nil || s.Auth.ClientToken == "":
		return "", time.Time{}, fmt.Errorf("vault: AppRole login at %s returned no token: check the auth method mounted there is AppRole", path)
	}
	var exp time.Time
	if d := s.Auth.LeaseDuration; d > 0 {
		lease := time.Duration(d) * time.Second
		margin := min(lease/10, 30*time.Second)
		exp = start.Add(lease - margin)
	}
	return s.Auth.ClientToken, exp, nil
}
