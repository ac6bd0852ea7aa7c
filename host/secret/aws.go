package secret

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/smithy-go"
)

// DefaultAWSCacheTTL is how long [AWS] reuses a secret it read, when [AWSConfig.CacheTTL] is zero.
const DefaultAWSCacheTTL = 30 * time.Second

// AWSConfig configures an [AWS] source. The zero value uses the SDK's standard chain: the
// AWS_* environment variables, the shared config and credentials files (~/.aws), web identity,
// ECS and EC2 instance roles.
type AWSConfig struct {
	// Region such as "eu-west-1". Empty means AWS_REGION / the profile's region.
	Region string
	// Profile is the shared config profile. Empty means AWS_PROFILE, then "default".
	Profile string
	// Endpoint overrides the service endpoints (a VPC endpoint, a local test server): both
	// Secrets Manager and Parameter Store are sent there. Empty means AWS's own.
	Endpoint string
	// CacheTTL is how long a value read is reused. Zero means [DefaultAWSCacheTTL]; a negative
	// value disables the cache.
	CacheTTL time.Duration
	// Now is the cache's clock. Nil means time.Now.
	Now func() time.Time
}

// AWS resolves references to AWS Secrets Manager secrets and Systems Manager Parameter Store
// parameters, with the official SDK (aws-sdk-go-v2) and the standard credential chain:
//
//	aws-sm:NAME_OR_ARN                       the secret string (its AWSCURRENT version)
//	aws-sm:NAME_OR_ARN#KEY                   the string KEY of a secret holding a JSON object
//	aws-sm:NAME_OR_ARN?stage=AWSPREVIOUS     a version by staging label (also with #KEY after it)
//	aws-sm:NAME_OR_ARN?version_id=UUID       a version by its id
//	aws-ssm:/PATH/NAME                       a parameter (SecureString decrypted), latest version
//	aws-ssm:/PATH/NAME?version=3             version 3; ?label=prod: the version labelled prod
//
// The selector is a '?' query and the JSON key a '#' fragment, as in a URL, because names may
// contain '@' (and ARNs ':'), but neither '?' nor '#'. Reads are cached for
// [AWSConfig.CacheTTL], except under [WithFreshRead]. Errors wrap [ErrNotFound], [ErrDenied] (naming
// the IAM action to grant) or [ErrBadReference], name the reference, and never carry a value.
// Binary secrets (SecretBinary) are refused: store the secret as a string. An AWS is safe for
// concurrent use.
type AWS struct {
	sm       *secretsmanager.Client
	ssm      *ssm.Client
	region   string
	endpoint string
	ttl      time.Duration
	now      func() time.Time
	cache    *ttlCache[string] // what was read, by reference without its #key
}

// NewAWS loads the AWS configuration (it does not contact AWS; the first [AWS.Resolve] does).
func NewAWS(ctx context.Context, cfg *AWSConfig) (*AWS, error) {
	var c AWSConfig
	if cfg != nil {
		c = *cfg
	}
	var opts []func(*awsconfig.LoadOptions) error
	if c.Region != "" {
		opts = append(opts, awsconfig.WithRegion(c.Region))
	}
	if c.Profile != "" {
		opts = append(opts, awsconfig.WithSharedConfigProfile(c.Profile))
	}
	opts = append(opts, awsconfig.WithRetryMaxAttempts(2))
	ac, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		// The SDK's message names files and profiles, never a key.
		return nil, fmt.Errorf("aws: loading the AWS configuration: %w", err)
	}
	if ac.Region == "" {
		return nil, errors.New("aws: no region: set region in the aws: block of the configuration, AWS_REGION, or the profile's region")
	}
	a := &AWS{region: ac.Region, endpoint: c.Endpoint, ttl: c.CacheTTL, now: c.Now}
	if c.Endpoint != "" {
		if u, err := url.Parse(c.Endpoint); err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
			return nil, errors.New("aws: endpoint must be a URL such as https://secretsmanager.eu-west-1.amazonaws.com")
		}
		ac.BaseEndpoint = aws.String(c.Endpoint)
	}
	a.sm = secretsmanager.NewFromConfig(ac)
	a.ssm = ssm.NewFromConfig(ac)
	if a.ttl == 0 {
		a.ttl = DefaultAWSCacheTTL
	}
	if a.now == nil {
		a.now = time.Now
	}
	a.cache = newTTLCache[string](a.ttl, a.now)
	return a, nil
}

