package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"runtime"
	"slices"
	"time"

	"github.com/airlock-dev/airlock/host"
	"github.com/airlock-dev/airlock/host/store"
)

func runConnect(ctx context.Context, e *env, args []string) error {
	var g globals
	fs := newFlagSet(e, "connect", `
Usage: airlock connect CONNECTOR [--slot SLOT] [--subject USER] [--listen 127.0.0.1:0] [--no-browser] [--timeout 5m]

Connects a user's account to a connector whose credential slot is oauth2_authorization_code
("Sign in with …"): the OAuth 2.0 authorization-code flow with PKCE (S256). airlock listens on a
loopback port, prints the provider's authorization URL (and opens it in a browser unless
--no-browser), receives the provider's redirect to http://ADDR/callback, refuses it unless its
state matches, exchanges the code and keeps the tokens in the state store, encrypted under the
master key. No token is ever printed, logged or audited; the host refreshes the access token
before it expires.

The connector must be granted, with the slot's client_id (and a client_secret reference if
the provider needs one) in its grant. The provider must accept the redirect URI
http://127.0.0.1/callback (any port, RFC 8252); --listen fixes the port if it does not.
Calls made for --subject then act as that account: 'airlock call … --subject USER', or an agent
whose token maps to that subject. Connecting again replaces the subject's connection (and
clears a "needs re-authorisation" status).`, `
  airlock connect github --subject alice
  airlock connect salesforce --slot user --subject alice --no-browser   # copy the URL to a browser yourself
  airlock call github.list_issues --subject alice --args '{"repo":"acme/api"}'`)
	g.register(fs)
	slot := fs.String("slot", "", "the credential `slot` to connect (default: the connector's only oauth2_authorization_code slot)")
	subject := fs.String("subject", envOr("AIRLOCK_SUBJECT", "default"), "the user or tenant whose account is connected ($AIRLOCK_SUBJECT)")
	listen := fs.String("listen", "127.0.0.1:0", "loopback `address` that receives the provider's redirect (port 0: any free port)")
	noBrowser := fs.Bool("no-browser", false, "only print the authorization URL; do not try to open a browser")
	timeout := fs.Duration("timeout", 5*time.Minute, "give up if the sign-in is not finished within this `duration`")
	if err := parse(fs, args); err != nil {
		return err
	}
	if err := atMost(fs, 1, ""); err != nil {
		return err
	}
	name := fs.Arg(0)
	if name == "" {
		return usagef("name the connector: airlock connect CONNECTOR [--subject USER]")
	}
	if *subject == "" {
		return usagef("--subject is empty: name the user or tenant whose account is being connected")
	}
	if *timeout <= 0 {
		return usagef("--timeout must be positive, like 5m")
	}
	if h, _, err := net.SplitHostPort(*listen); err != nil || net.ParseIP(h) == nil || !net.ParseIP(h).IsLoopback() {
		return usagef("--listen %q: give a loopback IP address and port, like 127.0.0.1:8765 (0 picks a free port)", *listen)
	}
	g.mayCreateKey = true // the connection's tokens are sealed under the master key
	rt, err := g.openRuntime(ctx, e, nil)
	if err != nil {
		return err
	}
	defer rt.h.Close(context.WithoutCancel(ctx))
	if !slices.Contains(rt.h.Connectors(), name) {
		return notLoaded(ctx, rt.st, name)
	}
	cctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	res, err := rt.h.Connect(cctx, host.ConnectRequest{Connector: name, Slot: *slot, Subject: *subject, ListenAddr: *listen,
		OnAuthURL: func(u string) {
			fmt.Fprintf(e.stderr, "Open this URL in a browser to sign in and connect %s for subject %s:\n\n", name, *subject)
			fmt.Fprintln(e.stdout, u)
			fmt.Fprintln(e.stderr)
			if !*noBrowser {
				if err := openBrowser(u); err != nil {
					fmt.Fprintf(e.stderr, "(No browser could be opened: %v. Copy the URL into one.)\n", err)
				}
			}
			fmt.Fprintf(e.stderr, "Waiting up to %s for the sign-in to finish…\n", *timeout)
		}})
	switch {
	case err == nil:
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		return fmt.Errorf("no sign-in was finished within %s; nothing was stored. Run 'airlock connect %s' again, open the URL it prints and finish signing in (give yourself more time with --timeout 15m)", *timeout, name)
	case ctx.Err() != nil:
		return fmt.Errorf("interrupted before the sign-in finished; nothing was stored. Run 'airlock connect %s' again", name)
	default:
		return err
	}
	fmt.Fprintf(e.stdout, "Connected %s (%s) for subject %s; tokens are kept encrypted by the host.\n", res.Connector, res.Slot, res.Subject)
	if err := g.recordAction(ctx, nil, "connect", res.Connector, map[string]string{"slot": res.Slot, "subject": res.Subject}); err != nil {
		return err
	}
	if !res.Refreshable {
		fmt.Fprintf(e.stderr, "The provider issued no refresh token: when the access token expires (%s), run 'airlock connect %s --subject %s' again.\n",
			res.Expiry.Local().Format(time.DateTime), name, res.Subject)
	}
	return nil
}

// notLoaded explains why connector name is not running: not installed, installed but not
// granted, or granted but pending.
func notLoaded(ctx context.Context, st *store.Store, name string) error {
	if _, err := st.ActiveInstalled(ctx, name); errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("connector %s is neither installed (active) nor named in the configuration: install it with 'airlock plugin install BUNDLE' and grant it with 'airlock grant %s' (see 'airlock plugin list')", name, name)
	}
	if g, err := st.CurrentGrant(ctx, name); errors.Is(err, store.ErrNotFound) || err == nil && g.Revoked {
		return fmt.Errorf("connector %s is not granted: review and grant it first with 'airlock grant %s' (fill its OAuth slot's client_id with --file GRANT.yaml), then connect", name, name)
	}
	return fmt.Errorf("connector %s is installed and granted but did not load; run 'airlock tools' to see why", name)
}

// openBrowser tries to open url in the user's browser; tests replace it.
var openBrowser = func(url string) error {
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "darwin":
		cmd = exec.Command("open", url)
	case "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", url)
	default:
		cmd = exec.Command("xdg-open", url)
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	go cmd.Wait() // reap it; whether it worked is the user's to see
	return nil
}
