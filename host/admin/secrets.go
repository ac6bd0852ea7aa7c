package admin

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/airlock-dev/airlock/host/audit"
	"github.com/airlock-dev/airlock/host/secret"
)

// errNoSecretStore is returned when the Admin was given no secret store.
var errNoSecretStore = errors.New("this airlock has no built-in secret store open (no master key yet): create it with `airlock secret set NAME` once, then restart")

// SetSecretStore gives the Admin the built-in encrypted secret store ("store:NAME"
// references), for [Admin.SecretNames] and [Admin.SetSecret].
func (a *Admin) SetSecretStore(ss *secret.Store) { a.secrets = ss }

// SecretNames lists the names in the secret store, never their values.
func (a *Admin) SecretNames(ctx context.Context) ([]secret.Info, error) {
	if a.secrets == nil {
		return nil, errNoSecretStore
	}
	return a.secrets.List(ctx)
}

// SetSecret stores v under name (replacing any value), sealed; grants reference it as
// store:NAME. The change is recorded with who made it, never the value.
func (a *Admin) SetSecret(ctx context.Context, name string, v secret.Value, by string) error {
	if a.secrets == nil {
		return errNoSecretStore
	}
	if err := a.secrets.Set(ctx, name, v); err != nil {
		return err
	}
	return audit.Action(ctx, a.st, by, "secret set", name, nil)
}

func (a *Admin) apiSecrets(w http.ResponseWriter, r *http.Request) {
	list, err := a.SecretNames(r.Context())
	out := make([]map[string]any, 0, len(list))
	for _, s := range list {
		out = append(out, map[string]any{"name": s.Name, "updated": s.Updated})
	}
	reply(w, out, err)
}

func (a *Admin) apiSetSecret(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Value string `json:"value"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeErr(w, http.StatusBadRequest, `the body must be JSON such as {"value": "…"}`)
		return
	}
	name := r.PathValue("name")
	err := a.SetSecret(r.Context(), name, secret.New(body.Value), adminFrom(r.Context()))
	body.Value = ""
	reply(w, map[string]string{"set": name}, err)
}
