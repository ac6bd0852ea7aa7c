// Package manifest parses and checks connector manifests and the grants admins write for them.
//
// A manifest (manifests/FORMAT.md) says what a connector offers — its tools, with JSON Schemas for
// their arguments and results — and what it asks for: hosts, credential slots, config keys and
// resource limits. A grant is an admin's answer: the subset the connector may actually use.
// host/internal/grant intersects the two.
//
// Parsing is strict because manifests come from third parties. [Parse] refuses files over
// [MaxFileSize], YAML anchors and aliases (no billion laughs), duplicate keys, several documents
// and unknown keys; validates against manifests.Schema; checks what a schema cannot (unique
// names, credential hosts covered by network rules, the ABI version, a local module path); and
// compiles every tool's schemas. Every problem is reported with its file, line and path, in terms
// of what to change:
//
//	m, err := manifest.Load("manifests/slack.yaml")
//	if err != nil {
//		// slack.yaml:12: tools[1].scopes: expected a list of strings, got a string
//		// slack.yaml:20: tools[2]: unknown key "scope" (did you mean "scopes"?)
//		log.Fatal(err)
//	}
//	wasm, _ := os.ReadFile(m.ModulePath())
//	if err := manifest.VerifyModule(m, wasm); err != nil {
//		log.Fatal(err) // the digest does not match: refuse to load
//	}
//	g, err := manifest.LoadGrant("grants/slack.yaml")
//
// Errors are an *[Error] for one problem and an [ErrorList] for several; errors.As finds an
// *Error in both.
//
// A parsed [Manifest] and [Grant] are plain values: safe for concurrent reads, not for concurrent
// modification.
package manifest

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/host/internal/validate"
)

// Manifest is a parsed connector manifest. Parse fills every default, so the fields hold the
// effective values (Limits, Rule fields, Tool.Export, annotations).
type Manifest struct {
	// ABI is the internal/abi.Version the module was built for.
	ABI         int    `json:"abi"`
	Name        string `json:"name"`
	Version     string `json:"version"`
	Publisher   string `json:"publisher"`
	Description string `json:"description"`
	Module      Module `json:"module"`
	// Limits holds the manifest's limits with defaults applied.
	Limits      Limits       `json:"limits"`
	Credentials []Credential `json:"credentials,omitempty"`
	Network     []Rule       `json:"network,omitempty"`
	Config      []ConfigKey  `json:"config,omitempty"`
	// Database declares the named, parameterised statements the connector may run through
	// airlock_db; nil when it runs none.
	Database *Database `json:"database,omitempty"`
	Tools    []Tool    `json:"tools"`
	// Dir is the directory of the manifest file; Module.Path is relative to it. Parse sets it to
	// the directory of its filename argument.
	Dir string `json:"-"`
}

// Module names the WebAssembly module and pins its digest.
type Module struct {
	// Path is relative to the manifest's directory, slash-separated, never absolute or "..".
	Path string `json:"path"`
	// SHA256 is the module's digest as 64 lowercase hex digits; "" means unpinned, which
	// VerifyModule refuses.
	SHA256 string `json:"sha256,omitempty"`
}

// Tool is a tool the connector offers.
type Tool struct {
	Name string `json:"name"`
	// Export is the WebAssembly export implementing the tool (default: Name, or "run" for a
	// tool with Function set).
	Export string `json:"export"`
	// Function, if set, names a database function (Manifest.Database) this tool runs: the host
	// hands the plugin {"function": Function, "params": [...]} built from the arguments.
	Function    string `json:"function,omitempty"`
	Description string `json:"description"`
	// Scopes are the OAuth scopes the tool uses; it is callable only when all are granted.
	Scopes []string `json:"scopes,omitempty"`
	// Uses is what the tool's code may use while it runs, as the manifest writes it (nil lists
	// take their defaults; see Uses and Binding).
	Uses        Uses        `json:"uses,omitzero"`
	Annotations Annotations `json:"annotations"`
	// InputSchema is the JSON Schema of the arguments (always an object schema).
	InputSchema json.RawMessage `json:"input_schema"`
	// OutputSchema is the JSON Schema of the result, or nil.
	OutputSchema json.RawMessage `json:"output_schema,omitempty"`
	// Examples are argument objects for the tool, each valid against InputSchema (checked by
	// Parse): 'airlock plugin test' calls the tool once with each. Optional.
	Examples []json.RawMessage `json:"examples,omitempty"`

	input, output *validate.Schema // compiled by Parse
	bound         Uses             // Uses with the defaults applied, by Parse
}

