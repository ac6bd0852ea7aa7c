// Package awsfake is a local stand-in for AWS Secrets Manager and Systems Manager Parameter
// Store, for tests: it speaks their documented wire protocol (AWS JSON 1.1 over POST /, the
// operation in X-Amz-Target, errors as {"__type": …, "message": …} with HTTP 400) closely
// enough that the unmodified aws-sdk-go-v2 clients talk to it through a custom endpoint, and it
// verifies every request's Signature Version 4 with its own implementation of the documented
// algorithm (canonical request, string to sign, derived signing key), refusing a wrong
// signature, an unknown key, a skewed clock and a wrong region or service with the error codes
// AWS uses.
//
// It implements GetSecretValue (by name or ARN, VersionId, VersionStage), PutSecretValue (the new
// version becomes AWSCURRENT, the old one AWSPREVIOUS), GetParameter (WithDecryption, NAME:VERSION
// and NAME:LABEL selectors) and PutParameter (Overwrite makes a new version). Not KMS, policies,
// pagination of list calls, nor anything else.
package awsfake

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Server is the fake. Set its fields before serving; use its methods to change data.
type Server struct {
	// Region the fake is in; requests signed for another are refused. Default "us-east-1".
	Region string
	// Account is the 12-digit account id in ARNs. Default "123456789012".
	Account string
	// Keys maps access key ids to secret access keys accepted.
	Keys map[string]string
	// Now is the fake's clock for the signature's time check. Nil means time.Now.
	Now func() time.Time

	mu      sync.Mutex
	secrets map[string]*smSecret // by name
	params  map[string]*param
	denied  map[string]bool // names whose reads are AccessDenied
	calls   map[string]int  // operation → count of signed, accepted calls
}

type smVersion struct {
	id     string
	str    *string
	bin    []byte
	stages []string
}

type smSecret struct {
	name, arn string
	versions  []*smVersion
}

type paramVersion struct {
	value  string
	labels []string
}

type param struct {
	typ      string
	versions []paramVersion // version n is versions[n-1]
}

func (s *Server) init() {
	if s.secrets == nil {
		s.secrets, s.params, s.denied, s.calls = map[string]*smSecret{}, map[string]*param{}, map[string]bool{}, map[string]int{}
	}
	if s.Region == "" {
		s.Region = "us-east-1"
	}
	if s.Account == "" {
		s.Account = "123456789012"
	}
}

func newID() string {
	b := make([]byte, 16)
	rand.Read(b)
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// PutSecret stores value as the AWSCURRENT version of secret name (created if absent), moving
// AWSPREVIOUS to the version that was current, as PutSecretValue does. It returns the version id.
func (s *Server) PutSecret(name, value string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.putSecret(name, &value, nil)
}

// PutBinarySecret stores a SecretBinary version.
func (s *Server) PutBinarySecret(name string, value []byte) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.putSecret(name, nil, value)
}

func (s *Server) putSecret(name string, str *string, bin []byte) string {
	s.init()
	sec := s.secrets[name]
	if sec == nil {
		sec = &smSecret{name: name, arn: fmt.Sprintf("arn:aws:secretsmanager:%s:%s:secret:%s-%s", s.Region, s.Account, name, newID()[:6])}
		s.secrets[name] = sec
	}
	for _, v := range sec.versions {
		v.stages = remove(v.stages, "AWSPREVIOUS")
		if has(v.stages, "AWSCURRENT") {
			v.stages = append(remove(v.stages, "AWSCURRENT"), "AWSPREVIOUS")
		}
	}
	v := &smVersion{id: newID(), str: str, bin: bin, stages: []string{"AWSCURRENT"}}
	sec.versions = append(sec.versions, v)
	return v.id
}

// ARN returns the ARN of secret name ("" if absent).
func (s *Server) ARN(name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.init()
	if sec := s.secrets[name]; sec != nil {
		return sec.arn
	}
	return ""
}

