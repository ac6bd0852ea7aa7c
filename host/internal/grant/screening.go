package grant

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/secret"
)

// defaultDetectors are the detectors that run when a grant names none (host/internal/screen's
// defaults; "link" is opt-in).
var defaultDetectors = []string{"instruction", "invisible", "exfiltration"}

// screening fills p.Screening from the grant's section s (nil: defaults) and refuses an unknown
// action or detector or a classifier URL that is not http(s).
func screening(p *Policy, s *manifest.Screening) []error {
	var errs []error
	out := manifest.Screening{Action: manifest.ScreenLabel, Detectors: defaultDetectors}
	for _, r := range p.Rules {
		if !slices.Contains(out.LinkHosts, r.Host) {
			out.LinkHosts = append(out.LinkHosts, r.Host)
		}
	}
	if s != nil {
		if s.Action != "" {
			if !slices.Contains(manifest.ScreenActions, s.Action) {
				errs = append(errs, fmt.Errorf("screening.action: %q is not one of %s", s.Action, list(manifest.ScreenActions)))
			}
			out.Action = s.Action
		}
		if len(s.Detectors) > 0 {
			for _, d := range s.Detectors {
				if !slices.Contains(defaultDetectors, d) && d != "link" {
					errs = append(errs, fmt.Errorf("screening.detectors: %q is not a detector (instruction, invisible, exfiltration, link)", d))
				}
			}
			out.Detectors = slices.Clone(s.Detectors)
		}
		out.LinkHosts = append(out.LinkHosts, s.LinkHosts...)
		if c := s.Classifier; c != nil {
			u, err := url.Parse(c.URL)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil {
				errs = append(errs, fmt.Errorf("screening.classifier.url: %q must be an http or https URL without user info", c.URL))
			}
			if c.OnError != "" && c.OnError != "open" && c.OnError != "closed" {
				errs = append(errs, fmt.Errorf("screening.classifier.on_error: %q must be open or closed", c.OnError))
			}
			errs = append(errs, checkClassifierAuth(c.Auth)...)
			cc := *c
			out.Classifier = &cc
		}
	}
	p.Screening = out
	return errs
}

// screenRank orders actions from the least restrictive; an unknown one ranks highest, so that
// a typo never loosens a merged grant (Effective refuses it).
func screenRank(action string) int {
	if action == "" {
		return 0
	}
	if i := slices.Index(manifest.ScreenActions, action); i >= 0 {
		return i
	}
	return len(manifest.ScreenActions)
}

// tighterScreening merges two screening sections: the stricter action, every detector either
// runs (the defaults standing for an empty list), the link hosts both allow, the classifier of
// the store where it sets one (failing closed if either source says so).
func tighterScreening(file, store *manifest.Screening) *manifest.Screening {
	switch {
	case file == nil:
		return store
	case store == nil:
		return file
	}
	out := &manifest.Screening{Action: file.Action}
	if screenRank(store.Action) > screenRank(file.Action) {
		out.Action = store.Action
	}
	if len(file.Detectors) > 0 || len(store.Detectors) > 0 {
		orDefault := func(d []string) []string {
			if len(d) == 0 {
				return defaultDetectors
			}
			return d
		}
		out.Detectors = uniqueSorted(append(slices.Clone(orDefault(file.Detectors)), orDefault(store.Detectors)...))
	}
	for _, h := range file.LinkHosts {
		if slices.Contains(store.LinkHosts, h) {
			out.LinkHosts = append(out.LinkHosts, h)
		}
	}
	out.Classifier = file.Classifier
	if store.Classifier != nil {
		c := *store.Classifier
		if file.Classifier != nil && file.Classifier.OnError == "closed" {
			c.OnError = "closed"
		}
		out.Classifier = &c
	}
	return out
}

// checkClassifierAuth checks the classifier's auth header: a secret reference, a header name
// that is a token and not one the host sets itself.
func checkClassifierAuth(a *manifest.ClassifierAuth) []error {
	if a == nil {
		return nil
	}
	var errs []error
	if _, ok := secret.Scheme(a.Secret); !ok {
		errs = append(errs, fmt.Errorf("screening.classifier.auth.secret: %s is not a secret reference: write one such as env:CLASSIFIER_TOKEN or vault:kv/airlock#classifier (never the value itself)", secret.Display(a.Secret)))
	}
	switch h := http.CanonicalHeaderKey(a.Header); {
	case a.Header != "" && !httpguts.ValidHeaderFieldName(a.Header):
		errs = append(errs, fmt.Errorf("screening.classifier.auth.header: %q is not a header name", a.Header))
	case h == "Host" || h == "Content-Type" || h == "Content-Length" || h == "Accept" || h == "Transfer-Encoding":
		errs = append(errs, fmt.Errorf("screening.classifier.auth.header: the host sets %s itself; name the header the classifier reads the credential from (default Authorization)", h))
	}
	if strings.ContainsAny(a.Scheme, " \t\r\n") {
		errs = append(errs, fmt.Errorf("screening.classifier.auth.scheme: %q must be one word, such as Bearer", a.Scheme))
	}
	return errs
}