// UnmarshalJSON applies the annotation defaults when the annotations key is absent.
func (t *Tool) UnmarshalJSON(data []byte) error {
	type plain Tool
	p := plain{Annotations: Annotations{OpenWorld: true}}
	if err := json.Unmarshal(data, &p); err != nil {
		return err
	}
	*t = Tool(p)
	return nil
}

// Annotations are hints about a tool's behaviour. All default to false except OpenWorld (true).
type Annotations struct {
	ReadOnly          bool `json:"read_only"`
	Destructive       bool `json:"destructive"`
	Idempotent        bool `json:"idempotent"`
	OpenWorld         bool `json:"open_world"`
	NeedsConfirmation bool `json:"needs_confirmation"`
	// Deferrable says a call may be accepted now and run later from the durable queue, at the
	// upstream's pace (CallRequest.Defer). Default false.
	Deferrable bool `json:"deferrable"`
}

// UnmarshalJSON applies the defaults (OpenWorld true) before decoding.
func (a *Annotations) UnmarshalJSON(data []byte) error {
	type plain Annotations
	p := plain{OpenWorld: true}
	if err := json.Unmarshal(data, &p); err != nil {
		return err
	}
	*a = Annotations(p)
	return nil
}

// Limits bound one tool call. In a manifest, zero fields mean the defaults below (Parse applies
// them); in a grant, zero means "not overridden".
type Limits struct {
	// MemoryMB caps guest linear memory, in MiB (default 64, 1..1024).
	MemoryMB int `json:"memory_mb,omitempty"`
	// TimeoutMS bounds a whole tool call, in milliseconds (default 10000, 1..600000).
	TimeoutMS int `json:"timeout_ms,omitempty"`
	// MaxInputBytes bounds the tool arguments, in bytes (default 1 MiB, at most 16 MiB).
	MaxInputBytes int `json:"max_input_bytes,omitempty"`
	// MaxOutputBytes bounds the tool result, in bytes (default 1 MiB, at most 16 MiB).
	MaxOutputBytes int `json:"max_output_bytes,omitempty"`
	// MaxResponseBytes bounds one upstream response body, in bytes (default 4 MiB, at most 64 MiB).
	MaxResponseBytes int `json:"max_response_bytes,omitempty"`
	// MaxRequests bounds outbound requests per tool call (default 32, 1..1000).
	MaxRequests int `json:"max_requests,omitempty"`
}

// DefaultLimits are the limits of a manifest that sets none.
var DefaultLimits = Limits{
	MemoryMB:         64,
	TimeoutMS:        10000,
	MaxInputBytes:    1 << 20,
	MaxOutputBytes:   1 << 20,
	MaxResponseBytes: 4 << 20,
	MaxRequests:      32,
}

// WithDefaults returns l with every zero field set from DefaultLimits.
func (l Limits) WithDefaults() Limits {
	set := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	set(&l.MemoryMB, DefaultLimits.MemoryMB)
	set(&l.TimeoutMS, DefaultLimits.TimeoutMS)
	set(&l.MaxInputBytes, DefaultLimits.MaxInputBytes)
	set(&l.MaxOutputBytes, DefaultLimits.MaxOutputBytes)
	set(&l.MaxResponseBytes, DefaultLimits.MaxResponseBytes)
	set(&l.MaxRequests, DefaultLimits.MaxRequests)
	return l
}

// Timeout returns TimeoutMS as a duration.
func (l Limits) Timeout() time.Duration { return time.Duration(l.TimeoutMS) * time.Millisecond }

// Credential kinds. The first three inject a static secret the grant names; the OAuth kinds
// inject an access token the host obtains and refreshes (host/internal/credential).
const (
	KindBearer                  = "bearer"
	KindAPIKey                  = "api_key"
	KindBasic                   = "basic"
	KindOAuth2ClientCredentials = "oauth2_client_credentials"
	KindOAuth2AuthorizationCode = "oauth2_authorization_code"
	KindOAuth2JWTBearer         = "oauth2_jwt_bearer"
)