// PutParameter stores value as a new version of parameter name, of type typ ("SecureString",
// "String").
func (s *Server) PutParameter(name, typ, value string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.init()
	p := s.params[name]
	if p == nil {
		p = &param{typ: typ}
		s.params[name] = p
	}
	p.versions = append(p.versions, paramVersion{value: value})
	return len(p.versions)
}

// LabelParameter puts label on version n of parameter name.
func (s *Server) LabelParameter(name string, n int, label string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.params[name].versions {
		s.params[name].versions[i].labels = remove(s.params[name].versions[i].labels, label)
	}
	s.params[name].versions[n-1].labels = append(s.params[name].versions[n-1].labels, label)
}

// Deny makes reads of the secret or parameter name fail with AccessDeniedException.
func (s *Server) Deny(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.init()
	s.denied[name] = true
}

// Calls returns how many signed requests for operation (such as "GetSecretValue") it accepted.
func (s *Server) Calls(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.init()
	return s.calls[op]
}

func has(l []string, x string) bool {
	for _, y := range l {
		if y == x {
			return true
		}
	}
	return false
}

func remove(l []string, x string) []string {
	out := l[:0:0]
	for _, y := range l {
		if y != x {
			out = append(out, y)
		}
	}
	return out
}

type apiErr struct{ code, msg string }

func fail(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	w.Header().Set("X-Amzn-ErrorType", code)
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"__type": code, "message": msg})
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.init()
	s.mu.Unlock()
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil || r.Method != http.MethodPost || r.URL.Path != "/" {
		fail(w, 400, "SerializationException", "expected POST / with a JSON body")
		return
	}
	svc, op, _ := strings.Cut(r.Header.Get("X-Amz-Target"), ".")
	var signingName string
	switch svc {
	case "secretsmanager":
		signingName = "secretsmanager"
	case "AmazonSSM":
		signingName = "ssm"
	default:
		fail(w, 400, "UnknownOperationException", "")
		return
	}
	if code, msg := s.verify(r, body, signingName); code != "" {
		status := 400
		if code == "MissingAuthenticationTokenException" {
			status = 403
		}
		fail(w, status, code, msg)
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/x-amz-json-1.1" {
		fail(w, 400, "SerializationException", "Content-Type must be application/x-amz-json-1.1")
		return
	}
	var in map[string]any
	if err := json.Unmarshal(body, &in); err != nil {
		fail(w, 400, "SerializationException", "malformed JSON")
		return
	}
	s.mu.Lock()
	out, e := s.call(svc+"."+op, in)
	if e == nil {
		s.calls[op]++
	}
	s.mu.Unlock()
	if e != nil {
		fail(w, 400, e.code, e.msg)
		return
	}
	w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	json.NewEncoder(w).Encode(out)
}

func str(in map[string]any, k string) string { s, _ := in[k].(string); return s }

