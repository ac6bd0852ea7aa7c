package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/pdk"
)

// sfError is one element of the error array Salesforce answers with:
// [{"message": "…", "errorCode": "INVALID_FIELD", "fields": ["Name"]}].
type sfError struct {
	Message   string   `json:"message"`
	ErrorCode string   `json:"errorCode"`
	Fields    []string `json:"fields"`
}

var (
	noSuchColumnRE = regexp.MustCompile(`No such column '([^']{1,120})'`)
	criterionRE    = regexp.MustCompile(`for field '([^']{1,120})'`)
	spaceRE        = regexp.MustCompile(`\s+`)
)

// concurrencyWait is the retry_after of a ConcurrentPerOrgLongTxn refusal (as the host's).
const concurrencyWait = 5 * time.Second

// upstreamText makes a Salesforce message fit a sentence: one line, bounded.
func upstreamText(s string) string {
	return truncate(strings.TrimSpace(spaceRE.ReplaceAllString(s, " ")), 300)
}

// mapError turns a non-2xx Salesforce answer into a tool error an agent can act on
// (DESIGN.md, "Error categories").
func mapError(resp pdk.HTTPResponse, r request) error {
	var errs []sfError
	_ = json.Unmarshal(resp.Body, &errs)
	var e sfError
	if len(errs) > 0 {
		e = errs[0]
	}
	msg := upstreamText(e.Message)
	said := ""
	if msg != "" {
		said = " Salesforce said: " + msg
	}
	fields := strings.Join(e.Fields, ", ")

	switch {
	case e.ErrorCode == "INVALID_SESSION_ID" || resp.Status == 401:
		// The host has already renewed the token and replayed the request once.
		return pdk.Fatal("credential_rejected",
			"Salesforce rejected the connection's session even after it was renewed; ask an admin to reconnect the Salesforce account (check the connected app, the integration user and its session policies)")
	case e.ErrorCode == "REQUEST_LIMIT_EXCEEDED" && strings.Contains(e.Message, "ConcurrentPerOrgLongTxn"):
		// Too many requests of 20 s or more run at once in the org: clears within seconds.
		return pdk.Retryable(pdk.CodeRateLimited, concurrencyWait,
			"Salesforce is busy with too many long-running requests in the org at once (ConcurrentPerOrgLongTxn); try again in a few seconds, and keep queries narrow so they finish quickly")
	case e.ErrorCode == "REQUEST_LIMIT_EXCEEDED":
		usage := ""
		if u := limitInfo(resp.Headers); u != "" {
			usage = " (" + u + ")"
		}
		return pdk.Retryable("quota_exhausted", 0,
			"the Salesforce org has used up its API request allowance%s, which Salesforce counts over a rolling 24 hours; do not retry now: try again in a few hours, or ask an admin to raise the org's limit", usage)
	case resp.Status == 410:
		return pdk.Correctable("api_version_retired",
			"Salesforce has retired the REST API version this connector is set to use; ask an admin to set api_version in the grant to a supported version such as %s", defaultAPIVersion)
	case e.ErrorCode == "NOT_FOUND" || resp.Status == 404:
		if r.id != "" {
			return pdk.Correctable("not_found",
				"Salesforce has no %s record with ID %s that the integration user can see: check the ID (soql_query can find records by name)", r.object, r.id)
		}
		return pdk.Correctable("not_found",
			"Salesforce does not offer %s on this org (the object or the API version may not exist): ask an admin to check the objects and api_version settings", r.what)
	case e.ErrorCode == "INVALID_FIELD" || (e.ErrorCode == "INVALID_FIELD_FOR_INSERT_UPDATE" && fields == ""):
		field := fields
		if m := noSuchColumnRE.FindStringSubmatch(e.Message); m != nil {
			field = m[1]
		} else if m := criterionRE.FindStringSubmatch(e.Message); m != nil {
			field = m[1]
		}
		if field == "" {
			field = "(not named)"
		}
		return pdk.Correctable("invalid_field",
			"Salesforce refused field %s in %s: check its API name (custom fields end in __c), that it exists on the object and that the value has the field's type (dates need type date or datetime).%s",
			field, r.what, said)
	case e.ErrorCode == "INVALID_TYPE":
		return pdk.Correctable("invalid_type", "Salesforce does not know the object in %s or the integration user cannot see it.%s", r.what, said)
	case e.ErrorCode == "MALFORMED_QUERY":
		return pdk.Correctable("malformed_query", "Salesforce could not parse the query: simplify the conditions and check the values.%s", said)
	case e.ErrorCode == "PRECONDITION_FAILED" || resp.Status == 412:
		return pdk.Retryable("conflict", 0, "%s changed in Salesforce while this call was running; call the tool again to work on the current values", r.what)
	case strings.HasPrefix(e.ErrorCode, "INSUFFICIENT_ACCESS") || e.ErrorCode == "API_DISABLED_FOR_ORG" ||
		e.ErrorCode == "API_CURRENTLY_DISABLED" || e.ErrorCode == "FUNCTIONALITY_NOT_ENABLED":
		return pdk.Correctable("permission_denied",
			"the Salesforce integration user may not do this (%s on %s): ask an admin to adjust its profile or permission sets.%s", e.ErrorCode, r.what, said)
	case resp.Status == 429:
		after := pdk.RetryAfter(resp.Headers)
		return pdk.Retryable(pdk.CodeRateLimited, after, "Salesforce is rate limiting requests; try again later")
	case resp.Status >= 500 || e.ErrorCode == "SERVER_UNAVAILABLE" || e.ErrorCode == "UNABLE_TO_LOCK_ROW":
		return pdk.Retryable(pdk.CodeUnavailable, 0, "Salesforce is having trouble (HTTP %d %s); try again in a minute", resp.Status, e.ErrorCode)
	case e.ErrorCode != "":
		code := strings.ToLower(e.ErrorCode)
		if fields != "" {
			return pdk.Correctable(code, "Salesforce refused %s (%s, fields: %s): change the values and try again.%s", r.what, e.ErrorCode, fields, said)
		}
		return pdk.Correctable(code, "Salesforce refused %s (%s): change the request and try again.%s", r.what, e.ErrorCode, said)
	case resp.Status >= 400 && resp.Status < 500:
		return pdk.Correctable("upstream_refused", "Salesforce refused %s with HTTP %d", r.what, resp.Status)
	default:
		return pdk.Fatal("unexpected_response", "Salesforce answered %s with HTTP %d, which this connector does not expect", r.what, resp.Status)
	}
}

// limitInfo returns the api-usage item of Sforce-Limit-Info ("api-usage=15000/15000"), or "".
// Salesforce separates the header's items with ";": "api-usage=18/5000;
// per-app-api-usage=17/250(appName=sample-app)".
func limitInfo(h map[string][]string) string {
	for _, part := range strings.Split(pdk.Header(h, "Sforce-Limit-Info"), ";") {
		if p := strings.TrimSpace(part); strings.HasPrefix(p, "api-usage=") {
			return truncate(p, 60)
		}
	}
	return ""
}
