package secret

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// DefaultDopplerCacheTTL is how long [Doppler] reuses a secret it read, when
// [DopplerConfig.CacheTTL] is zero.
const DefaultDopplerCacheTTL = 30 * time.Second

// DefaultDopplerAPI is the address of Doppler's API.
const DefaultDopplerAPI = "https://api.doppler.com"

// DopplerConfig configures a [Doppler] source. The zero value reads with the service token in
// DOPPLER_TOKEN from api.doppler.com.
type DopplerConfig struct {
	// API is the base URL of Doppler's API. Empty means [DefaultDopplerAPI]. Tests point it at
	// a local server.
	API string

	// Token is a secret reference ("env:DOPPLER_TOKEN", "file:/run/secrets/doppler") to the
	// token used for every project and config not in Tokens. Empty means "env:DOPPLER_TOKEN".
	Token string

	// Tokens maps "PROJECT/CONFIG" to the reference of that config's service token: a Doppler
	// service token reads the one project and config it was created in, so a host reading
	// several configs needs one token each.
	Tokens map[string]string

	// Secrets resolves Token and Tokens. Nil means env: and file: references (absolute paths)
	// only.
	Secrets Source

	// CacheTTL is how long a secret read from Doppler is reused. Zero means
	// [DefaultDopplerCacheTTL]; a negative value disables the cache. A context from
	// [WithFreshRead] always reads from Doppler.
	CacheTTL time.Duration

	// Timeout bounds one request to Doppler. Zero means [DefaultManagerTimeout].
	Timeout time.Duration

	// HTTPClient sends the requests (its transport: TLS roots, proxy). Nil means a client with
	// http.DefaultTransport. Redirects are never followed.
	HTTPClient *http.Client

	// Now is the clock for the cache and Retry-After. Nil means time.Now.
	Now func() time.Time
}

// Doppler resolves references to Doppler secrets:
//
//	doppler:PROJECT/CONFIG/NAME
//
// "doppler:backend/prd/SLACK_BOT_TOKEN" reads the computed value (references to other secrets
// expanded) of SLACK_BOT_TOKEN in config prd of project backend, with
// GET /v3/configs/config/secret. Doppler has no official Go SDK; this is its documented HTTP API
// over net/http, with a timeout, no redirects and a capped answer.
//
// Errors name the reference and say what to do — including when the token is a service token
// of another project or config; they never contain a value or a token. A Doppler is safe for
// concurrent use.
type Doppler struct {
	api    *managerHTTP
	tokens map[string]*managerToken // "PROJECT/CONFIG" → token; "" → the default
	now    func() time.Time
	cache  ttlCache[Value]
}

