package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/airlock-dev/airlock/host/secret"
)

func runSecret(ctx context.Context, e *env, args []string) error {
	var g globals
	fs := newFlagSet(e, "secret", `
Usage: airlock secret set NAME        (the value is read from stdin, or asked for at a terminal)
       airlock secret list [--json]
       airlock secret rm NAME
       airlock secret rotate-key

Manages the built-in encrypted secret store, which grants reference as store:NAME. Values are
never taken from a flag (they would land in shell history) and never printed: 'list' shows
names and dates only.

Each value is sealed with AES-256-GCM under a data key, bound to its name; the data key is
wrapped by the master key, read from $AIRLOCK_MASTER_KEY (base64 of 32 bytes) or from
STATE_DIR/master.key, created with mode 0600 on first use. Keep the master key apart from
the state: with both, the secrets can be read.

'rotate-key' re-wraps every data key under a new master key without downtime (running hosts
keep their data keys in memory). With a key file, the new key replaces it; with
$AIRLOCK_MASTER_KEY, the new key is printed once for you to set. Afterwards the old key opens
nothing.`, `
  printf %s "$SLACK_BOT_TOKEN" | airlock secret set slack_bot
  airlock secret set salesforce_key < sf.pem
  airlock secret list
  airlock grant slack --credential bot_token=store:slack_bot …`)
	g.register(fs)
	asJSON := fs.Bool("json", false, "list: print JSON (names and dates, never values)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usagef("say what to do: set, list, rm or rotate-key")
	}
	verb, name := fs.Arg(0), fs.Arg(1)
	if err := atMost(fs, 2, " (values are read from stdin, never from arguments)"); err != nil {
		return err
	}
	st, err := g.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	_, stateDir, err := g.loadConfig()
	if err != nil {
		return err
	}
	backend := storeBackend{st}
	if verb == "rotate-key" {
		cfg, _, err := g.loadConfig()
		if err != nil {
			return err
		}
		if ref := cmpOr(g.key, cfg.MasterKey); ref != "" {
			return fmt.Errorf("the master key comes from %s: rotate-key rotates a key in %s or %s only; "+
				"to rotate a referenced key, run it once with that key in %s, then store the printed key under %s", ref, secret.MasterKeyEnv, secret.MasterKeyFile, secret.MasterKeyEnv, ref)
		}
		if err := rotateMasterKey(ctx, e, backend, stateDir); err != nil {
			return err
		}
		return g.recordAction(ctx, st, "secret rotate-key", "master key", nil) // the trail opened with the old key
	}
	g.mayCreateKey, g.notice = verb == "set", e.stderr
	cfg, _, err := g.loadConfig()
	if err != nil {
		return err
	}
	vault, err := g.vault(cfg, secret.Mux{"env": secret.Env{}, "file": secret.File{}})
	if err != nil {
		return err
	}
	key, err := g.masterKey(ctx, st, cfg, stateDir, vault)
	if err != nil {
		return err
	}
	if key == nil {
		return errors.New("no master key and no secrets yet: there is nothing to list or remove (set a secret first, or name the master key with --master-key REF)")
	}
	ss, err := secret.OpenStore(ctx, backend, key)
	if err != nil {
		return err
	}
	switch verb {
	case "set":
		if name == "" {
			return usagef("name the secret: airlock secret set NAME")
		}
		v, err := readSecret(e, name)
		if err != nil {
			return err
		}
		if err := ss.Set(ctx, name, v); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "Secret %s stored (encrypted). Reference it in a grant as store:%s.\n", name, name)
		return g.recordAction(ctx, st, "secret set", name, nil)
	case "list":
		list, err := ss.List(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSON(e, list)
		}
		if len(list) == 0 {
			fmt.Fprintf(e.stdout, "No secrets. Store one with: printf %%s \"$VALUE\" | airlock secret set NAME\n")
			return nil
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tREFERENCE\tUPDATED")
		for _, s := range list {
			fmt.Fprintf(tw, "%s\tstore:%s\t%s\n", s.Name, s.Name, s.Updated.Local().Format(time.DateTime))
		}
		return tw.Flush()
	case "rm":
		if name == "" {
			return usagef("name the secret: airlock secret rm NAME")
		}
		if err := ss.Delete(ctx, name); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "Secret %s removed. Grants that reference store:%s now fail to load until you set it again.\n", name, name)
		return g.recordAction(ctx, st, "secret rm", name, nil)
	default:
		return usagef("unknown action %q: use set, list, rm or rotate-key", verb)
	}
}

// stdin is where secret values are read from; tests replace it.
var stdin io.Reader = os.Stdin

// readSecret reads a value from stdin: at a terminal it prompts without echo, otherwise it
// reads everything (one trailing newline removed).
func readSecret(e *env, name string) (secret.Value, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprintf(e.stderr, "Value for %s (not echoed): ", name)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(e.stderr)
		if err != nil {
			return secret.Value{}, err
		}
		if len(b) == 0 {
			return secret.Value{}, errors.New("empty value: nothing stored")
		}
		return secret.New(string(b)), nil
	}
	b, err := io.ReadAll(io.LimitReader(bufio.NewReader(stdin), 1<<20+1))
	if err != nil {
		return secret.Value{}, err
	}
	if len(b) > 1<<20 {
		return secret.Value{}, errors.New("the value is larger than 1 MiB")
	}
	v := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if v == "" {
		return secret.Value{}, errors.New("empty value on stdin: nothing stored (pipe the value in: printf %s \"$VALUE\" | airlock secret set NAME)")
	}
	return secret.New(v), nil
}

func rotateMasterKey(ctx context.Context, e *env, b secret.Backend, stateDir string) error {
	old, source, err := secret.FindMasterKey(stateDir)
	if err != nil {
		return err
	}
	next, err := secret.NewMasterKey()
	if err != nil {
		return err
	}
	fromEnv := os.Getenv(secret.MasterKeyEnv) != ""
	keyFile := filepath.Join(stateDir, secret.MasterKeyFile)
	if !fromEnv {
		// Save the new key before using it, so a crash never leaves state no saved key opens.
		if err := secret.WriteMasterKeyFile(keyFile+".new", next); err != nil {
			return err
		}
	}
	if err := secret.RotateMasterKey(ctx, b, old, next); err != nil {
		return err
	}
	if fromEnv {
		fmt.Fprintln(e.stdout, secret.EncodeMasterKey(next))
		fmt.Fprintf(e.stderr, "Master key rotated (it came from %s). The new key is printed above, once: set %s to it everywhere airlock runs. The old key no longer opens anything.\n", source, secret.MasterKeyEnv)
		return nil
	}
	if err := os.Rename(keyFile+".new", keyFile); err != nil {
		return fmt.Errorf("the secrets are now wrapped by the key in %s.new but it could not replace %s: %w; move it into place by hand", keyFile, keyFile, err)
	}
	fmt.Fprintf(e.stderr, "Master key rotated: %s holds the new key; the old key no longer opens anything.\n", keyFile)
	return nil
}