// IsOAuth reports whether kind is one of the OAuth 2.0 kinds, whose slot has an OAuth section.
func IsOAuth(kind string) bool {
	return kind == KindOAuth2ClientCredentials || kind == KindOAuth2AuthorizationCode || kind == KindOAuth2JWTBearer
}

// OAuth describes how the host obtains tokens for an OAuth credential slot.
type OAuth struct {
	// TokenURL is the token endpoint (https).
	TokenURL string `json:"token_url"`
	// AuthorizeURL is the authorization endpoint; only for KindOAuth2AuthorizationCode, where it
	// is required.
	AuthorizeURL string `json:"authorize_url,omitempty"`
	// RevocationURL is the token revocation endpoint (RFC 7009); only for
	// KindOAuth2AuthorizationCode, optional. With it, disconnecting an account revokes its
	// tokens at the provider, not only in the host.
	RevocationURL string `json:"revocation_url,omitempty"`
	// Scopes are requested with every token.
	Scopes []string `json:"scopes,omitempty"`
	// Audience is the aud claim of a JWT bearer assertion (default: TokenURL's origin).
	Audience string `json:"audience,omitempty"`
	// AssumedLifetimeS is the lifetime, in seconds, given to a token whose response has no
	// expires_in (default 3600); such a token is never taken as everlasting.
	AssumedLifetimeS int `json:"assumed_lifetime_s,omitempty"`
	// RefreshMarginS is how long before expiry, in seconds, a token is refreshed (default 60).
	RefreshMarginS int `json:"refresh_margin_s,omitempty"`
	// InstanceURL says the token response carries an instance_url (Salesforce): it is kept as
	// connection metadata and becomes the only host the slot's token may be sent to.
	InstanceURL bool `json:"instance_url,omitempty"`
}

// AssumedLifetime returns AssumedLifetimeS as a duration, with its default.
func (o *OAuth) AssumedLifetime() time.Duration {
	if o.AssumedLifetimeS == 0 {
		return time.Hour
	}
	return time.Duration(o.AssumedLifetimeS) * time.Second
}

// RefreshMargin returns RefreshMarginS as a duration, with its default.
func (o *OAuth) RefreshMargin() time.Duration {
	if o.RefreshMarginS == 0 {
		return time.Minute
	}
	return time.Duration(o.RefreshMarginS) * time.Second
}

// Credential is a credential slot: how a secret is injected and where it may go. The grant says
// which secret fills it; the plugin only ever names the slot.
type Credential struct {
	Name string `json:"name"`
	// Kind is KindBearer, KindAPIKey or KindBasic.
	Kind        string `json:"kind"`
	Description string `json:"description,omitempty"`
	// In is "header" or "query" for KindAPIKey (default "header"), "" otherwise.
	In string `json:"in,omitempty"`
	// Param is the header or query parameter name for KindAPIKey, "" otherwise.
	Param string `json:"param,omitempty"`
	// Hosts are the only hosts the credential may be sent to (see Rule.MatchHost for wildcards).
	Hosts []string `json:"hosts"`
	// OAuth is set for the OAuth kinds (IsOAuth) and nil otherwise.
	OAuth *OAuth `json:"oauth,omitempty"`
}

// Rule is one destination the connector may reach. Parse fills the defaults.
type Rule struct {
	// Scheme is "https" (default) or "http".
	Scheme string `json:"scheme"`
	// Host is a lowercase DNS name, "*.example.com" (any subdomain, not example.com itself) or an
	// IP literal.
	Host string `json:"host"`
	// Port defaults to 443 for https and 80 for http.
	Port int `json:"port"`
	// PathPrefix is the prefix of allowed request paths (default "/").
	PathPrefix string `json:"path_prefix"`
	// Methods are the allowed methods in upper case (default [GET]).
	Methods []string `json:"methods"`
	// RateLimit, if set, bounds the requests matching this rule, per connection (a bucket per
	// connector, rule and subject), so per-method API tiers get separate buckets.
	RateLimit *RateLimit `json:"rate_limit,omitempty"`
}

// RateLimit is a token-bucket rate.
type RateLimit struct {
	// PerSecond is the sustained rate (e.g. 0.5 for one request every two seconds).
	PerSecond float64 `json:"per_second"`
	// Burst is how many requests may go at once after an idle period (default ceil(PerSecond),
	// at least 1).
	Burst int `json:"burst,omitempty"`
}

