package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/airlock-dev/airlock/host/notify"
	"github.com/airlock-dev/airlock/host/secret"
)

// notifyConfig is the configuration file's notify: block: where 'airlock serve' sends notices
// (a call waiting for approval, a connection needing re-consent, a circuit breaker opening).
//
//	notify:
//	  public_url: https://airlock.example.com     # links: PUBLIC_URL/console/approvals/ID; https: Secure console cookie
//	  webhooks:
//	    - name: ops
//	      url: https://hooks.example.com/airlock
//	      secret: env:AIRLOCK_WEBHOOK_SECRET      # HMAC-SHA256 key, a secret reference
//	      events: [approval.pending]              # default: all three
//	    - name: slack
//	      format: slack
//	      url: env:SLACK_WEBHOOK_URL              # a Slack webhook URL is a secret: a reference
type notifyConfig struct {
	PublicURL string `yaml:"public_url"`
	Webhooks  []struct {
		Name             string   `yaml:"name"`
		URL              string   `yaml:"url" required:"true"`
		Format           string   `yaml:"format"` // json (default) or slack
		Secret           string   `yaml:"secret"`
		Events           []string `yaml:"events"`
		IncludeArguments bool     `yaml:"include_arguments"`
	} `yaml:"webhooks"`
}

// consoleOverHTTPS reports whether notify.public_url says admins reach the console over https
// (through a TLS-terminating proxy, typically): then its session cookie is marked Secure even
// on the proxy's plain HTTP requests. X-Forwarded-Proto is not the signal: any client sets it.
func consoleOverHTTPS(publicURL string) bool {
	u, err := url.Parse(publicURL)
	return err == nil && u.Scheme == "https"
}

// startNotifier starts the Notifier the configuration asks for, nil when it names no webhook.
// Its secret references are resolved through secrets at each delivery.
func startNotifier(file string, c notifyConfig, secrets secret.Source, logger *slog.Logger) (*notify.Notifier, error) {
	if len(c.Webhooks) == 0 {
		return nil, nil
	}
	cfg := notify.Config{PublicURL: c.PublicURL, Secrets: secrets, Logger: logger}
	for _, w := range c.Webhooks {
		cfg.Webhooks = append(cfg.Webhooks, notify.Webhook{Name: w.Name, URL: w.URL, Format: w.Format, Secret: w.Secret,
			Events: w.Events, IncludeArguments: w.IncludeArguments})
	}
	n, err := notify.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("%s: notify: %w", file, err)
	}
	if c.PublicURL == "" {
		logger.Warn("notify.public_url is not set: notices carry no link to the console")
	}
	logger.Info("notifications on", "webhooks", len(cfg.Webhooks))
	return n, nil
}

// closeNotifier delivers what is queued, for at most ten seconds, after the host stopped.
func closeNotifier(n *notify.Notifier, logger *slog.Logger) {
	if n == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Close(ctx); err != nil {
		logger.Warn("notices still queued at shutdown were not delivered", "err", err)
	}
}
