package secret

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/auth"
	secretmanager "cloud.google.com/go/secretmanager/apiv1"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"github.com/googleapis/gax-go/v2/apierror"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"
)

// DefaultRemoteCacheTTL is how long a cloud secret manager source ([GCPSecretManager],
// [AzureKeyVault]) reuses a secret it read, when its CacheTTL is zero.
const DefaultRemoteCacheTTL = 30 * time.Second

// GCPConfig configures a [GCPSecretManager]. The zero value uses Application Default
// Credentials against the public endpoint.
type GCPConfig struct {
	// CredentialsFile is a service account key file (JSON) to use instead of Application Default
	// Credentials. Empty means ADC: GOOGLE_APPLICATION_CREDENTIALS, then gcloud's
	// application_default_credentials.json, then the metadata server of GCE, GKE (Workload
	// Identity) or Cloud Run.
	CredentialsFile string

	// Endpoint overrides the API's base URL, such as "https://secretmanager.europe-west1.rep.googleapis.com"
	// or a Private Service Connect address. Empty means https://secretmanager.googleapis.com.
	Endpoint string

	// CacheTTL is how long a secret read is reused. Zero means [DefaultRemoteCacheTTL]; a negative
	// value disables the cache. A context from [WithFreshRead] bypasses it.
	CacheTTL time.Duration

	// Options are passed to the client after the ones above (tests, embedders: an HTTP client
	// with a proxy, option.WithUniverseDomain …).
	Options []option.ClientOption

	// Now is the cache's clock. Nil means time.Now.
	Now func() time.Time
}

// GCPSecretManager resolves references to Google Cloud Secret Manager secret versions:
//
//	gcp-sm:projects/PROJECT/secrets/SECRET                       the latest enabled version
//	gcp-sm:projects/PROJECT/secrets/SECRET/versions/VERSION      VERSION: a number or "latest"
//	gcp-sm:projects/PROJECT/secrets/SECRET/versions/VERSION#KEY  the string KEY of a JSON payload
//
// PROJECT is a project ID or number. It calls AccessSecretVersion through the official client
// (REST transport) with the host's own Google identity, which needs the role
// roles/secretmanager.secretAccessor on the secret. Payloads carrying a CRC32C checksum are
// checked against it. Reads are cached for [GCPConfig.CacheTTL].
//
// Errors name the reference and say what to do; they never contain a value or a token, nor
// what the server said. A GCPSecretManager is safe for concurrent use.
type GCPSecretManager struct {
	cfg   GCPConfig
	cache *ttlCache[string]

	mu     sync.Mutex
	client *secretmanager.Client // created at the first Resolve
}

// NewGCPSecretManager returns a source for cfg. It does not look for credentials nor contact
// the server: the first [GCPSecretManager.Resolve] does, so a host without a Google identity
// starts and only gcp-sm: references fail.
func NewGCPSecretManager(cfg *GCPConfig) *GCPSecretManager {
	var c GCPConfig
	if cfg != nil {
		c = *cfg
	}
	if c.CacheTTL == 0 {
		c.CacheTTL = DefaultRemoteCacheTTL
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return &GCPSecretManager{cfg: c, cache: newTTLCache[string](c.CacheTTL, c.Now)}
}

// Close releases the client's connections.
func (g *GCPSecretManager) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.client == nil {
		return nil
	}
	err := g.client.Close()
	g.client = nil
	return err
}

// gcpRef is a parsed "gcp-sm:" reference.
type gcpRef struct {
	project, secret, version, key string
}

func (r gcpRef) name() string {
	return "projects/" + r.project + "/secrets/" + r.secret + "/versions/" + r.version
}

func (r gcpRef) String() string {
	s := "gcp-sm:" + r.name()
	if r.key != "" {
		s += "#" + r.key
	}
	return s
}

const gcpRefHelp = "write gcp-sm:projects/PROJECT/secrets/SECRET/versions/VERSION (VERSION a number or latest; add #KEY for a key of a JSON secret), for example gcp-sm:projects/my-project/secrets/slack-bot/versions/latest"

