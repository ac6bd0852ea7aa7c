package manifest

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// All is the grant wildcard: in Tools, Scopes or Hosts it grants everything the manifest declares.
const All = "*"

// Grant is an admin's answer to a manifest (manifests/FORMAT.md, "Grant"): what the connector may
// use. Anything not granted is denied; host/internal/grant computes the effective permission.
// The zero value grants nothing.
type Grant struct {
	// Connector is the name of the manifest the grant answers.
	Connector string `json:"connector"`
	// Tools, Scopes and Hosts list granted names, or hold All. Nil grants none.
	Tools  []string `json:"tools,omitempty"`
	Scopes []string `json:"scopes,omitempty"`
	Hosts  []string `json:"hosts,omitempty"`
	// Credentials says what fills each credential slot: a secret reference such as env:NAME or
	// file:PATH (static kinds), or an OAuth client (OAuth kinds). References are not themselves
	// secret; the values they name are never stored here.
	Credentials map[string]CredentialGrant `json:"credentials,omitempty"`
	// Config holds values for the manifest's config keys.
	Config map[string]string `json:"config,omitempty"`
	// PrivateTargets are IP addresses or CIDR prefixes the connector may dial although private.
	PrivateTargets []string `json:"private_targets,omitempty"`
	// Upstreams sends an allowed origin (scheme://host[:port]) to another address.
	Upstreams map[string]string `json:"upstreams,omitempty"`
	// Limits may only tighten the manifest's; zero fields are not overridden.
	Limits Limits `json:"limits,omitzero"`
	// Confirm lists tools that need a human's approval for every call, besides those the
	// manifest marks destructive or needs_confirmation.
	Confirm []string `json:"confirm,omitempty"`
	// RateLimits tighten the rates of network rules.
	RateLimits []RateLimitOverride `json:"rate_limits,omitempty"`
	// Quotas bound the calls made to the connector, in front of the plugin.
	Quotas *Quotas `json:"quotas,omitempty"`
	// Database names the database the connector's functions run against.
	Database *DatabaseGrant `json:"database,omitempty"`
	// PropagateTrace sends a W3C traceparent header with the connector's outbound requests when
	// the call is traced, so the upstream's spans join the trace. Default false: upstreams
	// learn nothing of the caller's trace.
	PropagateTrace bool `json:"propagate_trace,omitempty"`
	// Screening says how the connector's tool results are screened for prompt injection. Nil:
	// the default detectors, action label.
	Screening *Screening `json:"screening,omitempty"`
}

// Actions of Screening, from the least to the most restrictive.
const (
	ScreenLabel           = "label"            // the result goes through, with the findings in its meta (default)
	ScreenRedact          = "redact"           // each offending span is replaced
	ScreenRequireApproval = "require_approval" // the result is held until an admin approves it
	ScreenBlock           = "block"            // the call fails
)

// ScreenActions lists the actions of Screening, least restrictive first.
var ScreenActions = []string{ScreenLabel, ScreenRedact, ScreenRequireApproval, ScreenBlock}

// Screening configures the screening of a connector's tool results (manifests/FORMAT.md).
type Screening struct {
	// Action is what happens to a result with a finding: ScreenLabel (default), ScreenRedact,
	// ScreenRequireApproval or ScreenBlock.
	Action string `json:"action,omitempty"`
	// Detectors are the built-in detectors to run: instruction, invisible, exfiltration (the
	// default three) and link (opt-in). Empty: the default three.
	Detectors []string `json:"detectors,omitempty"`
	// LinkHosts are hosts (as network rules write them: "example.com", "*.example.com") that
	// images and links in results may point to, besides the hosts of the granted network rules.
	LinkHosts []string `json:"link_hosts,omitempty"`
	// Classifier, if set, sends each result's strings to an external classifier too.
	Classifier *ScreeningClassifier `json:"classifier,omitempty"`
}