// awsRef is a parsed "aws-sm:" or "aws-ssm:" reference.
type awsRef struct {
	scheme        string // "aws-sm" or "aws-ssm"
	name          string // secret name or ARN; parameter name
	stage, verID  string // aws-sm selectors
	label, verNum string // aws-ssm selectors
	key           string // aws-sm JSON key
}

func (r awsRef) String() string {
	s := r.scheme + ":" + r.name
	switch {
	case r.stage != "":
		s += "?stage=" + r.stage
	case r.verID != "":
		s += "?version_id=" + r.verID
	case r.label != "":
		s += "?label=" + r.label
	case r.verNum != "":
		s += "?version=" + r.verNum
	}
	if r.key != "" {
		s += "#" + r.key
	}
	return s
}

const (
	awsSMHelp  = "write aws-sm:NAME_OR_ARN, aws-sm:NAME#JSON_KEY, aws-sm:NAME?stage=AWSPREVIOUS or aws-sm:NAME?version_id=ID, for example aws-sm:prod/slack#bot_token"
	awsSSMHelp = "write aws-ssm:/PATH/NAME, aws-ssm:/PATH/NAME?version=N or aws-ssm:/PATH/NAME?label=LABEL, for example aws-ssm:/prod/slack/bot-token"
)

var (
	awsSMName    = regexp.MustCompile(`^(arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]{1,512}|[A-Za-z0-9/_+=.@-]{1,512})$`)
	awsSSMName   = regexp.MustCompile(`^(arn:aws[a-z-]*:ssm:[a-z0-9-]+:\d{12}:parameter/[A-Za-z0-9/_.-]+|[A-Za-z0-9/_.-]+)$`)
	awsSelector  = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,256}$`)
	awsVersionID = regexp.MustCompile(`^[A-Za-z0-9-]{32,64}$`)
)

func parseAWSRef(ref string) (awsRef, error) {
	scheme, rest, ok := splitRef(ref)
	if !ok || (scheme != "aws-sm" && scheme != "aws-ssm") {
		return awsRef{}, fmt.Errorf(`aws source: the reference does not start with "aws-sm:" or "aws-ssm:": %s: %w`, awsSMHelp, ErrBadReference)
	}
	help := awsSMHelp
	if scheme == "aws-ssm" {
		help = awsSSMHelp
	}
	// Never echo the reference's parts: a malformed one may be a secret pasted by mistake.
	bad := func(what string) (awsRef, error) {
		return awsRef{}, fmt.Errorf("%s source: %s: %s: %w", scheme, what, help, ErrBadReference)
	}
	r := awsRef{scheme: scheme}
	loc, key, hasKey := strings.Cut(rest, "#")
	if hasKey {
		if scheme == "aws-ssm" {
			return bad("a parameter has no JSON keys ('#')")
		}
		if !validVaultField(key) {
			return bad("the JSON key after '#' is empty or has control characters")
		}
		r.key = key
	}
	name, query, hasQuery := strings.Cut(loc, "?")
	if hasQuery {
		sel, val, ok := strings.Cut(query, "=")
		if !ok || !awsSelector.MatchString(val) {
			return bad("the selector after '?' is not NAME=VALUE")
		}
		switch {
		case scheme == "aws-sm" && sel == "stage":
			r.stage = val
		case scheme == "aws-sm" && sel == "version_id" && awsVersionID.MatchString(val):
			r.verID = val
		case scheme == "aws-ssm" && sel == "label":
			r.label = val
		case scheme == "aws-ssm" && sel == "version":
			if n, err := strconv.Atoi(val); err != nil || n < 1 || val[0] == '+' || val[0] == '0' {
				return bad("the version after '?version=' is not a positive integer")
			}
			r.verNum = val
		default:
			return bad("unknown selector or malformed version id after '?'")
		}
	}
	valid := awsSMName
	if scheme == "aws-ssm" {
		valid = awsSSMName
	}
	if len(name) > 2048 || !valid.MatchString(name) {
		return bad("the name is empty, too long or has characters AWS does not allow in names")
	}
	r.name = name
	return r, nil
}

// Resolve implements [Source] for "aws-sm:" and "aws-ssm:" references.
func (a *AWS) Resolve(ctx context.Context, ref string) (Value, error) {
	if err := ctx.Err(); err != nil {
		return Value{}, err
	}
	r, err := parseAWSRef(ref)
	if err != nil {
		return Value{}, err
	}
	raw, err := a.read(ctx, r)
	if err != nil {
		return Value{}, err
	}
	if r.key == "" {
		if raw == "" {
			return Value{}, fmt.Errorf("%s: %s is empty: store the secret in it: %w", r.scheme, r, ErrNotFound)
		}
		return New(raw), nil
	}
	return jsonField(raw, r.key, "aws-sm: secret "+r.name, r.String())
}

// read returns the secret string or parameter value r names, from the cache or AWS.
func (a *AWS) read(ctx context.Context, r awsRef) (string, error) {
	k := r
	k.key = "" // one read serves every key of the secret
	key := k.String()
	if v, ok := a.cache.get(ctx, key); ok {
		return v, nil
	}
	var val string
	var err error
	if r.scheme == "aws-sm" {
		val, err = a.getSecret(ctx, r)
	} else {
		val, err = a.getParameter(ctx, r)
	}
	if err != nil {
		return "", err
	}
	a.cache.put(key, val)
	return val, nil
}

func (a *AWS) getSecret(ctx context.Context, r awsRef) (string, error) {
	in := &secretsmanager.GetSecretValueInput{SecretId: aws.String(r.name)}
	if r.stage != "" {
		in.VersionStage = aws.String(r.stage)
	}
	if r.verID != "" {
		in.VersionId = aws.String(r.verID)
	}
	out, err := a.sm.GetSecretValue(ctx, in)
	if err != nil {
		return "", a.apiError(ctx, r, err)
	}
	if out.SecretString == nil {
		if out.SecretBinary != nil {
			return "", fmt.Errorf("aws-sm: secret %s is binary (SecretBinary), which airlock does not use as a credential: store it as a secret string (reference %s)", r.name, r)
		}
		return "", fmt.Errorf("aws-sm: secret %s has no value: store one (reference %s): %w", r.name, r, ErrNotFound)
	}
	return *out.SecretString, nil
}

func (a *AWS) getParameter(ctx context.Context, r awsRef) (string, error) {
	name := r.name
	if r.verNum != "" {
		name += ":" + r.verNum
	} else if r.label != "" {
		name += ":" + r.label
	}
	out, err := a.ssm.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name), WithDecryption: aws.Bool(true)})
	if err != nil {
		return "", a.apiError(ctx, r, err)
	}
	if out.Parameter == nil || out.Parameter.Value == nil {
		return "", fmt.Errorf("aws-ssm: parameter %s has no value (reference %s): %w", r.name, r, ErrNotFound)
	}
	return *out.Parameter.Value, nil
}

// apiError turns an SDK error into one that says what to do. The SDK's own messages are not
// included: AWS puts the caller's ARN in them, which an agent need not see.
func (a *AWS) apiError(ctx context.Context, r awsRef, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	what, action := "secret", "secretsmanager:GetSecretValue"
	if r.scheme == "aws-ssm" {
		what, action = "parameter", "ssm:GetParameter"
	}
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		where := "AWS in " + a.region
		if a.endpoint != "" {
			where = a.endpoint
		}
		return fmt.Errorf("%s: reading %s %s: cannot reach %s: check the network and the aws: region/endpoint (reference %s)", r.scheme, what, r.name, where, r)
	}
	switch code := ae.ErrorCode(); code {
	case "ResourceNotFoundException", "ParameterNotFound", "ParameterVersionNotFound":
		sel := ""
		if r.stage != "" || r.verID != "" || r.verNum != "" || r.label != "" {
			sel = " (or not the version the reference selects)"
		}
		return fmt.Errorf("%s: there is no %s %s in %s%s: check the name and region in %s: %w", r.scheme, what, r.name, a.region, sel, r, ErrNotFound)
	case "AccessDeniedException", "AccessDenied", "DecryptionFailure", "KMSAccessDeniedException":
		return fmt.Errorf("%s: AWS denied the host's identity reading %s %s: allow %s on it, and kms:Decrypt on its KMS key if it uses a customer managed key (reference %s): %w",
			r.scheme, what, r.name, action, r, ErrDenied)
	case "UnrecognizedClientException", "InvalidSignatureException", "IncompleteSignature", "ExpiredTokenException",
		"InvalidClientTokenId", "SignatureDoesNotMatch", "MissingAuthenticationToken":
		return fmt.Errorf("%s: AWS refused the host's credentials (%s) reading %s %s: check the access key, the session token's expiry, the region and the clock (reference %s): %w",
			r.scheme, code, what, r.name, r, ErrDenied)
	case "InvalidRequestException":
		return fmt.Errorf("%s: AWS cannot return %s %s now (deleted, scheduled for deletion, or the version selected has no value): restore it or change %s: %w", r.scheme, what, r.name, r, ErrNotFound)
	default:
		return fmt.Errorf("%s: reading %s %s failed with AWS error %s: check the secret and the host's AWS configuration (reference %s)", r.scheme, what, r.name, code, r)
	}
}
