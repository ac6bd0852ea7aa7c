package grant

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/airlock-dev/airlock/host/manifest"
)

const slackManifest = `abi: 1
name: slack
version: 1.0.0
publisher: airlock-dev
description: Slack.
module: {path: slack.wasm}
limits: {timeout_ms: 20000, max_requests: 10}
credentials:
  - {name: bot_token, kind: bearer, hosts: [slack.com]}
  - {name: user_token, kind: bearer, hosts: [slack.com]}
network:
  - {host: slack.com, path_prefix: /api/, methods: [GET, POST]}
  - {host: "*.slack-edge.com"}
  - {scheme: http, host: hooks.example.com, port: 8080}
config:
  - {name: default_channel, default: general}
  - {name: team}
tools:
  - {name: post_message, description: Post., uses: {network: [slack.com], credentials: [bot_token]}, scopes: [chat:write], input_schema: {type: object}}
  - {name: list_channels, description: List., uses: {network: [slack.com], credentials: [bot_token]}, scopes: [channels:read], input_schema: {type: object}}
  - {name: read_history, description: History., uses: {network: [slack.com], credentials: [bot_token]}, scopes: [channels:read, channels:history], input_schema: {type: object}}
  - {name: ping, description: Ping., uses: {network: [slack.com], credentials: [bot_token]}, input_schema: {type: object}}
`