// ScreeningClassifier is an external prompt-injection classifier (manifests/FORMAT.md).
type ScreeningClassifier struct {
	// URL receives a POST per screened result (http or https; reached by the host directly).
	URL string `json:"url"`
	// TimeoutMS bounds one classification in milliseconds (default 2000).
	TimeoutMS int `json:"timeout_ms,omitempty"`
	// OnError is what happens when the classifier gives no verdict: "open" (default: the
	// result goes on, its meta.screening saying why it is unscreened) or "closed" (the call
	// fails, retryable).
	OnError string `json:"on_error,omitempty"`
	// Auth, if set, authenticates the host to the classifier with a header whose value is a
	// secret.
	Auth *ClassifierAuth `json:"auth,omitempty"`
}

// ClassifierAuth is the header the host sends the classifier: Header: Scheme Secret.
type ClassifierAuth struct {
	// Header is the header's name (default Authorization).
	Header string `json:"header,omitempty"`
	// Scheme, if set, comes before the secret and a space ("Bearer").
	Scheme string `json:"scheme,omitempty"`
	// Secret is the reference of the value (env:, file:, store:, vault: …), resolved by the
	// host's secret sources, scrubbed from every output, never logged.
	Secret string `json:"secret"`
}

// CredentialGrant fills one credential slot. In YAML a plain string is a secret reference
// (Secret); an object describes an OAuth client.
type CredentialGrant struct {
	// Secret is the reference of a static secret (bearer, api_key, basic slots).
	Secret string `json:"secret,omitempty"`
	// ClientID is the OAuth client id; not secret.
	ClientID string `json:"client_id,omitempty"`
	// ClientSecret and PrivateKey are secret references; Username is the JWT bearer subject.
	ClientSecret string `json:"client_secret,omitempty"`
	PrivateKey   string `json:"private_key,omitempty"`
	Username     string `json:"username,omitempty"`
}

// UnmarshalJSON accepts a string (a secret reference) or an object.
func (c *CredentialGrant) UnmarshalJSON(data []byte) error {
	var ref string
	if json.Unmarshal(data, &ref) == nil {
		*c = CredentialGrant{Secret: ref}
		return nil
	}
	type plain CredentialGrant
	return json.Unmarshal(data, (*plain)(c))
}

// MarshalJSON writes a secret-only grant back as its string form.
func (c CredentialGrant) MarshalJSON() ([]byte, error) {
	if c == (CredentialGrant{Secret: c.Secret}) {
		return json.Marshal(c.Secret)
	}
	type plain CredentialGrant
	return json.Marshal(plain(c))
}

// RateLimitOverride tightens the rate of the network rule with this Host (and PathPrefix, when
// set), written as in the manifest.
type RateLimitOverride struct {
	Host       string  `json:"host"`
	PathPrefix string  `json:"path_prefix,omitempty"`
	PerSecond  float64 `json:"per_second"`
	Burst      int     `json:"burst,omitempty"`
}

// Quotas bound the calls made to a connector.
type Quotas struct {
	// PerAgent bounds each agent's calls to the connector; PerTool bounds each tool's calls
	// from all agents.
	PerAgent *Quota `json:"per_agent,omitempty"`
	PerTool  *Quota `json:"per_tool,omitempty"`
}

// Quota is a number of calls per period.
type Quota struct {
	Calls   int `json:"calls"`
	PeriodS int `json:"period_s"`
}

// Period returns PeriodS as a duration.
func (q *Quota) Period() time.Duration { return time.Duration(q.PeriodS) * time.Second }

// DatabaseGrant names the database of a connector's functions and which functions may run.
type DatabaseGrant struct {
	// DSN is a secret reference to the data source name (postgres://…, mysql://…, redis://…,
	// rediss://…, mongodb://… or sqlite:PATH).
	DSN string `json:"dsn"`
	// Functions lists granted function names, or holds All.
	Functions []string `json:"functions,omitempty"`
	// AllowWrites lets write functions (ReadOnly false) run.
	AllowWrites bool `json:"allow_writes,omitempty"`
}

// LoadGrant reads and parses the grant at path.
func LoadGrant(path string) (*Grant, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return ParseGrant(path, data)
}

