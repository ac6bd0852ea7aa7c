package secret

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// MaxFileSize is the largest secret file [File] reads, in bytes (64 KiB). Secrets are short; a
// larger file is almost certainly the wrong file.
const MaxFileSize = 64 << 10

// Env resolves references of the form "env:NAME" to the value of the environment variable NAME.
// A variable that is unset or empty is reported as [ErrNotFound].
//
// The zero Env reads the process environment. Env is safe for concurrent use if Lookup is.
type Env struct {
	// Lookup returns the value of an environment variable and whether it is set.
	// Nil means os.LookupEnv.
	Lookup func(name string) (string, bool)
}

// Resolve implements [Source].
func (e Env) Resolve(ctx context.Context, ref string) (Value, error) {
	if err := ctx.Err(); err != nil {
		return Value{}, err
	}
	scheme, name, ok := splitRef(ref)
	if !ok || scheme != "env" {
		return Value{}, errors.New(`env source: the reference does not start with "env:": write env:NAME`)
	}
	if !validEnvName(name) {
		// Do not echo name: a mistyped reference may be the secret itself pasted by mistake.
		return Value{}, errors.New("env source: the reference has no valid variable name after \"env:\": " +
			"write env:NAME with NAME made of letters, digits and underscores")
	}
	lookup := e.Lookup
	if lookup == nil {
		lookup = os.LookupEnv
	}
	v, set := lookup(name)
	switch {
	case !set:
		return Value{}, fmt.Errorf("environment variable %s is not set: export it or change the grant's credential reference: %w", name, ErrNotFound)
	case v == "":
		return Value{}, fmt.Errorf("environment variable %s is empty: set it to the secret or change the grant's credential reference: %w", name, ErrNotFound)
	}
	return New(v), nil
}

// File resolves references of the form "file:PATH" to the contents of the file at PATH, without
// one trailing newline ("\n" or "\r\n"), so files written by `echo` work. It refuses files larger
// than [MaxFileSize] and anything that is not a regular file. A missing or empty file is reported
// as [ErrNotFound].
//
// The zero File accepts absolute paths only. File is safe for concurrent use.
type File struct {
	// Dir is the directory relative paths are resolved against (typically the directory of the
	// grant file). Empty means relative paths are refused.
	Dir string
}

