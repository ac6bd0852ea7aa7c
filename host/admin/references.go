package admin

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/secret"
)

// knownSchemes are the reference schemes airlock resolves (secret.Mux of the CLI and server).
var knownSchemes = []string{"env", "file", "store", "vault", "op", "doppler", "gcp-sm", "azure-kv", "aws-sm", "aws-ssm"}

// managers names the secret managers behind the remote schemes, for messages.
var managers = map[string]string{"vault": "Vault", "op": "1Password Connect", "doppler": "Doppler",
	"gcp-sm": "Google Secret Manager", "azure-kv": "Azure Key Vault",
	"aws-sm": "AWS Secrets Manager", "aws-ssm": "AWS Parameter Store"}

// References lists the secret references of g, as "what: reference" pairs sorted by what
// ("credentials.bot_token", "credentials.sf.client_secret", "database.dsn").
func References(g *manifest.Grant) [][2]string {
	var out [][2]string
	for slot, c := range g.Credentials {
		for _, f := range []struct{ field, ref string }{{"", c.Secret}, {".client_secret", c.ClientSecret}, {".private_key", c.PrivateKey}} {
			if f.ref != "" {
				out = append(out, [2]string{"credentials." + slot + f.field, f.ref})
			}
		}
	}
	if g.Database != nil && g.Database.DSN != "" {
		out = append(out, [2]string{"database.dsn", g.Database.DSN})
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}

// CheckReferences checks the secret references of g before it is recorded. A reference that can
// never resolve is an error: one without a scheme (its text is not repeated: it may be a secret
// pasted in by mistake), a scheme airlock does not resolve, a store secret that does not exist.
// A reference this process cannot resolve although the server that uses it might (an
// environment variable or a file of another machine, a vault path) is a warning.
func (a *Admin) CheckReferences(ctx context.Context, g *manifest.Grant) (warnings []string, err error) {
	var problems []string
	var stored []string
	storeRead := false
	for _, r := range References(g) {
		what, ref := r[0], r[1]
		scheme, ok := secret.Scheme(ref)
		switch {
		case !ok:
			problems = append(problems, fmt.Sprintf("%s: the reference has no scheme (not shown: it may be a secret); write store:NAME (`airlock secret set NAME`), env:NAME, file:PATH or vault:MOUNT/PATH#FIELD", what))
			continue
		case !slices.Contains(knownSchemes, scheme):
			problems = append(problems, fmt.Sprintf("%s: %q has an unknown scheme %q; use store:, env:, file:, vault:, op://, doppler:, gcp-sm:, azure-kv:, aws-sm: or aws-ssm:", what, ref, scheme))
			continue
		}
		switch scheme {
		case "store":
			if !storeRead {
				recs, err := a.st.ListSealed(ctx, secret.KindSecret)
				if err != nil {
					return nil, fmt.Errorf("checking %s: reading the secret store: %w", what, err)
				}
				for _, rec := range recs {
					stored = append(stored, rec.Name)
				}
				storeRead = true
			}
			if name := ref[len("store:"):]; !slices.Contains(stored, name) {
				problems = append(problems, fmt.Sprintf("%s: the secret store has no secret %q; create it first with `airlock secret set %s`", what, name, name))
			}
		case "env":
			if _, err := (secret.Env{Lookup: os.LookupEnv}).Resolve(ctx, ref); err != nil {
				warnings = append(warnings, fmt.Sprintf("%s: not resolvable from this shell (%v); the server resolves it in its own environment, and the connector's tools answer credential_unavailable until it can", what, err))
			}
		case "file":
			if _, err := (secret.File{}).Resolve(ctx, ref); err != nil {
				warnings = append(warnings, fmt.Sprintf("%s: not readable from here (%v); the server reads it on its own machine, and the connector's tools answer credential_unavailable until it can", what, err))
			}
		case "vault", "op", "doppler", "gcp-sm", "azure-kv", "aws-sm", "aws-ssm":
			warnings = append(warnings, fmt.Sprintf("%s: %s is not checked here; the server reads it from %s when a call needs it", what, ref, managers[scheme]))
		}
	}
	if len(problems) > 0 {
		return warnings, fmt.Errorf("the grant's secret references cannot work:\n  %s", strings.Join(problems, "\n  "))
	}
	return warnings, nil
}

// Permissions returns the permissions of g alone (tools, scopes, hosts, private targets,
// database functions and writes), without its values (credentials, config, upstreams, the
// database reference), limits or confirm rules: what the store records to narrow a connector a
// configuration file grants, so the file keeps providing the rest.
func Permissions(g *manifest.Grant) *manifest.Grant {
	p := &manifest.Grant{Connector: g.Connector, Tools: slices.Clone(g.Tools), Scopes: slices.Clone(g.Scopes),
		Hosts: slices.Clone(g.Hosts), PrivateTargets: slices.Clone(g.PrivateTargets)}
	if g.Database != nil {
		p.Database = &manifest.DatabaseGrant{Functions: slices.Clone(g.Database.Functions), AllowWrites: g.Database.AllowWrites}
	}
	return p
}
