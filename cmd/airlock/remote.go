package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/airlock-dev/airlock/host/admin"
)

// adminTokenEnv holds the admin token the CLI sends to a server. It is read from the
// environment only, never a flag, so that it does not show in the process list or the shell's
// history.
const adminTokenEnv = "AIRLOCK_ADMIN_TOKEN"

// serverHelp is what the help of a command that can work through a server says about it.
const serverHelp = `
With --server URL (or $AIRLOCK_SERVER) the command goes through that airlock's admin API with
the admin token in $AIRLOCK_ADMIN_TOKEN, and the server decides what the token's role allows
(see 'airlock help admin'). Without it the command works on the state store directly: whoever
can open the store holds everything in it, an owner's power.`

// registerServer adds --server to a command that can work through a running airlock's admin
// API instead of the state store.
func (g *globals) registerServer(fs *flag.FlagSet) {
	fs.StringVar(&g.server, "server", os.Getenv("AIRLOCK_SERVER"), "work through the admin API of the airlock at `URL` (http://host:8700), with the admin token in $"+adminTokenEnv+", instead of the state store ($AIRLOCK_SERVER)")
}

// adminClient talks to a running airlock's admin API (/admin/v1/) with an admin token.
type adminClient struct {
	base  string // scheme://host[:port], no trailing slash
	token string
	http  *http.Client
}

// remote returns the admin API client --server asks for, or nil when the command works on the
// state store.
func (g *globals) remote() (*adminClient, error) {
	if g.server == "" {
		return nil, nil
	}
	u, err := url.Parse(g.server)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, usagef("--server %q: give the airlock's base URL, like http://127.0.0.1:8700", g.server)
	}
	if u.User != nil {
		return nil, usagef("--server: put the admin token in $%s, not in the URL", adminTokenEnv)
	}
	token := strings.TrimSpace(os.Getenv(adminTokenEnv))
	if token == "" {
		return nil, usagef("--server needs an admin token in $%s (an owner issues one with 'airlock admin add NAME --role ROLE')", adminTokenEnv)
	}
	return &adminClient{base: u.Scheme + "://" + u.Host, token: token, http: &http.Client{Timeout: time.Minute}}, nil
}

// serverError is a refusal or failure the admin API answered with: its status and its message,
// which the CLI prints as it is (it already says what to do).
type serverError struct {
	status int
	msg    string
}

func (e *serverError) Error() string {
	switch e.status {
	case http.StatusForbidden, http.StatusUnauthorized:
		return "the server refused: " + e.msg
	}
	return e.msg
}

// do sends method path (under /admin/v1/) with body encoded as JSON (nil: none), and decodes
// the answer into out (nil: ignore it; a *[]byte: the answer as it is).
func (c *adminClient) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+"/admin/v1/"+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("reaching the airlock server: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("reading the airlock server's answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = fmt.Sprintf("%s %s: %s (is %s an airlock server?)", method, path, resp.Status, c.base)
		}
		return &serverError{status: resp.StatusCode, msg: e.Error}
	}
	if raw, ok := out.(*[]byte); ok {
		*raw = data
		return nil
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("the airlock server's answer to %s %s is not what this CLI expects (%w): are both the same version?", method, path, err)
	}
	return nil
}

// withAdmin runs local on an Admin over the state store, or remote through the admin API
// when --server is given.
func (g *globals) withAdmin(ctx context.Context, e *env, local func(*admin.Admin) error, remote func(*adminClient) error) error {
	c, err := g.remote()
	if err != nil {
		return err
	}
	if c != nil {
		return remote(c)
	}
	a, err := g.openAdmin(ctx, e)
	if err != nil {
		return err
	}
	defer a.Store().Close()
	return local(a)
}

// openAdmin opens the state store and an Admin that records into it; close a.Store() when done.
func (g *globals) openAdmin(ctx context.Context, e *env) (*admin.Admin, error) {
	st, err := g.openStore(ctx)
	if err != nil {
		return nil, err
	}
	a, err := g.recorder(e, st)
	if err != nil {
		st.Close()
		return nil, err
	}
	return a, nil
}