func parse(t *testing.T) *manifest.Manifest {
	t.Helper()
	m, err := manifest.Parse("slack.yaml", []byte(slackManifest))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func names[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestEffective(t *testing.T) {
	m := parse(t)
	tests := []struct {
		name      string
		grant     manifest.Grant
		callable  []string
		denied    map[string]string
		hosts     []string
		limits    manifest.Limits
		creds     map[string]manifest.CredentialGrant
		config    map[string]string
		upstreams map[string]string
	}{
		{
			name:     "nothing granted",
			grant:    manifest.Grant{Connector: "slack"},
			callable: nil,
			denied: map[string]string{
				"post_message":  "tool slack.post_message is not granted; an admin must grant it",
				"list_channels": "tool slack.list_channels is not granted; an admin must grant it",
				"read_history":  "tool slack.read_history is not granted; an admin must grant it",
				"ping":          "tool slack.ping is not granted; an admin must grant it",
			},
			config: map[string]string{"default_channel": "general"},
		},
		{
			name:     "everything",
			grant:    manifest.Grant{Connector: "slack", Tools: []string{"*"}, Scopes: []string{"*"}, Hosts: []string{"*"}},
			callable: []string{"post_message", "list_channels", "read_history", "ping"},
			denied:   map[string]string{},
			hosts:    []string{"slack.com", "*.slack-edge.com", "hooks.example.com"},
			config:   map[string]string{"default_channel": "general"},
		},
		{
			name:     "tool granted but a scope missing",
			grant:    manifest.Grant{Connector: "slack", Tools: []string{"*"}, Scopes: []string{"channels:read"}, Hosts: []string{"slack.com"}},
			callable: []string{"list_channels", "ping"},
			denied: map[string]string{
				"post_message": "needs scope chat:write, which is not granted; an admin must grant it",
				"read_history": "needs scope channels:history, which is not granted; an admin must grant it",
			},
			hosts:  []string{"slack.com"},
			config: map[string]string{"default_channel": "general"},
		},
		{
			name:     "several scopes missing",
			grant:    manifest.Grant{Connector: "slack", Tools: []string{"read_history"}},
			callable: nil,
			denied: map[string]string{
				"post_message":  "tool slack.post_message is not granted; an admin must grant it",
				"list_channels": "tool slack.list_channels is not granted; an admin must grant it",
				"read_history":  "needs scopes channels:read, channels:history, which are not granted; an admin must grant them",
				"ping":          "tool slack.ping is not granted; an admin must grant it",
			},
			config: map[string]string{"default_channel": "general"},
		},
		{
			name:     "scopes granted but tool not",
			grant:    manifest.Grant{Connector: "slack", Tools: []string{"ping"}, Scopes: []string{"*"}},
			callable: []string{"ping"},
			denied: map[string]string{
				"post_message":  "tool slack.post_message is not granted; an admin must grant it",
				"list_channels": "tool slack.list_channels is not granted; an admin must grant it",
				"read_history":  "tool slack.read_history is not granted; an admin must grant it",
			},
			config: map[string]string{"default_channel": "general"},
		},
		{
			name: "credentials, config, limits, upstreams",
			grant: manifest.Grant{
				Connector:   "slack",
				Tools:       []string{"ping"},
				Hosts:       []string{"slack.com", "hooks.example.com"},
				Credentials: manifest.SecretRefs(map[string]string{"bot_token": "env:SLACK_BOT_TOKEN"}),
				Config:      map[string]string{"team": "T1", "default_channel": "ops"},
				Upstreams: map[string]string{
					"https://slack.com":             "http://127.0.0.1:8099",
					"http://HOOKS.example.com:8080": "http://localhost:9000",
				},
				Limits: manifest.Limits{TimeoutMS: 5000, MemoryMB: 16},
			},
			callable: []string{"ping"},
			hosts:    []string{"slack.com", "hooks.example.com"},
			creds:    manifest.SecretRefs(map[string]string{"bot_token": "env:SLACK_BOT_TOKEN"}),
			config:   map[string]string{"team": "T1", "default_channel": "ops"},
			upstreams: map[string]string{
				"https://slack.com:443":         "http://127.0.0.1:8099",
				"http://hooks.example.com:8080": "http://localhost:9000",
			},
			limits: manifest.Limits{TimeoutMS: 5000, MemoryMB: 16},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Effective(m, &tt.grant)
			if err != nil {
				t.Fatalf("Effective = %v", err)
			}
			sorted := cmpopts.SortSlices(func(a, b string) bool { return a < b })
			if diff := cmp.Diff(tt.callable, names(p.Tools), sorted, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("callable tools mismatch (-want +got):\n%s", diff)
			}
			if tt.denied != nil {
				if diff := cmp.Diff(tt.denied, p.Denied, cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("Denied mismatch (-want +got):\n%s", diff)
				}
			}
			var hosts []string
			for _, r := range p.Rules {
				hosts = append(hosts, r.Host)
			}
			if diff := cmp.Diff(tt.hosts, hosts, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("rule hosts mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.creds, p.Credentials, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Credentials mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.config, p.Config, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Config mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.upstreams, p.Upstreams, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("Upstreams mismatch (-want +got):\n%s", diff)
			}
			want := m.Limits
			if tt.limits.TimeoutMS != 0 {
				want.TimeoutMS = tt.limits.TimeoutMS
			}
			if tt.limits.MemoryMB != 0 {
				want.MemoryMB = tt.limits.MemoryMB
			}
			if p.Limits != want {
				t.Errorf("Limits = %+v, want %+v", p.Limits, want)
			}
			for name, tool := range p.Tools {
				if got, _ := m.Tool(name); got != tool {
					t.Errorf("Tools[%s] does not point into the manifest", name)
				}
			}
		})
	}
}

func TestEffectiveErrors(t *testing.T) {
	m := parse(t)
	tests := []struct {
		name  string
		grant manifest.Grant
		want  []string // substrings of the error
	}{
		{"other connector", manifest.Grant{Connector: "github"}, []string{`grant is for connector "github", not "slack"`}},
		{"unknown tool", manifest.Grant{Connector: "slack", Tools: []string{"post_mesage"}},
			[]string{`tool "post_mesage", which manifest slack does not declare (declared: post_message, list_channels, read_history, ping)`}},
		{"unknown scope", manifest.Grant{Connector: "slack", Scopes: []string{"admin"}},
			[]string{`scope "admin", which manifest slack does not declare (declared: channels:history, channels:read, chat:write)`}},
		{"unknown host", manifest.Grant{Connector: "slack", Hosts: []string{"evil.com"}},
			[]string{`host "evil.com", which manifest slack does not declare`}},
		{"host covered only by wildcard", manifest.Grant{Connector: "slack", Hosts: []string{"a.slack-edge.com"}},
			[]string{`host "a.slack-edge.com", which manifest slack does not declare (declared: *.slack-edge.com, hooks.example.com, slack.com)`}},
		{"unknown slot", manifest.Grant{Connector: "slack", Credentials: manifest.SecretRefs(map[string]string{"token": "env:X"})},
			[]string{`credential slot "token", which manifest slack does not declare (declared: bot_token, user_token)`}},
		{"unknown config", manifest.Grant{Connector: "slack", Config: map[string]string{"channel": "x"}},
			[]string{`config key "channel", which manifest slack does not declare (declared: default_channel, team)`}},
		{"looser limits", manifest.Grant{Connector: "slack", Limits: manifest.Limits{TimeoutMS: 30000, MaxRequests: 11, MemoryMB: 64}},
			[]string{"limits.timeout_ms: 30000 is looser than the manifest's 20000", "limits.max_requests: 11 is looser than the manifest's 10"}},
		{"negative limit", manifest.Grant{Connector: "slack", Limits: manifest.Limits{MaxInputBytes: -1}},
			[]string{"limits.max_input_bytes: -1 must be positive"}},
		{"bad private target", manifest.Grant{Connector: "slack", PrivateTargets: []string{"10.0.0.0/40"}},
			[]string{`private_targets: "10.0.0.0/40" is not a CIDR prefix`}},
		{"bad upstream", manifest.Grant{Connector: "slack", Hosts: []string{"*"}, Upstreams: map[string]string{"https://slack.com": "ftp://x"}},
			[]string{`the scheme must be http or https`}},
		{"upstream for an ungranted host", manifest.Grant{Connector: "slack", Upstreams: map[string]string{"https://slack.com": "http://127.0.0.1:1"}},
			[]string{`"https://slack.com" is not an origin the granted network rules allow`}},
		{"upstream with the wrong port", manifest.Grant{Connector: "slack", Hosts: []string{"*"}, Upstreams: map[string]string{"https://slack.com:8443": "http://127.0.0.1:1"}},
			[]string{`"https://slack.com:8443" is not an origin the granted network rules allow`}},
		{"several problems", manifest.Grant{Connector: "slack", Tools: []string{"x"}, Scopes: []string{"y"}},
			[]string{`tool "x"`, `scope "y"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Effective(m, &tt.grant)
			if err == nil {
				t.Fatalf("Effective = %+v, want an error", p)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Effective error = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestEffectiveWildcardUpstreamAndTargets(t *testing.T) {
	m := parse(t)
	p, err := Effective(m, &manifest.Grant{
		Connector:      "slack",
		Hosts:          []string{"*.slack-edge.com"},
		PrivateTargets: []string{"10.1.2.3/8", "::ffff:192.168.0.1", "fd00::/8"},
		Upstreams:      map[string]string{"https://a.slack-edge.com": "http://127.0.0.1:9"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"),
		netip.MustParsePrefix("192.168.0.1/32"),
		netip.MustParsePrefix("fd00::/8"),
	}
	if diff := cmp.Diff(want, p.PrivateTargets, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("PrivateTargets mismatch (-want +got):\n%s", diff)
	}
	if got := p.Upstreams["https://a.slack-edge.com:443"]; got != "http://127.0.0.1:9" {
		t.Errorf("Upstreams = %v", p.Upstreams)
	}
}

func TestCallable(t *testing.T) {
	m := parse(t)
	p, err := Effective(m, &manifest.Grant{Connector: "slack", Tools: []string{"*"}, Scopes: []string{"channels:read"}})
	if err != nil {
		t.Fatal(err)
	}
	if tool, reason := p.Callable("list_channels"); tool == nil || reason != "" {
		t.Errorf("Callable(list_channels) = %v, %q", tool, reason)
	}
	if tool, reason := p.Callable("post_message"); tool != nil || !strings.Contains(reason, "chat:write") {
		t.Errorf("Callable(post_message) = %v, %q", tool, reason)
	}
	if tool, reason := p.Callable("nope"); tool != nil || reason != `there is no tool "nope"` {
		t.Errorf("Callable(nope) = %v, %q", tool, reason)
	}
}

// TestRulesAreCopies checks that changing the policy cannot change the manifest.
func TestRulesAreCopies(t *testing.T) {
	m := parse(t)
	p, err := Effective(m, &manifest.Grant{Connector: "slack", Hosts: []string{"slack.com"}})
	if err != nil {
		t.Fatal(err)
	}
	p.Rules[0].Methods[0] = "DELETE"
	if m.Network[0].Methods[0] != "GET" {
		t.Errorf("changing the policy changed the manifest: %v", m.Network[0].Methods)
	}
}

const crmManifest = `abi: 1
name: crm
version: 1.0.0
publisher: acme
description: CRM.
module: {path: crm.wasm}
credentials:
  - {name: sf, kind: oauth2_jwt_bearer, hosts: ["*.my.salesforce.com"], oauth: {token_url: "https://login.salesforce.com/services/oauth2/token"}}
  - {name: gh, kind: oauth2_client_credentials, hosts: [api.github.com], oauth: {token_url: "https://github.com/login/oauth/access_token"}}
  - {name: key, kind: bearer, hosts: [api.github.com]}
network:
  - {host: "*.my.salesforce.com", methods: [GET, PATCH], rate_limit: {per_second: 10, burst: 20}}
  - {host: api.github.com, path_prefix: /search/, rate_limit: {per_second: 0.5}}
  - {host: api.github.com, path_prefix: /repos/}
database:
  functions:
    - {name: find, sql: "SELECT id FROM customers WHERE email = $1", params: [{name: email}]}
    - {name: wipe, sql: "DELETE FROM customers WHERE id = $1", params: [{name: id}], read_only: false}
tools:
  - {name: find_customer, description: Find., function: find, uses: {network: [], credentials: []}, input_schema: {type: object}}
  - {name: wipe_customer, description: Wipe., function: wipe, uses: {network: [], credentials: []}, input_schema: {type: object}}
  - {name: query, description: Query., uses: {network: [api.github.com], credentials: [gh, key]}, input_schema: {type: object}}
  - {name: delete_all, description: Delete., annotations: {destructive: true}, uses: {network: ["*.my.salesforce.com"], credentials: [sf]}, input_schema: {type: object}}
`

func TestEffectiveExtensions(t *testing.T) {
	m, err := manifest.Parse("crm.yaml", []byte(crmManifest))
	if err != nil {
		t.Fatal(err)
	}
	g := manifest.Grant{
		Connector: "crm", Tools: []string{"*"}, Hosts: []string{"*"}, Confirm: []string{"query"},
		Credentials: map[string]manifest.CredentialGrant{
			"sf": {ClientID: "3MVG9", PrivateKey: "file:/k.pem", Username: "a@b.c"},
			"gh": {ClientID: "Iv1", ClientSecret: "env:GH_SECRET"},
		},
		RateLimits: []manifest.RateLimitOverride{{Host: "*.my.salesforce.com", PerSecond: 2}},
		Database:   &manifest.DatabaseGrant{DSN: "env:CRM_DSN", Functions: []string{"*"}},
	}
	p, err := Effective(m, &g)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.Functions["wipe"]; ok {
		t.Error("write function wipe granted without allow_writes")
	}
	if _, reason := p.Callable("wipe_customer"); !strings.Contains(reason, "does not allow writes") {
		t.Errorf("wipe_customer denial = %q, want it to say writes are not allowed", reason)
	}
	if _, reason := p.Callable("find_customer"); reason != "" {
		t.Errorf("find_customer not callable: %s", reason)
	}
	for tool, want := range map[string]bool{"find_customer": false, "query": true, "delete_all": true} {
		if got := p.NeedsConfirmation(tool); got != want {
			t.Errorf("NeedsConfirmation(%s) = %v, want %v", tool, got, want)
		}
	}
	if p.DSN != "env:CRM_DSN" {
		t.Errorf("DSN = %q", p.DSN)
	}
	if got := p.Rules[0].RateLimit; got == nil || got.PerSecond != 2 {
		t.Errorf("salesforce rule rate = %+v, want the grant's 2/s", got)
	}
	if m.Network[0].RateLimit.PerSecond != 10 {
		t.Error("the grant's override changed the manifest")
	}

	g.Database.AllowWrites = true
	if p, err = Effective(m, &g); err != nil {
		t.Fatal(err)
	}
	if _, reason := p.Callable("wipe_customer"); reason != "" || !p.NeedsConfirmation("wipe_customer") {
		t.Errorf("with allow_writes: wipe_customer callable=%q needs confirmation=%v, want callable and confirmed by a human", reason, p.NeedsConfirmation("wipe_customer"))
	}
}

func TestEffectiveExtensionErrors(t *testing.T) {
	m, err := manifest.Parse("crm.yaml", []byte(crmManifest))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		grant manifest.Grant
		want  []string
	}{
		{"jwt bearer incomplete", manifest.Grant{Connector: "crm", Credentials: map[string]manifest.CredentialGrant{"sf": {ClientID: "x"}}},
			[]string{"credentials.sf: kind oauth2_jwt_bearer needs private_key", "needs username"}},
		{"secret string for an oauth slot", manifest.Grant{Connector: "crm", Credentials: manifest.SecretRefs(map[string]string{"gh": "env:GH"})},
			[]string{"credentials.gh: kind oauth2_client_credentials needs client_id", "does not use secret reference"}},
		{"oauth client for a static slot", manifest.Grant{Connector: "crm", Credentials: map[string]manifest.CredentialGrant{"key": {ClientID: "x"}}},
			[]string{"credentials.key: kind bearer needs a secret reference", "does not use client_id"}},
		{"looser rate", manifest.Grant{Connector: "crm", Hosts: []string{"*"}, RateLimits: []manifest.RateLimitOverride{{Host: "api.github.com", PathPrefix: "/search/", PerSecond: 5}}},
			[]string{"rate_limits[0]: 5 per second is looser than the manifest's 0.5"}},
		{"rate for an ungranted rule", manifest.Grant{Connector: "crm", RateLimits: []manifest.RateLimitOverride{{Host: "api.github.com", PerSecond: 1}}},
			[]string{`rate_limits[0]: no granted network rule has host "api.github.com"`}},
		{"unknown function", manifest.Grant{Connector: "crm", Database: &manifest.DatabaseGrant{DSN: "env:X", Functions: []string{"drop"}}},
			[]string{`database function "drop", which manifest crm does not declare (declared: find, wipe)`}},
		{"unknown confirm tool", manifest.Grant{Connector: "crm", Confirm: []string{"nope"}},
			[]string{`tool "nope", which manifest crm does not declare`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Effective(m, &tt.grant)
			if err == nil {
				t.Fatal("Effective succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error = %q, want it to contain %q", err, w)
				}
			}
		})
	}

	noDB, err := manifest.Parse("x.yaml", []byte(slackManifest))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Effective(noDB, &manifest.Grant{Connector: "slack", Database: &manifest.DatabaseGrant{DSN: "env:X"}}); err == nil || !strings.Contains(err.Error(), "declares no database functions") {
		t.Errorf("database grant for a manifest without one: %v", err)
	}
}