func parseGCPRef(ref string) (gcpRef, error) {
	bad := func(why string) (gcpRef, error) { return gcpRef{}, badRef("gcp-sm", why, gcpRefHelp) }
	rest, key, err := cutRemoteRef(ref, "gcp-sm", gcpRefHelp)
	if err != nil {
		return gcpRef{}, err
	}
	r := gcpRef{key: key}
	p := strings.Split(rest, "/")
	switch {
	case len(p) == 4 && p[0] == "projects" && p[2] == "secrets":
		r.version = "latest"
	case len(p) == 6 && p[0] == "projects" && p[2] == "secrets" && p[4] == "versions":
		r.version = p[5]
	case len(p) >= 4 && p[0] == "projects" && p[2] == "locations":
		return bad("regional secrets (projects/P/locations/L/…) are not supported yet; use a global secret")
	default:
		return bad("the reference is not a secret version name")
	}
	r.project, r.secret = p[1], p[3]
	if !validGCPProject(r.project) {
		return bad("the project is not a project ID (6 to 30 lowercase letters, digits and hyphens) nor a project number")
	}
	if !validGCPSecretID(r.secret) {
		return bad("the secret ID is not 1 to 255 letters, digits, '-' and '_'")
	}
	if r.version != "latest" {
		if n, err := strconv.ParseUint(r.version, 10, 63); err != nil || n == 0 || r.version[0] == '0' {
			return bad("the version is neither a positive number nor latest")
		}
	}
	return r, nil
}

func validGCPProject(p string) bool {
	if p == "" || len(p) > 30 {
		return false
	}
	digits := true
	for i, c := range []byte(p) {
		switch {
		case '0' <= c && c <= '9':
		case 'a' <= c && c <= 'z':
			digits = false
		case c == '-' && i > 0 && i < len(p)-1:
			digits = false
		default:
			return false
		}
	}
	return digits || len(p) >= 6 && p[0] >= 'a' && p[0] <= 'z'
}

func validGCPSecretID(s string) bool {
	if s == "" || len(s) > 255 {
		return false
	}
	for _, c := range []byte(s) {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Resolve implements [Source] for "gcp-sm:" references.
func (g *GCPSecretManager) Resolve(ctx context.Context, ref string) (Value, error) {
	if err := ctx.Err(); err != nil {
		return Value{}, err
	}
	r, err := parseGCPRef(ref)
	if err != nil {
		return Value{}, err
	}
	read := func(ctx context.Context) (string, error) { return g.access(ctx, r) }
	return remoteValue(ctx, g.cache, r.name(), read, r.key, "gcp-sm: "+r.name(), r.String())
}

func (g *GCPSecretManager) getClient(ctx context.Context) (*secretmanager.Client, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.client != nil {
		return g.client, nil
	}
	var opts []option.ClientOption
	if g.cfg.CredentialsFile != "" {
		opts = append(opts, option.WithAuthCredentialsFile(option.ServiceAccount, g.cfg.CredentialsFile))
	}
	if g.cfg.Endpoint != "" {
		opts = append(opts, option.WithEndpoint(g.cfg.Endpoint))
	}
	opts = append(opts, g.cfg.Options...)
	// The REST transport: plain HTTPS that egress proxies and TLS-inspecting firewalls pass,
	// and one documented JSON shape for the test's server.
	c, err := secretmanager.NewRESTClient(context.WithoutCancel(ctx), opts...)
	if err != nil {
		if g.cfg.CredentialsFile != "" {
			return nil, fmt.Errorf("gcp-sm: the service account key file %s cannot be used: check it is a service account JSON key (gcp: credentials_file in airlock.yaml)", g.cfg.CredentialsFile)
		}
		return nil, fmt.Errorf("gcp-sm: no Google credentials found: run on GCE/GKE/Cloud Run with a service account, set GOOGLE_APPLICATION_CREDENTIALS to a key file, or set gcp: credentials_file in airlock.yaml: %w", ErrDenied)
	}
	g.client = c
	return c, nil
}

// dropClient forgets c if it is still the current client, so the next read makes a new one
// (with a new access token). c is not closed: other reads may still be using it, and a REST
// client holds nothing but idle connections.
func (g *GCPSecretManager) dropClient(c *secretmanager.Client) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.client == c {
		g.client = nil
	}
}

var crc32c = crc32.MakeTable(crc32.Castagnoli)

func (g *GCPSecretManager) access(ctx context.Context, r gcpRef) (string, error) {
	var resp *secretmanagerpb.AccessSecretVersionResponse
	for attempt := 0; ; attempt++ {
		c, err := g.getClient(ctx)
		if err != nil {
			return "", err
		}
		resp, err = c.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: r.name()})
		var herr *googleapi.Error
		if err != nil && attempt == 0 && errors.As(err, &herr) && herr.Code == http.StatusUnauthorized {
			// The access token was revoked before it expired (the client would keep it until
			// then): a new client asks for a new one, once.
			g.dropClient(c)
			continue
		}
		if err != nil {
			return "", gcpError(ctx, r, err)
		}
		break
	}
	data := resp.GetPayload().GetData()
	if sum := resp.GetPayload().DataCrc32C; sum != nil && int64(crc32.Checksum(data, crc32c)) != *sum {
		return "", fmt.Errorf("gcp-sm: the payload of %s does not match its CRC32C checksum: it was corrupted on the way; try again, and check any proxy between airlock and Google (reference %s)", r.name(), r)
	}
	return string(data), nil
}