// Database declares the database functions of a connector. Agents never send SQL: a tool runs
// one of these statements, with its arguments bound as parameters.
type Database struct {
	Functions []DBFunction `json:"functions"`
}

// DBFunction is one named, parameterised SQL statement an admin reviews when granting.
type DBFunction struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// SQL is the statement, with numbered parameters $1, $2 … in the order of Params.
	SQL string `json:"sql,omitempty"`
	// Redis, in place of SQL, is the function's one Redis command (see RedisCommand).
	Redis *RedisCommand `json:"redis,omitempty"`
	// Mongo is the MongoDB operation, instead of SQL (see MongoOp).
	Mongo  *MongoOp  `json:"mongo,omitempty"`
	Params []DBParam `json:"params,omitempty"`
	// ReadOnly functions run in a read-only transaction (default true). A write function runs
	// only when the grant allows writes, and its tools need a human's approval.
	ReadOnly bool `json:"read_only"`
	// MaxRows caps the rows returned (default 100, 1..10000); MaxBytes caps their JSON size
	// (default 1 MiB); TimeoutMS bounds the statement (default 5000, 1..60000).
	MaxRows   int `json:"max_rows"`
	MaxBytes  int `json:"max_bytes"`
	TimeoutMS int `json:"timeout_ms"`

	params []*validate.Schema // compiled by Parse, one per Params entry (nil: no schema)
}

// UnmarshalJSON applies the defaults of absent fields.
func (f *DBFunction) UnmarshalJSON(data []byte) error {
	type plain DBFunction
	p := plain{ReadOnly: true}
	if err := json.Unmarshal(data, &p); err != nil {
		return err
	}
	*f = DBFunction(p)
	if f.MaxRows == 0 {
		f.MaxRows = 100
	}
	if f.MaxBytes == 0 {
		f.MaxBytes = 1 << 20
	}
	if f.TimeoutMS == 0 {
		f.TimeoutMS = 5000
	}
	return nil
}

// Timeout returns TimeoutMS as a duration.
func (f *DBFunction) Timeout() time.Duration { return time.Duration(f.TimeoutMS) * time.Millisecond }

// DBParam is a parameter of a database function: its name (the tool argument that fills it)
// and the JSON Schema its value must satisfy.
type DBParam struct {
	Name   string          `json:"name"`
	Schema json.RawMessage `json:"schema,omitempty"`
}

// ValidateParam checks value (JSON) against parameter i's schema. The error names the
// parameter and is safe to show to the agent.
func (f *DBFunction) ValidateParam(i int, value []byte) error {
	if i < 0 || i >= len(f.Params) {
		return fmt.Errorf("function %s has no parameter %d", f.Name, i+1)
	}
	var s *validate.Schema
	if i < len(f.params) {
		s = f.params[i]
	}
	if s == nil && len(f.Params[i].Schema) > 0 {
		var err error
		if s, err = validate.Compile(f.Params[i].Schema, nil); err != nil {
			return err
		}
	}
	if s == nil {
		return nil
	}
	if err := s.ValidateJSON(value); err != nil {
		var ve *validate.Error
		if errors.As(err, &ve) {
			return fmt.Errorf("parameter %s: %s", f.Params[i].Name, ve.Detail())
		}
		return fmt.Errorf("parameter %s: %w", f.Params[i].Name, err)
	}
	return nil
}

// Function returns the database function called name.
func (m *Manifest) Function(name string) (*DBFunction, bool) {
	if m.Database == nil {
		return nil, false
	}
	for i := range m.Database.Functions {
		if m.Database.Functions[i].Name == name {
			return &m.Database.Functions[i], true
		}
	}
	return nil, false
}

// MatchHost reports whether host (lowercase, no port) is covered by r.Host. A pattern
// "*.example.com" matches any name ending in ".example.com", at any depth, but not
// "example.com"; a wildcard host given to MatchHost is covered when it is no broader.
func (r Rule) MatchHost(host string) bool { return MatchHost(r.Host, host) }

// MatchHost reports whether host is covered by pattern, with the semantics of [Rule.MatchHost].
func MatchHost(pattern, host string) bool {
	if pattern == host {
		return true
	}
	suffix, ok := strings.CutPrefix(pattern, "*")
	if !ok || !strings.HasPrefix(suffix, ".") {
		return false
	}
	host = strings.TrimPrefix(host, "*.") // a wildcard is covered when its base is
	return strings.HasSuffix(host, suffix) && len(host) > len(suffix) && !strings.HasPrefix(host, ".")
}

