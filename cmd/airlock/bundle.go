package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/airlock-dev/airlock/host/bundle"
	"github.com/airlock-dev/airlock/host/manifest"
	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/host/store"
)

// pluginCommands are the sub-commands of `airlock plugin` besides build.
var pluginCommands = map[string]func(ctx context.Context, e *env, args []string) error{
	"keygen":  runPluginKeygen,
	"pack":    runPluginPack,
	"sign":    runPluginSign,
	"verify":  runPluginVerify,
	"install": runPluginInstall,
	"list":    runPluginList,
	"remove":  runPluginRemove,
	"test":    runPluginTest,
}

func runPluginKeygen(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "plugin keygen", `
Usage: airlock plugin keygen --out KEYFILE [--force]

Makes an ed25519 key pair for signing bundles: KEYFILE holds the private key (PEM PKCS #8, mode
0600: keep it secret, never commit it) and KEYFILE.pub the public key (PEM), which admins add to
their trust store with 'airlock trust add PUBLISHER KEYFILE.pub'.`, `
  airlock plugin keygen --out ~/.airlock/acme.key`)
	out := fs.String("out", "", "the private key `file` to write (the public key goes to FILE.pub)")
	force := fs.Bool("force", false, "overwrite existing key files")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" || fs.NArg() > 0 {
		return usagef("use: airlock plugin keygen --out KEYFILE")
	}
	priv, pub, err := bundle.GenerateKey()
	if err != nil {
		return err
	}
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if *force {
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
	}
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{{*out, priv, 0o600}, {*out + ".pub", pub, 0o644}} {
		fh, err := os.OpenFile(f.path, flags, f.mode)
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s exists: choose another --out, or pass --force to replace the key (bundles signed with the old key will no longer verify)", f.path)
		}
		if err != nil {
			return err
		}
		if err := fh.Chmod(f.mode); err != nil {
			fh.Close()
			return err
		}
		if _, err := fh.Write(f.data); err != nil {
			fh.Close()
			return err
		}
		if err := fh.Close(); err != nil {
			return err
		}
	}
	pk, _ := bundle.ParsePublicKey(pub)
	fmt.Fprintf(e.stdout, "private key: %s (keep it secret)\npublic key:  %s.pub\nkey id:      %s\n", *out, *out, bundle.KeyID(pk))
	return nil
}

func runPluginPack(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "plugin pack", `
Usage: airlock plugin pack DIR|MANIFEST [--out FILE] [--key KEYFILE]

Packs a connector into one bundle file, NAME-VERSION.airlock (a gzip-compressed tar holding
manifest.yaml, module.wasm and, once signed, signature.json). DIR holds manifest.yaml (or exactly
one *.yaml manifest) and the module its module.path names; MANIFEST is a manifest file, such as
the stamped build/plugins/NAME.yaml that 'airlock plugin build' writes. A manifest whose module
is not pinned yet gets module.sha256 set in the bundle; one pinning another digest is refused.
With --key the bundle is signed at once (see 'airlock plugin sign').`, `
  GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o weather.wasm . && airlock plugin pack .
  airlock plugin build slack && airlock plugin pack build/plugins/slack.yaml --key acme.key`)
	out := fs.String("out", "", "the bundle `file` to write (default NAME-VERSION.airlock in the working directory)")
	keyFile := fs.String("key", "", "sign with this private key `file`")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("use: airlock plugin pack DIR|MANIFEST")
	}
	manifestPath, err := findManifest(fs.Arg(0))
	if err != nil {
		return err
	}
	src, err := os.ReadFile(manifestPath)
	if err != nil {
		return err
	}
	m, err := manifest.Parse(manifestPath, src)
	if err != nil {
		return err
	}
	wasm, err := os.ReadFile(m.ModulePath())
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("the module %s does not exist: build it first (GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o %s .)", m.ModulePath(), filepath.Base(m.ModulePath()))
	}
	if err != nil {
		return err
	}
	b, err := bundle.Pack(src, wasm)
	if err != nil {
		return err
	}
	signed := ""
	if *keyFile != "" {
		key, err := readPrivateKey(*keyFile)
		if err != nil {
			return err
		}
		if err := b.Sign(key); err != nil {
			return err
		}
		signed = ", signed by key " + b.Signature.KeyID
	}
	path := *out
	if path == "" {
		path = bundle.FileName(m)
	}
	if err := writeBundle(path, b); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s: %s %s by %s, module sha256 %s%s\n", path, m.Name, m.Version, m.Publisher, digestOf(b), signed)
	return nil
}