func (s *Server) call(target string, in map[string]any) (any, *apiErr) {
	switch target {
	case "secretsmanager.GetSecretValue":
		sec, e := s.findSecret(str(in, "SecretId"))
		if e != nil {
			return nil, e
		}
		id, stage := str(in, "VersionId"), str(in, "VersionStage")
		if id == "" && stage == "" {
			stage = "AWSCURRENT"
		}
		for _, v := range sec.versions {
			if (id == "" || v.id == id) && (stage == "" || has(v.stages, stage)) {
				out := map[string]any{"ARN": sec.arn, "Name": sec.name, "VersionId": v.id, "VersionStages": v.stages, "CreatedDate": 1.7e9}
				if v.str != nil {
					out["SecretString"] = *v.str
				} else {
					out["SecretBinary"] = base64.StdEncoding.EncodeToString(v.bin)
				}
				return out, nil
			}
		}
		if stage != "" {
			return nil, &apiErr{"ResourceNotFoundException", "Secrets Manager can't find the specified secret value for staging label: " + stage}
		}
		return nil, &apiErr{"ResourceNotFoundException", "Secrets Manager can't find the specified secret value for VersionId: " + id}
	case "secretsmanager.PutSecretValue":
		sec, e := s.findSecret(str(in, "SecretId"))
		if e != nil {
			return nil, e
		}
		v := str(in, "SecretString")
		id := s.putSecret(sec.name, &v, nil)
		return map[string]any{"ARN": sec.arn, "Name": sec.name, "VersionId": id, "VersionStages": []string{"AWSCURRENT"}}, nil
	case "AmazonSSM.GetParameter":
		full := str(in, "Name")
		name, sel, _ := strings.Cut(strings.TrimPrefix(full, fmt.Sprintf("arn:aws:ssm:%s:%s:parameter", s.Region, s.Account)), ":")
		if s.denied[name] {
			return nil, &apiErr{"AccessDeniedException", fmt.Sprintf("User: arn:aws:iam::%s:user/airlock is not authorized to perform: ssm:GetParameter on resource: arn:aws:ssm:%s:%s:parameter%s because no identity-based policy allows the ssm:GetParameter action", s.Account, s.Region, s.Account, name)}
		}
		p := s.params[name]
		if p == nil {
			return nil, &apiErr{"ParameterNotFound", ""}
		}
		n := len(p.versions)
		if sel != "" {
			n = 0
			if v, err := strconv.Atoi(sel); err == nil {
				if v < 1 || v > len(p.versions) {
					return nil, &apiErr{"ParameterVersionNotFound", fmt.Sprintf("Systems Manager could not find version %d of %s. Verify the version and try again.", v, name)}
				}
				n = v
			} else {
				for i, pv := range p.versions {
					if has(pv.labels, sel) {
						n = i + 1
					}
				}
				if n == 0 {
					return nil, &apiErr{"ParameterNotFound", ""}
				}
			}
		}
		val := p.versions[n-1].value
		if p.typ == "SecureString" && in["WithDecryption"] != true {
			val = base64.StdEncoding.EncodeToString([]byte("kms-ciphertext-" + strconv.Itoa(n)))
		}
		return map[string]any{"Parameter": map[string]any{
			"Name": name, "Type": p.typ, "Value": val, "Version": n, "DataType": "text", "LastModifiedDate": 1.7e9,
			"ARN": fmt.Sprintf("arn:aws:ssm:%s:%s:parameter%s", s.Region, s.Account, name)}}, nil
	}
	return nil, &apiErr{"UnknownOperationException", ""}
}

func (s *Server) findSecret(id string) (*smSecret, *apiErr) {
	for _, sec := range s.secrets {
		if sec.name == id || sec.arn == id {
			if s.denied[sec.name] {
				return nil, &apiErr{"AccessDeniedException", fmt.Sprintf("User: arn:aws:iam::%s:user/airlock is not authorized to perform: secretsmanager:GetSecretValue on resource: %s because no identity-based policy allows the secretsmanager:GetSecretValue action", s.Account, id)}
			}
			return sec, nil
		}
	}
	return nil, &apiErr{"ResourceNotFoundException", "Secrets Manager can't find the specified secret."}
}

