package main

import (
	"bytes"
	"encoding/json"
	"net/url"
	"regexp"
	"strings"

	"github.com/airlock-dev/airlock/pdk"
)

const (
	// credential is the manifest's credential slot: an OAuth access token the host obtains
	// (JWT bearer flow), refreshes and injects as a bearer.
	credential = "salesforce"

	// connectionInstanceKey is the config key under which the host exposes the instance_url of
	// the slot's token response (connection metadata, not secret).
	connectionInstanceKey = "connection." + credential + ".instance_url"
	// staticInstanceKey is the manifest config key an admin fills when the slot holds a static
	// token (no token response, so no connection metadata). The connection's value wins.
	staticInstanceKey = "instance_url"

	defaultAPIVersion = "v61.0"
	// defaultObjects are the sObjects the record tools and soql_query may touch unless the grant
	// says otherwise: the core CRM objects. Users, profiles, permission sets, setup objects and
	// files are deliberately absent.
	defaultObjects = "Account,Contact,Lead,Opportunity,Case"
)

var (
	apiVersionRE = regexp.MustCompile(`^v[0-9]{2,3}\.0$`)
	// recordIDRE is a Salesforce record ID: 15 characters (case-sensitive) or 18 (with the
	// case-insensitive checksum).
	recordIDRE = regexp.MustCompile(`^[a-zA-Z0-9]{15}([a-zA-Z0-9]{3})?$`)
	// nextRecordsRE is the only shape of nextRecordsUrl the connector follows.
	nextRecordsRE = regexp.MustCompile(`^/services/data/v[0-9]{2,3}\.0/query/[A-Za-z0-9]{15,18}-[0-9]{1,9}$`)
)

// settings are the connector's non-secret settings for this call.
type settings struct {
	instance   string   // https://acme.my.salesforce.com
	apiVersion string   // v61.0
	objects    []string // allowed sObjects, canonical spelling
}

// loadSettings reads the instance URL, API version and allowed objects.
func loadSettings() (*settings, error) {
	inst, ok := pdk.Config(connectionInstanceKey)
	if !ok {
		inst, ok = pdk.Config(staticInstanceKey)
	}
	if !ok {
		return nil, pdk.Fatal("not_connected",
			"the Salesforce connection has no instance URL yet: ask an admin to connect the Salesforce account (or, for a static token, to set instance_url in the grant)")
	}
	origin, ok := instanceOrigin(inst)
	if !ok {
		return nil, pdk.Fatal("bad_config",
			"the Salesforce instance URL is not an https origin such as https://acme.my.salesforce.com: ask an admin to fix the connection")
	}
	s := &settings{instance: origin, apiVersion: defaultAPIVersion}
	if v, ok := pdk.Config("api_version"); ok {
		if !apiVersionRE.MatchString(v) {
			return nil, pdk.Fatal("bad_config", "api_version %q is not a Salesforce API version such as v61.0: ask an admin to fix the grant", v)
		}
		s.apiVersion = v
	}
	list := defaultObjects
	if v, ok := pdk.Config("objects"); ok {
		list = v
	}
	for _, o := range strings.Split(list, ",") {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		if !validObject(o) {
			return nil, pdk.Fatal("bad_config", "the objects setting names %q, which is not an sObject name: ask an admin to fix the grant", o)
		}
		s.objects = append(s.objects, o)
	}
	return s, nil
}

// instanceOrigin checks that u is an https origin (no path, query or user info) and returns it
// without a trailing slash.
func instanceOrigin(u string) (string, bool) {
	p, err := url.Parse(strings.TrimSpace(u))
	if err != nil || p.Scheme != "https" || p.Host == "" || p.User != nil || p.RawQuery != "" || p.Fragment != "" ||
		(p.Path != "" && p.Path != "/") || p.Opaque != "" {
		return "", false
	}
	return "https://" + strings.ToLower(p.Host), true
}

// object returns the canonical spelling of an allowed object, or a correctable error.
func (s *settings) object(name string) (string, error) {
	for _, o := range s.objects {
		if strings.EqualFold(o, name) {
			return o, nil
		}
	}
	return "", pdk.Correctable("object_not_allowed",
		"object %q is not available through this connector; the allowed objects are %s (an admin can change the list)",
		truncate(name, 80), strings.Join(s.objects, ", "))
}

func (s *settings) dataURL(path string) string {
	return s.instance + "/services/data/" + s.apiVersion + path
}

// request is one call to the Salesforce REST API.
type request struct {
	method  string
	url     string
	body    any
	key     string              // idempotency key, for a write the host may replay
	headers map[string][]string // extra headers
	what    string              // for messages: "the query", "Account 001…"
	object  string
	id      string
}

// send sends r and decodes a 2xx JSON answer into out (nil to ignore the body). A non-2xx answer
// becomes the tool error of mapError.
func send(r request, out any) (pdk.HTTPResponse, error) {
	req := pdk.HTTPRequest{Method: r.method, URL: r.url, Credential: credential, IdempotencyKey: r.key,
		Headers: map[string][]string{"Accept": {"application/json"}}}
	for k, v := range r.headers {
		req.Headers[k] = v
	}
	if r.body != nil {
		b, err := json.Marshal(r.body)
		if err != nil {
			return pdk.HTTPResponse{}, pdk.Fatal(pdk.CodeInternal, "the connector could not encode the request to Salesforce")
		}
		req.Body = b
		req.Headers["Content-Type"] = []string{"application/json"}
	}
	resp, err := pdk.HTTP(req)
	if err != nil {
		return resp, err // a host refusal: already agent-readable
	}
	if resp.Status < 200 || resp.Status > 299 {
		return resp, mapError(resp, r)
	}
	if out != nil {
		dec := json.NewDecoder(bytes.NewReader(resp.Body))
		dec.UseNumber()
		if err := dec.Decode(out); err != nil {
			return resp, pdk.Fatal("unexpected_response", "Salesforce sent an answer to %s that this connector cannot read", r.what)
		}
	}
	return resp, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