func digestOf(b *bundle.Bundle) string {
	m, err := manifest.Parse(bundle.ManifestEntry, b.Manifest)
	if err != nil {
		return "?"
	}
	return m.Module.SHA256
}

// findManifest resolves pack's argument: a manifest file, or a directory holding manifest.yaml
// or exactly one other *.yaml file.
func findManifest(arg string) (string, error) {
	fi, err := os.Stat(arg)
	if err != nil {
		return "", err
	}
	if !fi.IsDir() {
		return arg, nil
	}
	if p := filepath.Join(arg, "manifest.yaml"); fileExists(p) {
		return p, nil
	}
	matches, _ := filepath.Glob(filepath.Join(arg, "*.yaml"))
	switch len(matches) {
	case 1:
		return matches[0], nil
	case 0:
		return "", fmt.Errorf("%s has no manifest.yaml: pack a connector directory or name the manifest file", arg)
	}
	return "", fmt.Errorf("%s holds several manifests (%s): name the one to pack", arg, strings.Join(matches, ", "))
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

func readPrivateKey(path string) (ed25519.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	key, err := bundle.ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return key, nil
}

// writeBundle writes a bundle file atomically.
func writeBundle(path string, b *bundle.Bundle) error {
	data, err := b.Bytes()
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func readBundleFile(path string) (*bundle.Bundle, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := bundle.Read(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

func runPluginSign(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "plugin sign", `
Usage: airlock plugin sign BUNDLE --key KEYFILE

Signs a bundle with an ed25519 private key (from 'airlock plugin keygen'), replacing any earlier
signature. The signature covers the canonical manifest, which pins the module's sha256: changing
any byte of the module or any field of the manifest breaks it.`, `
  airlock plugin sign weather-1.0.0.airlock --key ~/.airlock/acme.key`)
	keyFile := fs.String("key", "", "the private key `file`")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 || *keyFile == "" {
		return usagef("use: airlock plugin sign BUNDLE --key KEYFILE")
	}
	key, err := readPrivateKey(*keyFile)
	if err != nil {
		return err
	}
	b, err := readBundleFile(fs.Arg(0))
	if err != nil {
		return err
	}
	if err := b.Sign(key); err != nil {
		return err
	}
	if err := writeBundle(fs.Arg(0), b); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s: signed by key %s\n", fs.Arg(0), b.Signature.KeyID)
	return nil
}

func runPluginVerify(ctx context.Context, e *env, args []string) error {
	var g globals
	fs := newFlagSet(e, "plugin verify", `
Usage: airlock plugin verify BUNDLE [--key PUBFILE]

Checks a bundle without installing it: the archive's limits, the manifest, the module's digest
against the manifest's pin, and the signature against the trust store (a key trusted under the
manifest's publisher name). With --key, the signature is checked against that public key instead
(a publisher checking their own bundle). Prints what the connector asks for.`, `
  airlock plugin verify weather-1.0.0.airlock
  airlock plugin verify weather-1.0.0.airlock --key acme.key.pub`)
	g.register(fs)
	keyFile := fs.String("key", "", "verify against this public key `file` instead of the trust store")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("use: airlock plugin verify BUNDLE")
	}
	b, err := readBundleFile(fs.Arg(0))
	if err != nil {
		return err
	}
	var keys []bundle.Key
	if *keyFile != "" {
		if keys, err = keyFileFor(*keyFile, b); err != nil {
			return err
		}
	} else {
		st, err := g.openStore(ctx)
		if err != nil {
			return err
		}
		defer st.Close()
		if keys, err = bundle.TrustedKeys(ctx, st); err != nil {
			return err
		}
	}
	v, err := bundle.Verify(b, keys, bundle.Options{})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s: ok: %s %s by %s, signed by trusted key %s, module sha256 %s\n", fs.Arg(0), v.Manifest.Name, v.Manifest.Version, v.Publisher, v.KeyID, v.Digest)
	printAsks(e.stdout, v.Manifest)
	return nil
}

// printAsks summarises what a manifest asks for, for the admin who installs it.
func printAsks(w io.Writer, m *manifest.Manifest) {
	fmt.Fprintf(w, "  tools:")
	for _, t := range m.Tools {
		fmt.Fprintf(w, " %s", t.Name)
		if len(t.Scopes) > 0 {
			fmt.Fprintf(w, "[%s]", strings.Join(t.Scopes, ","))
		}
	}
	fmt.Fprintln(w)
	for _, r := range m.Network {
		fmt.Fprintf(w, "  network: %s://%s:%d%s %s\n", r.Scheme, r.Host, r.Port, r.PathPrefix, strings.Join(r.Methods, ","))
	}
	for _, c := range m.Credentials {
		fmt.Fprintf(w, "  credential: %s (%s) sent to %s\n", c.Name, c.Kind, strings.Join(c.Hosts, ", "))
	}
	if m.Database != nil {
		for _, f := range m.Database.Functions {
			fmt.Fprintf(w, "  database function: %s (read_only=%v)\n", f.Name, f.ReadOnly)
		}
	}
	printBindings(w, m)
}

// maxDownloadTime bounds a bundle download.
const maxDownloadTime = 2 * time.Minute

// fetchBundle reads a bundle from a file or downloads it. Downloads are HTTPS only (plain http
// only from a loopback address, for local tests), capped at bundle.MaxSize, and every redirect
// hop is held to the same rules.
func fetchBundle(ctx context.Context, src string) (*bundle.Bundle, error) {
	if !strings.HasPrefix(src, "https://") && !strings.HasPrefix(src, "http://") {
		return readBundleFile(src)
	}
	u, err := url.Parse(src)
	if err != nil {
		return nil, usagef("%q is not a URL: %v", src, err)
	}
	if err := downloadAllowed(u); err != nil {
		return nil, err
	}
	client := &http.Client{
		Timeout: maxDownloadTime,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errors.New("more than 5 redirects")
			}
			return downloadAllowed(req.URL)
		},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("downloading the bundle: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("downloading the bundle: %s answered HTTP %d: check the URL", u.Redacted(), resp.StatusCode)
	}
	if resp.ContentLength > bundle.MaxSize {
		return nil, fmt.Errorf("%w: the download is %d bytes, more than the %d a bundle may be", bundle.ErrMalformed, resp.ContentLength, bundle.MaxSize)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, bundle.MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("downloading the bundle: %w", err)
	}
	if len(data) > bundle.MaxSize {
		return nil, fmt.Errorf("%w: the download is more than the %d bytes a bundle may be", bundle.ErrMalformed, bundle.MaxSize)
	}
	b, err := bundle.Read(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", u.Redacted(), err)
	}
	return b, nil
}

func downloadAllowed(u *url.URL) error {
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		h := u.Hostname()
		if ip := net.ParseIP(h); h == "localhost" || ip != nil && ip.IsLoopback() {
			return nil
		}
		return fmt.Errorf("refusing to download a bundle over plain http from %s: use https (http is accepted only from a loopback address, for local tests)", u.Host)
	}
	return fmt.Errorf("refusing to download from a %s: URL: use https", u.Scheme)
}