// gcpError turns an error of AccessSecretVersion into one that says what to do. It never
// repeats the server's message, which a hostile endpoint could fill with anything.
func gcpError(ctx context.Context, r gcpRef, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	var herr *googleapi.Error
	if !errors.As(err, &herr) {
		if ae, ok := apierror.FromError(err); ok && ae.HTTPCode() < 0 {
			return fmt.Errorf("gcp-sm: reading %s failed with %s: check the service (reference %s)", r.name(), ae.GRPCStatus().Code(), r)
		}
		var aerr *auth.Error
		if errors.As(err, &aerr) {
			code := 0
			if aerr.Response != nil {
				code = aerr.Response.StatusCode
			}
			return fmt.Errorf("gcp-sm: reading %s: Google's token endpoint refused the host's credentials (HTTP status %d): check the service account key is valid and not deleted, or the workload identity (reference %s): %w", r.name(), code, r, ErrDenied)
		}
		return fmt.Errorf("gcp-sm: reading %s: cannot reach Secret Manager: check the network and any proxy (reference %s)", r.name(), r)
	}
	var body struct {
		Error struct {
			Status  string `json:"status"`
			Message string `json:"message"`
		} `json:"error"`
	}
	_ = json.Unmarshal([]byte(herr.Body), &body)
	status, msg := body.Error.Status, body.Error.Message
	switch {
	case herr.Code == http.StatusNotFound || status == "NOT_FOUND":
		what := "there is no secret " + r.secret + " in project " + r.project
		if r.version != "latest" {
			what += " with a version " + r.version
		} else {
			what += " with an enabled version"
		}
		return fmt.Errorf("gcp-sm: %s: create it (gcloud secrets create %s --project %s; gcloud secrets versions add %s --data-file=-) or fix the reference %s: %w",
			what, r.secret, r.project, r.secret, r, ErrNotFound)
	case herr.Code == http.StatusForbidden || status == "PERMISSION_DENIED":
		return fmt.Errorf("gcp-sm: permission denied reading %s: grant the host's service account the role roles/secretmanager.secretAccessor on secret %s (gcloud secrets add-iam-policy-binding %s --project %s --member serviceAccount:SA_EMAIL --role roles/secretmanager.secretAccessor) (reference %s): %w",
			r.name(), r.secret, r.secret, r.project, r, ErrDenied)
	case herr.Code == http.StatusUnauthorized || status == "UNAUTHENTICATED":
		return fmt.Errorf("gcp-sm: Secret Manager refused the host's Google credentials reading %s: check the service account key has not been deleted or disabled (reference %s): %w", r.name(), r, ErrDenied)
	case status == "FAILED_PRECONDITION" && strings.Contains(msg, "DISABLED"):
		return fmt.Errorf("gcp-sm: version %s of secret %s is disabled: enable it (gcloud secrets versions enable %s --secret %s --project %s) or point the reference %s at another version: %w",
			r.version, r.secret, r.version, r.secret, r.project, r, ErrNotFound)
	case status == "FAILED_PRECONDITION" && strings.Contains(msg, "DESTROYED"):
		return fmt.Errorf("gcp-sm: version %s of secret %s is destroyed and cannot come back: add a new version and point the reference %s at it (or at latest): %w",
			r.version, r.secret, r, ErrNotFound)
	case herr.Code == http.StatusBadRequest:
		return fmt.Errorf("gcp-sm: Secret Manager refused the name %s as invalid (%s): %s: %w", r.name(), status, gcpRefHelp, ErrBadReference)
	}
	return fmt.Errorf("gcp-sm: reading %s failed with HTTP status %d: check the service (reference %s)", r.name(), herr.Code, r)
}