// NewDoppler returns a Doppler source for cfg. It does not contact Doppler; the first
// [Doppler.Resolve] does.
func NewDoppler(cfg *DopplerConfig) (*Doppler, error) {
	var c DopplerConfig
	if cfg != nil {
		c = *cfg
	}
	if c.API == "" {
		c.API = DefaultDopplerAPI
	}
	api, err := newManagerHTTP("Doppler", c.API, c.HTTPClient, c.Timeout)
	if err != nil {
		return nil, err
	}
	if c.Token == "" {
		c.Token = "env:DOPPLER_TOKEN"
	}
	if c.Secrets == nil {
		c.Secrets = Mux{"env": Env{}, "file": File{}}
	}
	if c.CacheTTL == 0 {
		c.CacheTTL = DefaultDopplerCacheTTL
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	d := &Doppler{
		api:    api,
		tokens: map[string]*managerToken{"": {name: "Doppler", ref: c.Token, secrets: c.Secrets}},
		now:    c.Now,
		cache:  ttlCache[Value]{ttl: c.CacheTTL, now: c.Now},
	}
	for _, pc := range slices.Sorted(maps.Keys(c.Tokens)) {
		p, cf, ok := strings.Cut(pc, "/")
		if !ok || !validDopplerSlug(p) || !validDopplerSlug(cf) || c.Tokens[pc] == "" {
			return nil, fmt.Errorf("doppler: tokens: the key %q is not PROJECT/CONFIG with a token reference, such as backend/prd: env:DOPPLER_TOKEN_BACKEND_PRD", pc)
		}
		d.tokens[pc] = &managerToken{name: "Doppler", ref: c.Tokens[pc], secrets: c.Secrets}
	}
	return d, nil
}

// dopplerRef is a parsed "doppler:" reference.
type dopplerRef struct{ project, config, name string }

func (r dopplerRef) String() string { return "doppler:" + r.project + "/" + r.config + "/" + r.name }

const dopplerRefHelp = "write doppler:PROJECT/CONFIG/NAME, for example doppler:backend/prd/SLACK_BOT_TOKEN"

func parseDopplerRef(ref string) (dopplerRef, error) {
	scheme, rest, ok := splitRef(ref)
	if !ok || scheme != "doppler" {
		return dopplerRef{}, fmt.Errorf(`doppler: the reference does not start with "doppler:": %s: %w`, dopplerRefHelp, ErrBadReference)
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 || !validDopplerSlug(parts[0]) || !validDopplerSlug(parts[1]) || !validDopplerName(parts[2]) {
		// Do not echo the reference: it may be a secret pasted by mistake.
		return dopplerRef{}, fmt.Errorf("doppler: the reference is not PROJECT/CONFIG/NAME (project and config: letters, digits, '-', '_', '.'; "+
			"name: letters, digits and '_', not starting with a digit): %s: %w", dopplerRefHelp, ErrBadReference)
	}
	return dopplerRef{project: parts[0], config: parts[1], name: parts[2]}, nil
}

func validDopplerSlug(s string) bool {
	if s == "" || len(s) > 128 || s == "." || s == ".." {
		return false
	}
	for _, c := range []byte(s) {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.':
		default:
			return false
		}
	}
	return true
}

// validDopplerName accepts Doppler's secret names: letters, digits and '_', not starting with a
// digit (Doppler itself keeps them upper case).
func validDopplerName(s string) bool {
	return validEnvName(s)
}

// Resolve implements [Source] for references "doppler:PROJECT/CONFIG/NAME".
func (d *Doppler) Resolve(ctx context.Context, ref string) (Value, error) {
	if err := ctx.Err(); err != nil {
		return Value{}, err
	}
	r, err := parseDopplerRef(ref)
	if err != nil {
		return Value{}, err
	}
	key := r.project + "/" + r.config + "/" + r.name
	if v, ok := d.cache.get(ctx, key); ok {
		return v, nil
	}
	tok, dedicated := d.tokens[r.project+"/"+r.config]
	if !dedicated {
		tok = d.tokens[""]
	}
	var v Value
	err = tok.withToken(ctx, func(t string) (bool, error) {
		var ferr error
		v, ferr = d.fetch(ctx, t, r)
		return errors.Is(ferr, errDopplerUnauthorized), ferr
	})
	if errors.Is(err, errDopplerUnauthorized) {
		return Value{}, fmt.Errorf("doppler: Doppler refused the token (HTTP 401) reading %s: check that the token reference %s holds a valid service token that has not been revoked or expired: %w",
			r, Display(tok.ref), ErrDenied)
	}
	if err != nil {
		if errors.Is(err, errDopplerScope) {
			return Value{}, d.scopeError(r, tok, dedicated)
		}
		return Value{}, err
	}
	d.cache.put(key, v)
	return v, nil
}

var (
	errDopplerUnauthorized = errors.New("doppler refused the token")
	errDopplerScope        = errors.New("the token may not read this project or config")
)

// scopeError explains a 403: almost always a service token of another project or config.
func (d *Doppler) scopeError(r dopplerRef, tok *managerToken, dedicated bool) error {
	fix := fmt.Sprintf(`create a service token in project %s config %s and add it to airlock.yaml as doppler.tokens["%s/%s"] (a secret reference such as env:DOPPLER_TOKEN_%s_%s)`,
		r.project, r.config, r.project, r.config, envPart(r.project), envPart(r.config))
	if dedicated {
		fix = fmt.Sprintf(`check that the token doppler.tokens["%s/%s"] (reference %s) was created in project %s config %s`, r.project, r.config, Display(tok.ref), r.project, r.config)
	}
	return fmt.Errorf("doppler: the token (reference %s) may not read project %s config %s (HTTP 403) for %s: a Doppler service token reads only the one project and config it was created in; %s: %w",
		Display(tok.ref), r.project, r.config, r, fix, ErrDenied)
}

// envPart turns a project or config slug into a part of an environment variable's name.
func envPart(s string) string {
	return strings.Map(func(c rune) rune {
		if 'a' <= c && c <= 'z' {
			return c - 'a' + 'A'
		}
		if 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
			return c
		}
		return '_'
	}, s)
}

// dopplerSecret is the answer of GET /v3/configs/config/secret.
type dopplerSecret struct {
	Name  string `json:"name"`
	Value *struct {
		Raw      *string `json:"raw"`
		Computed *string `json:"computed"`
	} `json:"value"`
	Success *bool `json:"success"`
}

func (d *Doppler) fetch(ctx context.Context, tok string, r dopplerRef) (Value, error) {
	q := url.Values{"project": {r.project}, "config": {r.config}, "name": {r.name}}
	resp, err := d.api.get(ctx, "/v3/configs/config/secret", q, tok)
	if err != nil {
		return Value{}, fmt.Errorf("%w (reference %s)", err, r)
	}
	// Doppler's errors are {"messages":[…],"success":false}; the messages are not repeated, as
	// a server may echo the request in them.
	switch resp.status {
	case http.StatusOK:
	case http.StatusUnauthorized:
		return Value{}, errDopplerUnauthorized
	case http.StatusForbidden:
		return Value{}, errDopplerScope
	case http.StatusNotFound:
		return Value{}, fmt.Errorf("doppler: there is no secret %s in project %s config %s (HTTP 404): check the project, config and name in %s "+
			"(a service token sees only the config it was created in), or add the secret in Doppler: %w",
			r.name, r.project, r.config, r, ErrNotFound)
	case http.StatusTooManyRequests:
		return Value{}, fmt.Errorf("doppler: Doppler is rate-limiting the token (HTTP 429) reading %s: %s", r, retryAfter(resp.header, d.now()))
	default:
		return Value{}, fmt.Errorf("doppler: Doppler answered HTTP status %d reading %s: check status.doppler.com and the API address", resp.status, r)
	}
	var s dopplerSecret
	if err := json.Unmarshal(resp.body, &s); err != nil || s.Value == nil || (s.Success != nil && !*s.Success) {
		return Value{}, fmt.Errorf("doppler: the answer reading %s is not a Doppler secret: check that the API address points at Doppler's API", r)
	}
	val := s.Value.Computed
	if val == nil {
		val = s.Value.Raw
	}
	if val == nil || *val == "" {
		return Value{}, fmt.Errorf("doppler: secret %s in project %s config %s is empty: write the secret into it (reference %s): %w", r.name, r.project, r.config, r, ErrNotFound)
	}
	return New(*val), nil
}
