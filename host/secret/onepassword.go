package secret

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/1Password/connect-sdk-go/onepassword"
)

// DefaultOnePasswordCacheTTL is how long [OnePassword] reuses an item it read, when
// [OnePasswordConfig.CacheTTL] is zero.
const DefaultOnePasswordCacheTTL = 30 * time.Second

// OnePasswordConfig configures a [OnePassword] source. The zero value talks to OP_CONNECT_HOST
// with the token in OP_CONNECT_TOKEN, as 1Password's own tools do.
type OnePasswordConfig struct {
	// Host is the 1Password Connect server's URL, such as "http://op-connect:8080". Empty means
	// the OP_CONNECT_HOST environment variable.
	Host string

	// Token is a secret reference ("env:OP_CONNECT_TOKEN", "file:/run/secrets/op-token") to the
	// Connect server's access token. Empty means "env:OP_CONNECT_TOKEN".
	Token string

	// Secrets resolves Token. Nil means env: and file: references (absolute paths) only.
	Secrets Source

	// CacheTTL is how long an item read from Connect is reused. Zero means
	// [DefaultOnePasswordCacheTTL]; a negative value disables the cache. A context from
	// [WithFreshRead] always reads from Connect.
	CacheTTL time.Duration

	// Timeout bounds one request to Connect. Zero means [DefaultManagerTimeout].
	Timeout time.Duration

	// HTTPClient sends the requests (its transport: TLS roots, proxy). Nil means a client
	// with http.DefaultTransport. Redirects are never followed.
	HTTPClient *http.Client

	// Now is the clock for the cache. Nil means time.Now.
	Now func() time.Time
}

// OnePassword resolves 1Password secret references through a 1Password Connect server:
//
//	op://VAULT/ITEM/FIELD
//	op://VAULT/ITEM/SECTION/FIELD
//
// VAULT, ITEM, SECTION and FIELD are names or IDs, as in 1Password's own secret reference
// syntax; "op://Production/Slack bot/credential" reads the field labelled "credential" of the
// item "Slack bot" in the vault "Production". Names are matched as Connect matches titles
// (vaults and items) and without regard to case (sections and fields, as `op read` does). A name
// that matches several vaults, items or fields is refused: use the ID. Query parameters
// (?attribute=otp, ?ssh-format=…) are not supported.
//
// It speaks Connect's REST API with the types of the official SDK
// (github.com/1Password/connect-sdk-go/onepassword), over its own HTTP client: the SDK's client
// takes no context, no timeout and reads answers of any size, and its constructor installs a
// global Jaeger tracer. 1Password service accounts are not supported (see RATIONALE.md).
//
// Errors name the reference and say what to do; they never contain a value or the Connect
// token. A OnePassword is safe for concurrent use.
type OnePassword struct {
	api   *managerHTTP
	token *managerToken
	cache ttlCache[*onepassword.Item]
}

