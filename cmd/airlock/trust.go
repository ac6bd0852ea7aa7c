package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"os"
	"os/user"
	"regexp"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/airlock-dev/airlock/host/bundle"
	"github.com/airlock-dev/airlock/host/store"
)

// publisherName is the manifest's publisher syntax (manifests/FORMAT.md).
var publisherName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

func runTrust(ctx context.Context, e *env, args []string) error {
	var g globals
	fs := newFlagSet(e, "trust", `
Usage: airlock trust add PUBLISHER KEYFILE
       airlock trust list [--json]
       airlock trust rm PUBLISHER

Manages the trust store: the public keys allowed to sign bundles. A key is trusted under one
publisher name and vouches only for bundles whose manifest names that publisher. KEYFILE is the
.pub file the publisher made with 'airlock plugin keygen' (PEM, ed25519). Adding a key under a
name that already has one replaces it. Removing a key does not uninstall anything; it stops new
installs signed with it.`, `
  airlock trust add acme acme.key.pub
  airlock trust list
  airlock trust rm acme`)
	g.register(fs)
	asJSON := fs.Bool("json", false, "print JSON (list)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usagef("use: airlock trust add|list|rm")
	}
	sub, rest := fs.Arg(0), fs.Args()[1:]
	switch sub {
	case "add":
		if len(rest) != 2 {
			return usagef("use: airlock trust add PUBLISHER KEYFILE")
		}
		name, file := rest[0], rest[1]
		if !publisherName.MatchString(name) {
			return usagef("publisher %q: use the manifest's publisher name (lowercase letters, digits, '.', '_', '-')", name)
		}
		data, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		pub, err := bundle.ParsePublicKey(data)
		if err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
		st, err := g.openStore(ctx)
		if err != nil {
			return err
		}
		defer st.Close()
		if err := st.PutTrustKey(ctx, store.TrustKey{Name: name, PublicKey: []byte(pub), Added: time.Now().UTC(), AddedBy: whoami()}); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "trusted key %s for publisher %s: bundles whose manifest says publisher: %s must be signed by it\n", bundle.KeyID(pub), name, name)
		return g.recordAction(ctx, st, "trust add", name, map[string]string{"key_id": bundle.KeyID(pub)})
	case "list":
		if len(rest) != 0 {
			return usagef("use: airlock trust list")
		}
		st, err := g.openStore(ctx)
		if err != nil {
			return err
		}
		defer st.Close()
		keys, err := st.ListTrustKeys(ctx)
		if err != nil {
			return err
		}
		slices.SortFunc(keys, func(a, b store.TrustKey) int { return strings.Compare(a.Name, b.Name) })
		if *asJSON {
			type row struct {
				Publisher string    `json:"publisher"`
				KeyID     string    `json:"key_id"`
				PublicKey string    `json:"public_key"`
				Added     time.Time `json:"added"`
				AddedBy   string    `json:"added_by"`
			}
			rows := make([]row, 0, len(keys))
			for _, k := range keys {
				rows = append(rows, row{k.Name, bundle.KeyID(ed25519.PublicKey(k.PublicKey)), string(bundle.MarshalPublicKey(ed25519.PublicKey(k.PublicKey))), k.Added, k.AddedBy})
			}
			return writeJSON(e, rows)
		}
		if len(keys) == 0 {
			fmt.Fprintln(e.stdout, "No trusted keys: every signed bundle is refused. Add a publisher's key with 'airlock trust add PUBLISHER KEYFILE'.")
			return nil
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "PUBLISHER\tKEY ID\tADDED\tBY")
		for _, k := range keys {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.Name, bundle.KeyID(ed25519.PublicKey(k.PublicKey)), k.Added.Local().Format(time.DateTime), k.AddedBy)
		}
		return tw.Flush()
	case "rm", "remove":
		if len(rest) != 1 {
			return usagef("use: airlock trust rm PUBLISHER")
		}
		st, err := g.openStore(ctx)
		if err != nil {
			return err
		}
		defer st.Close()
		if err := st.DeleteTrustKey(ctx, rest[0]); errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("no key is trusted for publisher %q: see 'airlock trust list'", rest[0])
		} else if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "removed the key trusted for publisher %s\n", rest[0])
		return g.recordAction(ctx, st, "trust rm", rest[0], nil)
	}
	return usagef("unknown sub-command %q: use add, list or rm", sub)
}

// whoami names the admin in the trust store's AddedBy.
func whoami() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return "cli"
}