func runPluginInstall(ctx context.Context, e *env, args []string) error {
	var g globals
	fs := newFlagSet(e, "plugin install", `
Usage: airlock plugin install BUNDLE|URL [--allow-unsigned]

Verifies a bundle (see 'airlock plugin verify') and records it in the state store, with its
publisher and module digest. Installing grants nothing: an admin grants tools, scopes and hosts
separately. The first version of a connector becomes its active version. A later version becomes
active only if it asks for nothing more than the active one; otherwise it is recorded pending,
with the list of what it asks for more, until an admin approves it. Nothing is recorded when any
check fails.

URL must be https:// (plain http only from a loopback address, for local tests); downloads are
capped at 66 MiB.

--allow-unsigned accepts an unsigned or untrusted bundle, for local development only: the record
says unsigned, a warning is printed, and the host marks every audit record of the connector.`, `
  airlock plugin install weather-1.0.0.airlock
  airlock plugin install https://plugins.acme.example/weather-1.0.0.airlock`)
	g.register(fs)
	allowUnsigned := fs.Bool("allow-unsigned", false, "accept an unsigned or untrusted bundle (local development only)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("use: airlock plugin install BUNDLE|URL")
	}
	b, err := fetchBundle(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	st, err := g.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	keys, err := bundle.TrustedKeys(ctx, st)
	if err != nil {
		return err
	}
	v, err := bundle.Verify(b, keys, bundle.Options{AllowUnsigned: *allowUnsigned})
	if err != nil {
		return err
	}
	if v.Unsigned {
		fmt.Fprintf(e.stderr, "WARNING: installing %s %s WITHOUT A TRUSTED SIGNATURE (--allow-unsigned): %s\n"+
			"WARNING: it is recorded unsigned; use this for local development only.\n", v.Manifest.Name, v.Manifest.Version, v.Reason)
	}
	res, err := bundle.Install(ctx, st, v, time.Now())
	if err != nil {
		return err
	}
	if err := g.recordInstall(ctx, st, res); err != nil {
		return err
	}
	in := res.Installed
	switch {
	case res.AlreadyInstalled:
		fmt.Fprintf(e.stdout, "%s %s is already installed (%s, module sha256 %s)\n", in.Name, in.Version, in.Status, in.Digest)
	case in.Status == bundle.StatusActive:
		fmt.Fprintf(e.stdout, "installed %s %s by %s (module sha256 %s): active", in.Name, in.Version, in.Publisher, in.Digest)
		if res.Previous != "" {
			fmt.Fprintf(e.stdout, ", replacing %s (it asks for nothing more)", res.Previous)
		}
		fmt.Fprintf(e.stdout, "\nNothing is granted by installing: grant its tools to make them callable.\n")
	default:
		fmt.Fprintf(e.stdout, "installed %s %s by %s (module sha256 %s): PENDING, %s stays active\n", in.Name, in.Version, in.Publisher, in.Digest, res.Previous)
		if res.Downgrade {
			fmt.Fprintf(e.stdout, "  %s is older than the active %s: a downgrade needs an admin's approval\n", in.Version, res.Previous)
		}
		if len(res.Changes) > 0 {
			fmt.Fprintf(e.stdout, "It asks for more than %s; an admin must approve:\n", res.Previous)
			for _, c := range res.Changes {
				fmt.Fprintf(e.stdout, "  + %s\n", c)
			}
		}
	}
	return nil
}

func runPluginList(ctx context.Context, e *env, args []string) error {
	var g globals
	fs := newFlagSet(e, "plugin list", `
Usage: airlock plugin list [--json]

Lists the installed connectors: name, version, status (active, pending, retired), publisher,
module digest, and whether the bundle was installed unsigned.`, `
  airlock plugin list`)
	g.register(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	st, err := g.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	list, err := st.ListInstalled(ctx)
	if err != nil {
		return err
	}
	slices.SortFunc(list, func(a, b store.Installed) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return bundle.CompareVersions(a.Version, b.Version)
	})
	if *asJSON {
		type row struct {
			Name        string    `json:"name"`
			Version     string    `json:"version"`
			Status      string    `json:"status"`
			Publisher   string    `json:"publisher"`
			Digest      string    `json:"module_sha256"`
			Unsigned    bool      `json:"unsigned"`
			InstalledAt time.Time `json:"installed_at"`
		}
		rows := make([]row, 0, len(list))
		for _, in := range list {
			rows = append(rows, row{in.Name, in.Version, in.Status, in.Publisher, in.Digest, in.Unsigned, in.InstalledAt})
		}
		return writeJSON(e, rows)
	}
	if len(list) == 0 {
		fmt.Fprintln(e.stdout, "No connectors installed. Install one with 'airlock plugin install BUNDLE'.")
		return nil
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVERSION\tSTATUS\tPUBLISHER\tMODULE SHA256\tSIGNED")
	for _, in := range list {
		signed := "yes"
		if in.Unsigned {
			signed = "NO (--allow-unsigned)"
		}
		d := in.Digest
		if len(d) > 16 {
			d = d[:16] + "…"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", in.Name, in.Version, in.Status, in.Publisher, d, signed)
	}
	return tw.Flush()
}

func runPluginRemove(ctx context.Context, e *env, args []string) error {
	var g globals
	fs := newFlagSet(e, "plugin remove", `
Usage: airlock plugin remove NAME[@VERSION]

Removes one installed version (NAME@VERSION), or every version of a connector (NAME). Grants
are kept: a connector installed again under the same name gets them back.`, `
  airlock plugin remove weather@1.0.0
  airlock plugin remove weather`)
	g.register(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usagef("use: airlock plugin remove NAME[@VERSION]")
	}
	name, version, _ := strings.Cut(fs.Arg(0), "@")
	st, err := g.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	list, err := st.ListInstalled(ctx)
	if err != nil {
		return err
	}
	removed := 0
	for _, in := range list {
		if in.Name != name || version != "" && in.Version != version {
			continue
		}
		if err := st.DeleteInstalled(ctx, in.Name, in.Version); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "removed %s %s (%s)\n", in.Name, in.Version, in.Status)
		removed++
	}
	if removed == 0 {
		return fmt.Errorf("%s is not installed: see 'airlock plugin list'", fs.Arg(0))
	}
	return nil
}

func runPluginTest(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "plugin test", `
Usage: airlock plugin test BUNDLE --upstream URL [--secret SLOT=REF]… [--json] [--key PUBFILE]

Runs every tool of a bundle in a real sandboxed host against a fake upstream (a local mock of the
API: every origin of the manifest's network rules is sent to URL), with a canary secret in every
static credential slot, and reports what it observed next to what the manifest declares: the
requests each tool attempted (and which ones the manifest does not allow), whether each result
matches the output schema, and any echo of the canary secret. Each tool is called once with each
of its manifest examples (tools[].examples), else once with arguments made from its input
schema: its "examples" (or const, default, enum) where given, else minimal values.

--secret SLOT=REF fills a credential slot with a real secret instead of the canary, for an
upstream that checks its key (a sandbox account): REF is env:VAR or file:PATH. Its value is
checked for echoes like the canary and never printed.

The bundle may be unsigned (a publisher tests before signing); with --key its signature is
checked against that public key. Exit code 1 when a call fails (or a tool cannot be given valid
arguments), a tool's output does not match its schema, a request went outside the manifest, or a
secret was echoed.`, `
  airlock plugin test weather-1.0.0.airlock --upstream http://127.0.0.1:8099
  airlock plugin test weather-1.0.0.airlock --upstream https://sandbox.weather.example --secret api_token=env:WEATHER_SANDBOX_KEY`)
	upstream := fs.String("upstream", "", "the fake upstream's `origin`, like http://127.0.0.1:8099")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	keyFile := fs.String("key", "", "check the signature against this public key `file`")
	secrets := mapFlag{}
	fs.Var(secrets, "secret", "`SLOT=REF`: a real secret (env:VAR or file:PATH) for a credential slot instead of the canary (repeatable)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 || *upstream == "" {
		return usagef("use: airlock plugin test BUNDLE --upstream URL")
	}
	b, err := readBundleFile(fs.Arg(0))
	if err != nil {
		return err
	}
	var keys []bundle.Key
	opts := bundle.Options{AllowUnsigned: true}
	if *keyFile != "" {
		if keys, err = keyFileFor(*keyFile, b); err != nil {
			return err
		}
		opts = bundle.Options{}
	}
	v, err := bundle.Verify(b, keys, opts)
	if err != nil {
		return err
	}
	// The compiled module is cached in the user's cache directory (keyed by content), so testing
	// again after an edit of the manifest or the fake does not compile the module again.
	var scratch string
	if d, err := os.UserCacheDir(); err == nil {
		scratch = filepath.Join(d, "airlock", "plugin-test")
	}
	rep, err := bundle.Probe(ctx, v, bundle.ProbeOptions{Upstream: *upstream, Secrets: secrets, StateDir: scratch,
		Source: secret.Mux{"env": secret.Env{}, "file": secret.File{}}})
	if err != nil {
		return err
	}
	if *asJSON {
		if err := writeJSON(e, rep); err != nil {
			return err
		}
	} else {
		if v.Unsigned {
			fmt.Fprintf(e.stdout, "(bundle not signature-checked: %s)\n", v.Reason)
		}
		fmt.Fprint(e.stdout, rep.String())
	}
	if rep.Failed() {
		return errSilent
	}
	return nil
}

// keyFileFor trusts the public key in path as the key of b's publisher, for commands that
// verify against one key file instead of the trust store.
func keyFileFor(path string, b *bundle.Bundle) ([]bundle.Key, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pub, err := bundle.ParsePublicKey(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	m, err := manifest.Parse(bundle.ManifestEntry, b.Manifest)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", bundle.ErrInvalidManifest, err)
	}
	return []bundle.Key{{Name: m.Publisher, PublicKey: pub}}, nil
}