// Resolve implements [Source].
func (f File) Resolve(ctx context.Context, ref string) (Value, error) {
	if err := ctx.Err(); err != nil {
		return Value{}, err
	}
	scheme, path, ok := splitRef(ref)
	if !ok || scheme != "file" {
		return Value{}, errors.New(`file source: the reference does not start with "file:": write file:PATH`)
	}
	if path == "" || strings.ContainsRune(path, 0) {
		return Value{}, errors.New("file source: the reference has no valid path after \"file:\": write file:/path/to/secret")
	}
	if !filepath.IsAbs(path) {
		if f.Dir == "" {
			return Value{}, fmt.Errorf("secret file %s is a relative path: use an absolute path in the grant's credential reference", path)
		}
		path = filepath.Join(f.Dir, path)
	}
	fh, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Value{}, fmt.Errorf("secret file %s does not exist: create it or change the grant's credential reference: %w", path, ErrNotFound)
	}
	if err != nil {
		return Value{}, fmt.Errorf("secret file %s cannot be opened (check its permissions): %w", path, err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	if err != nil {
		return Value{}, fmt.Errorf("secret file %s cannot be read: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return Value{}, fmt.Errorf("secret file %s is not a regular file: point the reference at a file that contains only the secret", path)
	}
	if st.Size() > MaxFileSize {
		return Value{}, fmt.Errorf("secret file %s is larger than %d bytes: point the reference at a file that contains only the secret", path, MaxFileSize)
	}
	b, err := io.ReadAll(io.LimitReader(fh, MaxFileSize+1))
	if err != nil {
		return Value{}, fmt.Errorf("secret file %s cannot be read: %w", path, err)
	}
	if len(b) > MaxFileSize { // grew since Stat
		return Value{}, fmt.Errorf("secret file %s is larger than %d bytes: point the reference at a file that contains only the secret", path, MaxFileSize)
	}
	s := string(b)
	if t, ok := strings.CutSuffix(s, "\n"); ok {
		s = strings.TrimSuffix(t, "\r")
	}
	if s == "" {
		return Value{}, fmt.Errorf("secret file %s is empty: write the secret into it: %w", path, ErrNotFound)
	}
	return New(s), nil
}

// Mux resolves a reference with the Source registered for its scheme, the part before the first
// ':' ("env" in "env:SLACK_BOT_TOKEN"). The reference is passed to that Source unchanged.
//
// A Mux must not be modified while it is in use; reading it is safe for concurrent use.
type Mux map[string]Source

// Resolve implements [Source].
func (m Mux) Resolve(ctx context.Context, ref string) (Value, error) {
	scheme, _, ok := splitRef(ref)
	if !ok {
		// Do not echo ref: a value without a scheme is likely the secret pasted in by mistake.
		return Value{}, fmt.Errorf("secret reference has no scheme: write it as %s: %w", m.examples(), ErrBadReference)
	}
	src, found := m[scheme]
	if !found || src == nil {
		return Value{}, fmt.Errorf("secret reference scheme %q is not supported: the supported schemes are %s: %w", scheme, m.schemes(), ErrBadReference)
	}
	return src.Resolve(ctx, ref)
}

// Schemes lists the schemes m resolves, sorted and comma-separated.
func (m Mux) Schemes() string { return m.schemes() }

func (m Mux) schemes() string {
	if len(m) == 0 {
		return "(none configured)"
	}
	names := make([]string, 0, len(m))
	for k, src := range m {
		if src != nil {
			names = append(names, k)
		}
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

func (m Mux) examples() string {
	var ex []string
	for _, k := range strings.Split(m.schemes(), ", ") {
		switch k {
		case "env":
			ex = append(ex, "env:NAME")
		case "file":
			ex = append(ex, "file:PATH")
		case "store":
			ex = append(ex, "store:NAME")
		case "vault":
			ex = append(ex, "vault:MOUNT/PATH#FIELD")
		case "op":
			ex = append(ex, "op://VAULT/ITEM/FIELD")
		case "doppler":
			ex = append(ex, "doppler:PROJECT/CONFIG/NAME")
		case "gcp-sm":
			ex = append(ex, "gcp-sm:projects/PROJECT/secrets/SECRET/versions/VERSION")
		case "azure-kv":
			ex = append(ex, "azure-kv:VAULT/SECRET")
		case "aws-sm":
			ex = append(ex, "aws-sm:NAME_OR_ARN[#JSON_KEY]")
		case "aws-ssm":
			ex = append(ex, "aws-ssm:/PATH/NAME")
		case "(none configured)":
		default:
			ex = append(ex, k+":…")
		}
	}
	if len(ex) == 0 {
		return "scheme:reference (no schemes are configured)"
	}
	return strings.Join(ex, " or ")
}

// Scheme returns the scheme of ref ("store" for "store:slack_bot"), or false when ref has none:
// then it may be a secret pasted by mistake, so never print it (see [Display]).
func Scheme(ref string) (string, bool) {
	scheme, _, ok := splitRef(ref)
	return scheme, ok
}

// Display returns ref for a message or a log line, or a placeholder when ref has no scheme (a
// value without one is likely a secret pasted in place of a reference).
func Display(ref string) string {
	if _, ok := Scheme(ref); ok {
		return ref
	}
	return "(a value without a scheme, not shown)"
}

// splitRef splits "scheme:rest". It reports false unless the scheme looks like one (a short
// lowercase word), so a pasted secret that happens to contain ':' is not echoed as a scheme.
func splitRef(ref string) (scheme, rest string, ok bool) {
	scheme, rest, found := strings.Cut(ref, ":")
	if !found || !validScheme(scheme) {
		return "", "", false
	}
	return scheme, rest, true
}

func validScheme(s string) bool {
	if s == "" || len(s) > 16 {
		return false
	}
	for i, c := range []byte(s) {
		switch {
		case 'a' <= c && c <= 'z':
		case i > 0 && ('0' <= c && c <= '9' || c == '+' || c == '-' || c == '.' || c == '_'):
		default:
			return false
		}
	}
	return true
}

func validEnvName(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for i, c := range []byte(s) {
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', c == '_':
		case i > 0 && '0' <= c && c <= '9':
		default:
			return false
		}
	}
	return true
}
