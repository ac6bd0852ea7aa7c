package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/audit"
	"github.com/airlock-dev/airlock/host/store"
)

// Account is a connected account (an oauth2_authorization_code slot's connection for one
// subject) as the API and the console list it: never a token.
type Account struct {
	Connector string            `json:"connector"`
	Slot      string            `json:"slot"`
	Subject   string            `json:"subject"`
	Status    string            `json:"status"`           // connected or needs_reauth
	Detail    string            `json:"detail,omitempty"` // why it needs re-authorisation (the last refresh error)
	Metadata  map[string]string `json:"metadata,omitempty"`
	// Expires is when the stored access token expires, and Refreshable whether a refresh token
	// renews it then (read from the sealed token set by the running host; absent without one).
	Expires     time.Time `json:"expires,omitzero"`
	Refreshable bool      `json:"refreshable,omitempty"`
	Updated     time.Time `json:"updated"`
}

// Accounts lists the connected accounts of every connector.
func (a *Admin) Accounts(ctx context.Context) ([]Account, error) {
	list, err := a.st.ListConnections(ctx, "")
	out := make([]Account, 0, len(list))
	for _, c := range list {
		acct := Account{Connector: c.Connector, Slot: c.Slot, Subject: c.Subject, Status: c.Status, Detail: c.Detail,
			Metadata: c.Metadata, Updated: c.Updated}
		if a.h != nil {
			// A token that does not open is reported by the status the next call sets; the
			// list still shows the account.
			if exp, refresh, ok, xerr := a.h.ConnectionExpiry(ctx, c.Connector, c.Slot, c.Subject); xerr == nil && ok {
				acct.Expires, acct.Refreshable = exp.UTC(), refresh
			}
		}
		out = append(out, acct)
	}
	return out, err
}

// connectTimeout is how long a sign-in started by [Admin.Connect] may take.
const connectTimeout = 10 * time.Minute

// Connect starts connecting subject's account to the connector's authorization-code slot
// (slot "" for its only one), as `airlock connect` does: it returns the provider's
// authorization URL for the admin's browser, while the host waits (up to 10 minutes) for the
// provider's redirect to its loopback callback, exchanges the code and stores the tokens
// sealed. done receives the outcome; a connection made is recorded with who started it.
func (a *Admin) Connect(ctx context.Context, connector, slot, subject, by string) (authURL string, done <-chan error, err error) {
	if a.h == nil {
		return "", nil, errors.New("connecting an account needs a running host: use `airlock connect` or the server's admin API")
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), connectTimeout)
	urls, out := make(chan string, 1), make(chan error, 1)
	go func() {
		defer cancel()
		res, err := a.h.Connect(cctx, host.ConnectRequest{Connector: connector, Slot: slot, Subject: subject,
			OnAuthURL: func(u string) { urls <- u }})
		if err == nil {
			err = audit.Action(cctx, a.st, by, "connect", res.Connector, map[string]string{"slot": res.Slot, "subject": res.Subject})
		}
		out <- err
	}()
	select {
	case u := <-urls:
		return u, out, nil
	case err := <-out:
		return "", nil, err
	case <-ctx.Done():
		cancel()
		return "", nil, ctx.Err()
	}
}

// Disconnect deletes subject's connection to the connector's slot: its tokens are gone (from
// the store and this host's memory; other replicas drop theirs when the cached access token
// expires), and calls for that subject fail until the account is connected again. With a
// running host and a revocation_url in the manifest, the provider revokes the tokens first
// (host.Disconnect); revoked says whether it did, and notRevoked why not. Recorded with who did
// it and whether the provider revoked.
func (a *Admin) Disconnect(ctx context.Context, connector, slot, subject, by string) (revoked bool, notRevoked string, err error) {
	revokeErr := error(nil)
	if a.h != nil {
		revokeErr, err = a.h.Disconnect(ctx, connector, slot, subject) // also drops the token the running host holds
	} else {
		revokeErr, err = errors.New("no running host to ask the provider"), a.st.DeleteConnection(ctx, connector, slot, subject)
	}
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return false, "", fmt.Errorf("%s/%s has no connection for subject %q: %w", connector, slot, subject, store.ErrNotFound)
		}
		return false, "", err
	}
	if revokeErr != nil {
		notRevoked = revokeErr.Error()
	}
	err = audit.Action(ctx, a.st, by, "disconnect", connector, map[string]string{"slot": slot, "subject": subject,
		"revoked_at_provider": strconv.FormatBool(revokeErr == nil)})
	return revokeErr == nil, notRevoked, err
}

func (a *Admin) apiAccounts(w http.ResponseWriter, r *http.Request) {
	list, err := a.Accounts(r.Context())
	reply(w, list, err)
}

func (a *Admin) apiConnect(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Slot    string `json:"slot"`
		Subject string `json:"subject"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		writeErr(w, http.StatusBadRequest, `the body must be JSON such as {"subject": "alice"} (and "slot" when the connector has several)`)
		return
	}
	u, _, err := a.Connect(r.Context(), r.PathValue("connector"), body.Slot, body.Subject, adminFrom(r.Context()))
	reply(w, map[string]string{"authorization_url": u}, err)
}

func (a *Admin) apiDisconnect(w http.ResponseWriter, r *http.Request) {
	revoked, why, err := a.Disconnect(r.Context(), r.PathValue("connector"), r.PathValue("slot"), r.PathValue("subject"), adminFrom(r.Context()))
	reply(w, map[string]any{"disconnected": r.PathValue("connector") + "/" + r.PathValue("slot") + "/" + r.PathValue("subject"),
		"revoked_at_provider": revoked, "not_revoked_because": why}, err)
}