// ParseGrant parses a grant with the same strictness as Parse: unknown keys, anchors, duplicate
// keys and malformed private targets or upstream URLs are errors (nil, *Error or ErrorList).
// Whether the grant fits a manifest is checked later, by host/internal/grant.
func ParseGrant(filename string, data []byte) (*Grant, error) {
	d, err := parseYAML(filename, data, "grant")
	if err != nil {
		return nil, err
	}
	if errs := d.validateFormat(grantSchema()); len(errs) > 0 {
		return nil, result(errs)
	}
	// Settings are strings; a YAML number or boolean is taken as written.
	if cfg, ok := d.value.(map[string]any)["config"].(map[string]any); ok {
		for k, v := range cfg {
			if _, isString := v.(string); !isString {
				cfg[k] = d.nodes[jsonPointer([]string{"config", k})].Value
			}
		}
	}
	data, err = json.Marshal(d.value)
	if err != nil {
		return nil, d.errorf(0, "", "%v", err)
	}
	var g Grant
	if err := json.Unmarshal(data, &g); err != nil {
		return nil, d.errorf(0, "", "internal error: %v", err)
	}
	var errs []*Error
	for i, t := range g.PrivateTargets {
		if _, err := ParsePrefix(t); err != nil {
			errs = append(errs, d.at([]string{"private_targets", strconv.Itoa(i)}, "%v", err))
		}
	}
	for _, from := range sortedKeys(g.Upstreams) {
		if _, err := ParseOrigin(from); err != nil {
			errs = append(errs, d.at([]string{"upstreams", from}, "key: %v", err))
		}
		if _, err := ParseOrigin(g.Upstreams[from]); err != nil {
			errs = append(errs, d.at([]string{"upstreams", from}, "%v", err))
		}
	}
	for _, list := range []string{"tools", "scopes", "hosts", "confirm"} {
		items, _ := d.value.(map[string]any)[list].([]any)
		if len(items) > 1 {
			for i, it := range items {
				if it == All {
					errs = append(errs, d.at([]string{list, strconv.Itoa(i)}, `"*" already grants everything: write %s: ["*"] alone`, list))
				}
			}
		}
	}
	if err := result(errs); err != nil {
		return nil, err
	}
	return &g, nil
}

// ParsePrefix parses a private target: a CIDR prefix (10.0.0.0/8, fd00::/8) or a single IP
// address (a /32 or /128 prefix). The prefix is masked.
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR prefix such as 10.0.0.0/8", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address or a CIDR prefix such as 10.0.0.0/8", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// ParseOrigin parses scheme://host[:port] (http or https, no user info, path, query or fragment)
// and returns it canonical: lowercase, with the port explicit, e.g. "https://slack.com:443".
func ParseOrigin(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return "", fmt.Errorf("%q is not an origin such as https://api.example.com or http://127.0.0.1:8099", s)
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme != "http" && scheme != "https" {
		return "", fmt.Errorf("%q: the scheme must be http or https", s)
	}
	if u.User != nil {
		return "", fmt.Errorf("%q: user info is not allowed; credentials come from credential slots", s)
	}
	if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return "", fmt.Errorf("%q: give only scheme://host[:port], without a path, query or fragment", s)
	}
	host := strings.ToLower(u.Hostname())
	if host == "" {
		return "", fmt.Errorf("%q has no host", s)
	}
	port := u.Port()
	if port == "" {
		port = "443"
		if scheme == "http" {
			port = "80"
		}
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("%q: the port must be 1..65535", s)
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return scheme + "://" + host + ":" + port, nil
}

// SecretRefs turns a map of slot → secret reference into grant credentials, for the common
// case of static secrets: Grant{Credentials: SecretRefs(map[string]string{"bot_token": "env:SLACK_BOT_TOKEN"})}.
func SecretRefs(refs map[string]string) map[string]CredentialGrant {
	out := make(map[string]CredentialGrant, len(refs))
	for slot, ref := range refs {
		out[slot] = CredentialGrant{Secret: ref}
	}
	return out
}