// verify checks r's Signature Version 4 (AWS4-HMAC-SHA256 in the Authorization header) for
// service, following the documented algorithm. It returns the AWS error code and message, or
// "" when the signature is valid.
func (s *Server) verify(r *http.Request, body []byte, service string) (code, msg string) {
	auth := r.Header.Get("Authorization")
	alg, params, ok := strings.Cut(auth, " ")
	if auth == "" {
		return "MissingAuthenticationTokenException", "Missing Authentication Token"
	}
	if !ok || alg != "AWS4-HMAC-SHA256" {
		return "IncompleteSignatureException", "Unsupported authorization algorithm"
	}
	fields := map[string]string{}
	for _, f := range strings.Split(params, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(f), "=")
		fields[k] = v
	}
	cred, signed, sig := fields["Credential"], fields["SignedHeaders"], fields["Signature"]
	parts := strings.Split(cred, "/")
	if len(parts) != 5 || signed == "" || sig == "" || parts[4] != "aws4_request" {
		return "IncompleteSignatureException", "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters"
	}
	keyID, day, region, svc := parts[0], parts[1], parts[2], parts[3]
	secretKey, known := s.Keys[keyID]
	if !known {
		return "UnrecognizedClientException", "The security token included in the request is invalid."
	}
	amzDate := r.Header.Get("X-Amz-Date")
	t, err := time.Parse("20060102T150405Z", amzDate)
	if err != nil {
		return "IncompleteSignatureException", "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	if d := now().Sub(t); d > 5*time.Minute || d < -5*time.Minute {
		return "InvalidSignatureException", fmt.Sprintf("Signature expired: %s is now earlier than %s (%s - 5 min.)", amzDate, now().UTC().Add(-5*time.Minute).Format("20060102T150405Z"), now().UTC().Format("20060102T150405Z"))
	}
	if day != amzDate[:8] {
		return "InvalidSignatureException", "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '" + day + "' != '" + amzDate[:8] + "'"
	}
	if region != s.Region {
		return "InvalidSignatureException", fmt.Sprintf("Credential should be scoped to a valid region, not '%s'. ", region)
	}
	if svc != service {
		return "InvalidSignatureException", fmt.Sprintf("Credential should be scoped to correct service: '%s'. ", service)
	}
	names := strings.Split(signed, ";")
	if !sort.StringsAreSorted(names) || !has(names, "host") || !has(names, "x-amz-date") {
		return "InvalidSignatureException", "SignedHeaders must be sorted and include host and x-amz-date"
	}
	var canonHeaders strings.Builder
	for _, n := range names {
		var vals []string
		switch n {
		case "host":
			vals = []string{r.Host}
		case "content-length":
			vals = []string{strconv.FormatInt(r.ContentLength, 10)}
		default:
			vals = r.Header.Values(n)
		}
		for i, v := range vals {
			vals[i] = strings.Join(strings.Fields(v), " ")
		}
		canonHeaders.WriteString(n + ":" + strings.Join(vals, ",") + "\n")
	}
	payload := sha256.Sum256(body)
	if h := r.Header.Get("X-Amz-Content-Sha256"); h != "" && h != hex.EncodeToString(payload[:]) {
		return "InvalidSignatureException", "The provided 'x-amz-content-sha256' header does not match what was computed."
	}
	canonical := strings.Join([]string{
		r.Method,
		canonicalURI(r.URL.EscapedPath()),
		canonicalQuery(r.URL.Query()),
		canonHeaders.String(),
		signed,
		hex.EncodeToString(payload[:]),
	}, "\n")
	crHash := sha256.Sum256([]byte(canonical))
	scope := day + "/" + region + "/" + svc + "/aws4_request"
	stringToSign := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(crHash[:])
	k := hmacSHA256([]byte("AWS4"+secretKey), day)
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, svc)
	k = hmacSHA256(k, "aws4_request")
	want := hex.EncodeToString(hmacSHA256(k, stringToSign))
	if !hmac.Equal([]byte(want), []byte(sig)) {
		return "InvalidSignatureException", "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
	}
	return "", ""
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}

func canonicalURI(p string) string {
	if p == "" {
		return "/"
	}
	return p
}

func canonicalQuery(q url.Values) string {
	var pairs []string
	for k, vs := range q {
		for _, v := range vs {
			pairs = append(pairs, awsEscape(k)+"="+awsEscape(v))
		}
	}
	sort.Strings(pairs)
	return strings.Join(pairs, "&")
}

// awsEscape is SigV4's URI encoding: every byte but A-Z a-z 0-9 - _ . ~ as %XY, upper case.
func awsEscape(s string) string {
	var b strings.Builder
	for _, c := range []byte(s) {
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}