// ConfigKey is a non-secret setting the grant may fill.
type ConfigKey struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Default is used when the grant sets no value; "" means none.
	Default string `json:"default,omitempty"`
	// Values, when set, are the only values a grant may give the key (Default must be one of
	// them), each with what choosing it brings. Nil allows any value.
	Values map[string]ConfigValue `json:"values,omitempty"`
}

// ConfigValue is one allowed value of a config key.
type ConfigValue struct {
	Description string `json:"description,omitempty"`
	// RateLimits tighten the rates of network rules while the key has this value, exactly as a
	// grant's rate_limits do (each names a rule by host, and path_prefix when set); where both
	// set a rate, the tighter one applies.
	RateLimits []RateLimitOverride `json:"rate_limits,omitempty"`
}

// Tool returns the tool called name.
func (m *Manifest) Tool(name string) (*Tool, bool) {
	for i := range m.Tools {
		if m.Tools[i].Name == name {
			return &m.Tools[i], true
		}
	}
	return nil, false
}

// Credential returns the credential slot called name.
func (m *Manifest) Credential(name string) (*Credential, bool) {
	for i := range m.Credentials {
		if m.Credentials[i].Name == name {
			return &m.Credentials[i], true
		}
	}
	return nil, false
}

// ModulePath returns the module's file path, Module.Path resolved against Dir.
func (m *Manifest) ModulePath() string {
	return filepath.Join(m.Dir, filepath.FromSlash(m.Module.Path))
}

// ValidateInput checks a tool call's JSON arguments against the input schema. The error is safe
// to show to the agent ("invalid arguments: "channel" is required").
func (t *Tool) ValidateInput(args []byte) error {
	s, err := t.schema(&t.input, t.InputSchema)
	if err != nil || s == nil {
		return err
	}
	return s.ValidateInputJSON(args)
}

// ValidateOutput checks a tool's JSON result against the output schema, if there is one.
func (t *Tool) ValidateOutput(result []byte) error {
	s, err := t.schema(&t.output, t.OutputSchema)
	if err != nil || s == nil {
		return err
	}
	if err := s.ValidateJSON(result); err != nil {
		var ve *validate.Error
		if errors.As(err, &ve) {
			return fmt.Errorf("invalid output: %s", ve.Detail())
		}
		return err
	}
	return nil
}

// schema returns the compiled schema, compiling raw when the Tool was not made by Parse.
func (t *Tool) schema(compiled **validate.Schema, raw json.RawMessage) (*validate.Schema, error) {
	if *compiled != nil {
		return *compiled, nil
	}
	if len(raw) == 0 {
		return nil, nil
	}
	return validate.Compile(raw, nil)
}

// Errors VerifyModule wraps, for callers that branch (a development mode may accept an unpinned
// module, loudly; nothing accepts a mismatch).
var (
	ErrUnpinned       = errors.New("module is not pinned")
	ErrDigestMismatch = errors.New("module digest does not match the manifest")
)

// VerifyModule checks that module's SHA-256 digest is the one the manifest pins. It refuses an
// unpinned manifest. The comparison runs in constant time.
func VerifyModule(m *Manifest, module []byte) error {
	return VerifyDigest(m, sha256.Sum256(module))
}

// VerifyDigest is VerifyModule for a caller that has hashed the module already (sum is its
// SHA-256), so that a 4 MB module is hashed once per load.
func VerifyDigest(m *Manifest, sum [sha256.Size]byte) error {
	got := hex.EncodeToString(sum[:])
	if m.Module.SHA256 == "" {
		return fmt.Errorf("manifest %s: %w: %s has sha256 %s; add module.sha256: %s to the manifest if you trust this module", m.Name, ErrUnpinned, m.Module.Path, got, got)
	}
	if subtle.ConstantTimeCompare([]byte(got), []byte(m.Module.SHA256)) != 1 {
		return fmt.Errorf("manifest %s: %w: %s has sha256 %s but the manifest pins %s; the module was modified or rebuilt: use the published module, or review the change and update module.sha256", m.Name, ErrDigestMismatch, m.Module.Path, got, m.Module.SHA256)
	}
	return nil
}
