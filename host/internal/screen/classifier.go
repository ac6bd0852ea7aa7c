package screen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// Classifier is an external prompt-injection classifier reached over HTTP (a team's own
// model). The host POSTs one JSON request per screened result and reads one JSON answer; the
// shapes are [ClassifierRequest] and [ClassifierResponse] (manifests/FORMAT.md, "screening").
type Classifier struct {
	// URL is where requests go (http or https). It is set by an admin in the grant and reached
	// by the host directly, not through the connector's egress rules: private addresses are
	// allowed, since classifiers usually run next to the host.
	URL string
	// Timeout bounds one classification (default DefaultClassifierTimeout).
	Timeout time.Duration
	// FailClosed withholds the result when the classifier gives no verdict (unreachable,
	// timeout, non-2xx, malformed answer); false lets it through, labelled.
	FailClosed bool
	// Client sends the requests (default: a client that follows no redirect).
	Client *http.Client
	// Header and Credential, if Credential is set, authenticate the host: each request carries
	// Header (default Authorization) with what Credential returns, read per request (so a
	// rotated secret takes effect). A Credential error counts as no verdict; its text is not
	// passed on.
	Header     string
	Credential func(context.Context) (string, error)
}

// DefaultClassifierTimeout is Classifier.Timeout when zero.
const DefaultClassifierTimeout = 2 * time.Second

// ClassifierVersion is the Version of every ClassifierRequest.
const ClassifierVersion = "airlock.screen.v1"

// maxItems and maxItemBytes bound what one request carries; maxAnswer bounds the answer read.
const (
	maxItems     = 1000
	maxItemBytes = 8 << 10
	maxAnswer    = 1 << 20
)

// ClassifierRequest is the body the host POSTs (Content-Type application/json).
type ClassifierRequest struct {
	Version   string `json:"version"` // ClassifierVersion
	Connector string `json:"connector"`
	Tool      string `json:"tool"`
	RequestID string `json:"request_id"`
	// Items are the result's strings of 16 bytes or more (first 8 KiB of each, at most 1000),
	// as the agent would read them, each with its JSON pointer.
	Items []ClassifierItem `json:"items"`
}

// ClassifierItem is one string to classify.
type ClassifierItem struct {
	Path string `json:"path"`
	Text string `json:"text"`
}

// ClassifierResponse is the answer the classifier must give with a 2xx status. Flagged lists
// the indexes (into Items) of the strings it considers injections; an empty list means none.
type ClassifierResponse struct {
	Flagged []ClassifierVerdict `json:"flagged"`
}

// ClassifierVerdict flags one item; Score and Label are informative.
type ClassifierVerdict struct {
	Index int     `json:"index"`
	Score float64 `json:"score,omitempty"`
	Label string  `json:"label,omitempty"`
}

func (c *Classifier) init() error {
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
		return fmt.Errorf("screening: classifier url %q must be an http or https URL without user info", c.URL)
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultClassifierTimeout
	}
	if c.Header == "" {
		c.Header = "Authorization"
	}
	if c.Client == nil {
		c.Client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	return nil
}

// classify returns the indexes of items the classifier flags. Its errors say what went wrong
// without the URL's query or any text.
func (c *Classifier) classify(ctx context.Context, info Info, items []item) ([]int, error) {
	req := ClassifierRequest{Version: ClassifierVersion, Connector: info.Connector, Tool: info.Tool, RequestID: info.RequestID,
		Items: make([]ClassifierItem, len(items))}
	for i, it := range items {
		t := it.Text
		if len(t) > maxItemBytes {
			t = t[:maxItemBytes]
		}
		req.Items[i] = ClassifierItem{Path: it.Path, Text: t}
	}
	body, _ := json.Marshal(req)
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, c.URL, bytes.NewReader(body))
	if err != nil {
		return nil, errors.New("the classifier request could not be built")
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Accept", "application/json")
	if c.Credential != nil {
		v, err := c.Credential(ctx)
		if err != nil {
			return nil, errors.New("the classifier's credential could not be read (screening.classifier.auth.secret); the host log says why")
		}
		hr.Header.Set(c.Header, v)
	}
	resp, err := c.Client.Do(hr)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("the classifier did not answer within %s", c.Timeout)
		}
		return nil, errors.New("the classifier could not be reached")
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("the classifier answered HTTP %d", resp.StatusCode)
	}
	var out ClassifierResponse
	dec := json.NewDecoder(io.LimitReader(resp.Body, maxAnswer))
	if err := dec.Decode(&out); err != nil || out.Flagged == nil {
		return nil, errors.New(`the classifier's answer is not {"flagged":[…]}`)
	}
	var idx []int
	for _, v := range out.Flagged {
		if v.Index < 0 || v.Index >= len(items) {
			return nil, fmt.Errorf("the classifier flagged item %d of %d", v.Index, len(items))
		}
		idx = append(idx, v.Index)
	}
	return idx, nil
}