// NewOnePassword returns a OnePassword source for cfg. It does not contact the server; the
// first [OnePassword.Resolve] does.
func NewOnePassword(cfg *OnePasswordConfig) (*OnePassword, error) {
	var c OnePasswordConfig
	if cfg != nil {
		c = *cfg
	}
	if c.Host == "" {
		c.Host = os.Getenv("OP_CONNECT_HOST")
	}
	if c.Host == "" {
		return nil, errors.New("1Password Connect: no server address: set onepassword.host (or OP_CONNECT_HOST) to the Connect server's URL, such as http://op-connect:8080")
	}
	api, err := newManagerHTTP("1Password Connect", c.Host, c.HTTPClient, c.Timeout)
	if err != nil {
		return nil, err
	}
	if c.Token == "" {
		c.Token = "env:OP_CONNECT_TOKEN"
	}
	if c.Secrets == nil {
		c.Secrets = Mux{"env": Env{}, "file": File{}}
	}
	if c.CacheTTL == 0 {
		c.CacheTTL = DefaultOnePasswordCacheTTL
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return &OnePassword{
		api:   api,
		token: &managerToken{name: "1Password Connect", ref: c.Token, secrets: c.Secrets},
		cache: ttlCache[*onepassword.Item]{ttl: c.CacheTTL, now: c.Now},
	}, nil
}

// opRef is a parsed "op://" reference.
type opRef struct {
	vault, item, section, field string
}

func (r opRef) String() string {
	s := "op://" + r.vault + "/" + r.item + "/"
	if r.section != "" {
		s += r.section + "/"
	}
	return s + r.field
}

const opRefHelp = "write op://VAULT/ITEM/FIELD or op://VAULT/ITEM/SECTION/FIELD with names or IDs, for example op://Production/Slack bot/credential"

func parseOpRef(ref string) (opRef, error) {
	scheme, rest, ok := splitRef(ref)
	if !ok || scheme != "op" {
		return opRef{}, fmt.Errorf(`1Password: the reference does not start with "op://": %s: %w`, opRefHelp, ErrBadReference)
	}
	rest, ok = strings.CutPrefix(rest, "//")
	if !ok {
		return opRef{}, fmt.Errorf(`1Password: the reference has no "//" after "op:": %s: %w`, opRefHelp, ErrBadReference)
	}
	if strings.ContainsAny(rest, "?#") {
		return opRef{}, fmt.Errorf("1Password: query parameters such as ?attribute= are not supported: reference the field itself (%s): %w", opRefHelp, ErrBadReference)
	}
	parts := strings.Split(rest, "/")
	if len(parts) != 3 && len(parts) != 4 {
		return opRef{}, fmt.Errorf("1Password: the reference has %d parts after op://, want 3 or 4: %s: %w", len(parts), opRefHelp, ErrBadReference)
	}
	for _, p := range parts {
		if !validOpName(p) {
			// Do not echo the part: the reference may be a secret pasted by mistake.
			return opRef{}, fmt.Errorf("1Password: a part of the reference is empty, too long or has characters other than letters, digits, spaces, '-', '_' and '.': "+
				"use the ID of that vault, item, section or field instead (%s): %w", opRefHelp, ErrBadReference)
		}
	}
	r := opRef{vault: parts[0], item: parts[1], field: parts[len(parts)-1]}
	if len(parts) == 4 {
		r.section = parts[2]
	}
	return r, nil
}

// validOpName accepts the characters 1Password's secret reference syntax allows in a name
// without quoting: letters, digits, spaces, '-', '_' and '.'.
func validOpName(s string) bool {
	if s == "" || len(s) > 256 || strings.TrimSpace(s) != s || strings.Trim(s, ".") == "" {
		return false
	}
	for _, c := range s {
		if !unicode.IsLetter(c) && !unicode.IsDigit(c) && c != ' ' && c != '-' && c != '_' && c != '.' {
			return false
		}
	}
	return true
}

// isOpID reports whether s has the shape of a 1Password ID (26 lowercase letters and digits),
// as connect-sdk-go decides.
func isOpID(s string) bool {
	if len(s) != 26 {
		return false
	}
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// Resolve implements [Source] for references "op://VAULT/ITEM[/SECTION]/FIELD".
func (o *OnePassword) Resolve(ctx context.Context, ref string) (Value, error) {
	if err := ctx.Err(); err != nil {
		return Value{}, err
	}
	r, err := parseOpRef(ref)
	if err != nil {
		return Value{}, err
	}
	key := r.vault + "\x00" + r.item
	item, ok := o.cache.get(ctx, key)
	if !ok {
		err := o.token.withToken(ctx, func(tok string) (bool, error) {
			var ferr error
			item, ferr = o.fetchItem(ctx, tok, r)
			return errors.Is(ferr, errOpUnauthorized), ferr
		})
		if errors.Is(err, errOpUnauthorized) {
			return Value{}, fmt.Errorf("1Password Connect refused its token (HTTP 401) reading %s: check that the token reference %s holds a valid Connect access token that has not been revoked: %w",
				r, Display(o.token.ref), ErrDenied)
		}
		if err != nil {
			return Value{}, err
		}
		o.cache.put(key, item)
	}
	f, err := opField(item, r)
	if err != nil {
		return Value{}, err
	}
	if f.Value == "" {
		return Value{}, fmt.Errorf("1Password: field %q of item %q is empty: write the secret into it (reference %s): %w", f.Label, item.Title, r, ErrNotFound)
	}
	return New(f.Value), nil
}

// opField finds r's field in item: by ID or label (case-insensitively), within r's section if
// it names one.
func opField(item *onepassword.Item, r opRef) (*onepassword.ItemField, error) {
	var section *onepassword.ItemSection
	if r.section != "" {
		var found []*onepassword.ItemSection
		for _, s := range item.Sections {
			if s != nil && (s.ID == r.section || strings.EqualFold(s.Label, r.section)) {
				found = append(found, s)
			}
		}
		switch len(found) {
		case 0:
			return nil, fmt.Errorf("1Password: item %q has no section %q (it has %s): fix the section in %s: %w", item.Title, r.section, opSectionList(item), r, ErrNotFound)
		case 1:
			section = found[0]
		default:
			return nil, fmt.Errorf("1Password: item %q has %d sections named %q: use the section's ID in %s", item.Title, len(found), r.section, r)
		}
	}
	var found []*onepassword.ItemField
	for _, f := range item.Fields {
		if f == nil || (f.ID != r.field && !strings.EqualFold(f.Label, r.field)) {
			continue
		}
		if section != nil && (f.Section == nil || f.Section.ID != section.ID) {
			continue
		}
		found = append(found, f)
	}
	switch len(found) {
	case 0:
		where := "item " + fmt.Sprintf("%q", item.Title)
		if section != nil {
			where = fmt.Sprintf("section %q of item %q", r.section, item.Title)
		}
		return nil, fmt.Errorf("1Password: %s has no field %q (it has %s): fix the field in %s or add it in 1Password: %w", where, r.field, opFieldList(item, section), r, ErrNotFound)
	case 1:
		return found[0], nil
	}
	return nil, fmt.Errorf("1Password: item %q has %d fields named %q: name the section (op://VAULT/ITEM/SECTION/FIELD) or use the field's ID in %s", item.Title, len(found), r.field, r)
}

func opFieldList(item *onepassword.Item, section *onepassword.ItemSection) string {
	var names []string
	for _, f := range item.Fields {
		if f != nil && f.Label != "" && (section == nil || f.Section != nil && f.Section.ID == section.ID) {
			names = append(names, f.Label)
		}
	}
	slices.Sort(names)
	return fieldList(slices.Compact(names))
}

func opSectionList(item *onepassword.Item) string {
	var names []string
	for _, s := range item.Sections {
		if s != nil && s.Label != "" {
			names = append(names, s.Label)
		}
	}
	slices.Sort(names)
	if len(names) == 0 {
		return "no named sections"
	}
	return "sections " + strings.Join(slices.Compact(names), ", ")
}

// errOpUnauthorized: Connect answered 401 (the token is invalid, expired or revoked).
var errOpUnauthorized = errors.New("1Password Connect refused the token")

// fetchItem reads the item r names, looking the vault and the item up by title unless they
// are IDs.
func (o *OnePassword) fetchItem(ctx context.Context, tok string, r opRef) (*onepassword.Item, error) {
	vaultID := r.vault
	if !isOpID(r.vault) {
		var vaults []onepassword.Vault
		if err := o.getJSON(ctx, tok, "/v1/vaults", titleFilter(r.vault), r, "vault", &vaults); err != nil {
			return nil, err
		}
		switch len(vaults) {
		case 0:
			return nil, fmt.Errorf("1Password: no vault named %q is visible to the Connect token: check the vault name in %s, or give the token access to the vault: %w", r.vault, r, ErrNotFound)
		case 1:
			vaultID = vaults[0].ID
		default:
			return nil, fmt.Errorf("1Password: %d vaults are named %q: use the vault's ID in %s", len(vaults), r.vault, r)
		}
		if !isOpID(vaultID) {
			return nil, fmt.Errorf("1Password Connect answered a vault ID that is not one: check the server (reference %s)", r)
		}
	}
	items := "/v1/vaults/" + vaultID + "/items"
	if isOpID(r.item) {
		var item onepassword.Item
		err := o.getJSON(ctx, tok, items+"/"+r.item, nil, r, "item", &item)
		if err == nil || !errors.Is(err, ErrNotFound) {
			return &item, err
		}
		// A title that looks like an ID: look it up as a title, as connect-sdk-go does.
	}
	var found []onepassword.Item
	if err := o.getJSON(ctx, tok, items, titleFilter(r.item), r, "item", &found); err != nil {
		return nil, err
	}
	switch {
	case len(found) == 0:
		return nil, fmt.Errorf("1Password: vault %q has no item named %q: check the item name in %s: %w", r.vault, r.item, r, ErrNotFound)
	case len(found) > 1:
		return nil, fmt.Errorf("1Password: vault %q has %d items named %q: use the item's ID in %s", r.vault, len(found), r.item, r)
	case !isOpID(found[0].ID):
		return nil, fmt.Errorf("1Password Connect answered an item ID that is not one: check the server (reference %s)", r)
	}
	// The list holds summaries without field values: read the item itself.
	var item onepassword.Item
	if err := o.getJSON(ctx, tok, items+"/"+found[0].ID, nil, r, "item", &item); err != nil {
		return nil, err
	}
	return &item, nil
}

// titleFilter is Connect's SCIM-style filter on a title. Names are restricted by
// [validOpName], so they hold no quote to escape.
func titleFilter(title string) url.Values {
	return url.Values{"filter": {`title eq "` + title + `"`}}
}

// getJSON reads one Connect resource into out, mapping Connect's error statuses to errors that
// say what to do. It never repeats Connect's message, which may echo the request.
func (o *OnePassword) getJSON(ctx context.Context, tok, path string, q url.Values, r opRef, what string, out any) error {
	resp, err := o.api.get(ctx, path, q, tok)
	if err != nil {
		return fmt.Errorf("%w (reference %s)", err, r)
	}
	switch resp.status {
	case http.StatusOK:
		if err := json.Unmarshal(resp.body, out); err != nil {
			return fmt.Errorf("1Password Connect answered something that is not a %s: check that onepassword.host points at a Connect server (reference %s)", what, r)
		}
		return nil
	case http.StatusUnauthorized:
		return errOpUnauthorized
	case http.StatusForbidden:
		return fmt.Errorf("1Password Connect denied its token access to vault %q (HTTP 403) reading %s: give the Connect token access to that vault (op connect token edit, or a new token with --vault): %w",
			r.vault, r, ErrDenied)
	case http.StatusNotFound:
		return fmt.Errorf("1Password Connect found no vault %q holding an item %q that its token can see (HTTP 404): check both names in %s: %w", r.vault, r.item, r, ErrNotFound)
	case http.StatusTooManyRequests:
		return fmt.Errorf("1Password Connect is rate-limiting the host (HTTP 429) reading %s: %s", r, retryAfter(resp.header, time.Now()))
	}
	return fmt.Errorf("1Password Connect answered HTTP status %d reading %s: check the Connect server and its sync with 1Password.com", resp.status, r)
}
