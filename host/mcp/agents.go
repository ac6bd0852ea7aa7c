package mcp

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/airlock-dev/airlock/host/store"
)

// Agent is an agent allowed to call tools over HTTP. Its token is never stored: only the
// SHA-256 of it.
type Agent struct {
	Name string `json:"name"`
	// Subject is the tenant the agent's calls act for (host.CallRequest.Subject).
	Subject     string    `json:"subject"`
	TokenSHA256 string    `json:"token_sha256"` // hex
	Created     time.Time `json:"created"`
	// Role (admin tokens only), LastUsed (to the minute) and Expires (zero: never) are kept by
	// the state store only; an admin token kept in a file is an owner's.
	Role     string    `json:"-"`
	LastUsed time.Time `json:"-"`
	Expires  time.Time `json:"-"`
}

// Identity is who an authenticated request comes from.
type Identity struct {
	Name, Subject string
	// Role is an admin's role (host/admin.Role); "" for agents.
	Role string
}

// NewToken describes a token to issue with [Agents.Issue].
type NewToken struct {
	Name    string
	Subject string    // agents: the tenant its calls act for; "" means "default"
	Role    string    // admins: viewer, approver, granter or owner; "" means owner
	Expires time.Time // zero: never; only tokens kept in the state store can expire
}

// roleOwner is the role of an admin token that names none: admin tokens could do everything
// before roles existed, and a file of admin tokens has no place for one.
const roleOwner = "owner"

// Errors of the agent store, for callers that branch on them.
var (
	// ErrAgentExists is returned by Add for a name already in use.
	ErrAgentExists = errors.New("an agent with this name already exists")
	// ErrNoAgent is returned by Revoke for an unknown name.
	ErrNoAgent = errors.New("no agent with this name")
)

var agentName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// TokenPrefix starts every agent token, so that secret scanners and humans recognise one.
const TokenPrefix = "airlock_agent_"

// AdminTokenPrefix starts every admin token. Admin tokens live in their own file and carry
// their own prefix, so an agent token can never pass as an admin's.
const AdminTokenPrefix = "airlock_admin_"

// Agents holds agents' names, subjects and token hashes: in the state store ([StoreAgents], what
// the CLI and server use, shared by replicas) or in a file ([OpenAgents], STATE_DIR/agents.json,
// the format older versions used). The file is written atomically with mode 0600 and re-read
// whenever it changes on disk (checked with a stat on each Verify); the store is asked on each
// Verify ([store.Store.LookupToken]). Either way an agent added or revoked by another process takes effect on the next
// request. Safe for concurrent use.
type Agents struct {
	path   string
	prefix string
	st     *store.Store // when set, tokens live in the state store instead of path
	kind   string       // store.TokenAgent or store.TokenAdmin

	mu     sync.Mutex
	stat   os.FileInfo // of the file when agents was read; nil if it did not exist
	agents []Agent
	err    error // reading the file failed
}

type agentsFile struct {
	Agents []Agent `json:"agents"`
}

// OpenAgents returns the agent store at path. A missing file means no agents.
func OpenAgents(path string) *Agents { return &Agents{path: path, prefix: TokenPrefix} }

// OpenAdmins returns the store of admin tokens at path (STATE_DIR/admins.json): the same file
// format as agents, tokens starting with AdminTokenPrefix. An admin's Subject is unused.
func OpenAdmins(path string) *Agents { return &Agents{path: path, prefix: AdminTokenPrefix} }

// StoreAgents returns the agents kept in the state store: every process on the same store (all
// replicas on one PostgreSQL) accepts the same tokens, and a revocation is refused by every one
// of them from its next request on, since each request looks its token up (on an SQLite file,
// in memory until the store's change mark says the tokens changed: [store.Store.LookupToken]).
func StoreAgents(st *store.Store) *Agents {
	return &Agents{prefix: TokenPrefix, st: st, kind: store.TokenAgent}
}

// StoreAdmins is [StoreAgents] for admin tokens.
func StoreAdmins(st *store.Store) *Agents {
	return &Agents{prefix: AdminTokenPrefix, st: st, kind: store.TokenAdmin}
}

// Path is the file the store reads and writes ("" when tokens live in the state store).
func (a *Agents) Path() string { return a.path }

// storeTimeout bounds a token lookup in the state store: a request is refused rather than held.
const storeTimeout = 5 * time.Second

// load re-reads the file if it changed since the last read. a.mu must be held.
func (a *Agents) load() error {
	fi, err := os.Stat(a.path)
	if errors.Is(err, os.ErrNotExist) {
		a.stat, a.agents, a.err = nil, nil, nil
		return nil
	}
	if err != nil {
		a.stat, a.agents, a.err = nil, nil, err
		return err
	}
	if a.stat != nil && a.err == nil && os.SameFile(a.stat, fi) && a.stat.ModTime().Equal(fi.ModTime()) && a.stat.Size() == fi.Size() {
		return nil
	}
	data, err := os.ReadFile(a.path)
	if err != nil {
		a.stat, a.agents, a.err = nil, nil, err
		return err
	}
	var f agentsFile
	if err := json.Unmarshal(data, &f); err != nil {
		a.stat, a.agents, a.err = nil, nil, fmt.Errorf("%s: %w", a.path, err)
		return a.err
	}
	a.stat, a.agents, a.err = fi, f.Agents, nil
	return nil
}

// List returns the agents, sorted by name.
func (a *Agents) List() ([]Agent, error) {
	if a.st != nil {
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		defer cancel()
		ts, err := a.st.ListTokens(ctx, a.kind)
		out := make([]Agent, len(ts))
		for i, t := range ts {
			out[i] = Agent{Name: t.Name, Subject: t.Subject, Role: t.Role, TokenSHA256: t.SHA256, Created: t.Created, LastUsed: t.LastUsed, Expires: t.Expires}
		}
		return out, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.load(); err != nil {
		return nil, err
	}
	out := append([]Agent(nil), a.agents...)
	for i := range out {
		out[i].Role = a.fileRole()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Add creates an agent (or an admin, who is then an owner) and returns its token, which is
// shown to nobody else and stored only as its SHA-256. subject "" means "default".
func (a *Agents) Add(name, subject string) (token string, err error) {
	return a.Issue(NewToken{Name: name, Subject: subject})
}

// AddUntil is [Agents.Add] with an expiry (zero: never).
func (a *Agents) AddUntil(name, subject string, expires time.Time) (token string, err error) {
	return a.Issue(NewToken{Name: name, Subject: subject, Expires: expires})
}

// fileRole is the role of a token kept in a file: an owner's for admins, none for agents.
func (a *Agents) fileRole() string {
	if a.prefix == AdminTokenPrefix {
		return roleOwner
	}
	return ""
}

// Issue creates a token holder as nt describes and returns the token, which is shown to
// nobody else and stored only as its SHA-256. Only tokens kept in the state store can expire
// or have a role other than owner.
func (a *Agents) Issue(nt NewToken) (token string, err error) {
	name, subject, expires := nt.Name, nt.Subject, nt.Expires
	if !agentName.MatchString(name) {
		return "", fmt.Errorf("agent name %q: use 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit", name)
	}
	if subject == "" {
		subject = "default"
	}
	if a.st != nil {
		token, err := a.newToken()
		if err != nil {
			return "", err
		}
		role := ""
		if a.kind == store.TokenAdmin {
			subject, role = "", nt.Role
			if role == "" {
				role = roleOwner
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		defer cancel()
		err = a.st.AddToken(ctx, store.Token{Kind: a.kind, Name: name, Subject: subject, Role: role, SHA256: hashToken(token),
			Created: time.Now().UTC().Truncate(time.Second), Expires: expires.UTC()})
		if errors.Is(err, store.ErrConflict) {
			return "", fmt.Errorf("%s %s: %w (revoke it first to issue a new token)", a.kind, name, ErrAgentExists)
		}
		return token, err
	}
	if !expires.IsZero() || nt.Role != "" && nt.Role != a.fileRole() {
		return "", fmt.Errorf("%s: tokens kept in a file cannot expire or have a role; keep them in the state store", a.path)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.load(); err != nil {
		return "", err
	}
	for _, ag := range a.agents {
		if ag.Name == name {
			return "", fmt.Errorf("agent %s: %w (revoke it first to issue a new token)", name, ErrAgentExists)
		}
	}
	token, err = a.newToken()
	if err != nil {
		return "", err
	}
	agents := append(append([]Agent(nil), a.agents...),
		Agent{Name: name, Subject: subject, TokenSHA256: hashToken(token), Created: time.Now().UTC().Truncate(time.Second)})
	if err := a.write(agents); err != nil {
		return "", err
	}
	return token, nil
}

// newToken returns a fresh token with the store's prefix and 256 random bits.
func (a *Agents) newToken() (string, error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return a.prefix + base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// Revoke removes an agent: its token stops working on the next request.
func (a *Agents) Revoke(name string) error {
	if a.st != nil {
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		defer cancel()
		err := a.st.RevokeToken(ctx, a.kind, name)
		if errors.Is(err, store.ErrNotFound) {
			return fmt.Errorf("%s %s: %w", a.kind, name, ErrNoAgent)
		}
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.load(); err != nil {
		return err
	}
	var kept []Agent
	for _, ag := range a.agents {
		if ag.Name != name {
			kept = append(kept, ag)
		}
	}
	if len(kept) == len(a.agents) {
		return fmt.Errorf("agent %s: %w", name, ErrNoAgent)
	}
	return a.write(kept)
}

// SetRole changes an admin's role (kept in the state store only); it applies from the admin's
// next request on, on every replica.
func (a *Agents) SetRole(name, role string) error {
	if a.st == nil || a.kind != store.TokenAdmin {
		return errors.New("only admin tokens kept in the state store have a role")
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	err := a.st.SetTokenRole(ctx, a.kind, name, role)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("%s %s: %w", a.kind, name, ErrNoAgent)
	}
	return err
}

// write replaces the file atomically (a temporary file in the same directory, synced, renamed).
func (a *Agents) write(agents []Agent) error {
	if agents == nil {
		agents = []Agent{}
	}
	data, err := json.MarshalIndent(agentsFile{Agents: agents}, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(a.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".agents-*.json")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(append(data, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(f.Name(), a.path); err != nil {
		return err
	}
	a.stat = nil // force a re-read
	return a.load()
}

// Verify returns the agent whose token this is. It re-reads the file if it changed, hashes the
// token and compares it with every stored hash in constant time. ok is false for an unknown or
// revoked token; for an expired one ok is false and err wraps [store.ErrExpired] (its text
// names the holder and the expiry, for logs); any other err means the tokens cannot be read.
func (a *Agents) Verify(token string) (id Identity, ok bool, err error) {
	if !strings.HasPrefix(token, a.prefix) {
		return Identity{}, false, nil
	}
	return a.verifySum(sha256.Sum256([]byte(token)))
}

// VerifySHA256 is [Agents.Verify] for a token known only by its SHA-256 (hex): the admin
// console's sessions keep the hash of the token that signed in, never the token, and verify
// it again on every request, so a revocation or a role change takes effect at once. A string
// that is not 64 hex digits is no token.
func (a *Agents) VerifySHA256(sumHex string) (id Identity, ok bool, err error) {
	b, err := hex.DecodeString(sumHex)
	if err != nil || len(b) != sha256.Size {
		return Identity{}, false, nil
	}
	return a.verifySum([sha256.Size]byte(b))
}

func (a *Agents) verifySum(sum [sha256.Size]byte) (id Identity, ok bool, err error) {
	if a.st != nil {
		// The lookup is by the hash of a 256-bit random token: timing tells nothing usable.
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		defer cancel()
		t, ok, err := a.st.LookupToken(ctx, a.kind, hex.EncodeToString(sum[:]), time.Now())
		if err != nil || !ok {
			return Identity{}, false, err
		}
		return Identity{Name: t.Name, Subject: t.Subject, Role: t.Role}, true, nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err := a.load(); err != nil {
		return Identity{}, false, err
	}
	match := -1
	for i, ag := range a.agents {
		want, err := hex.DecodeString(ag.TokenSHA256)
		if err != nil || len(want) != sha256.Size {
			continue
		}
		if subtle.ConstantTimeCompare(want, sum[:]) == 1 {
			match = i
		}
	}
	if match < 0 {
		return Identity{}, false, nil
	}
	return Identity{Name: a.agents[match].Name, Subject: a.agents[match].Subject, Role: a.fileRole()}, true, nil
}

func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// tokenHashes returns the hex SHA-256 of every current (unexpired) token, from the state store
// or the file, re-read if it changed.
func (a *Agents) tokenHashes() (map[string]bool, error) {
	agents, err := a.List()
	if err != nil {
		return nil, err
	}
	now := time.Now()
	m := make(map[string]bool, len(agents))
	for _, ag := range agents {
		if !ag.Expires.IsZero() && now.After(ag.Expires) {
			continue
		}
		m[strings.ToLower(ag.TokenSHA256)] = true
	}
	return m, nil
}

// MigrateFile moves the tokens of an agents.json or admins.json file (the format of
// [OpenAgents]) into a (*Agents) kept in the state store, once: each one keeps its hash, subject
// and creation time (a name the store already holds is kept as the store has it), and the file
// is then renamed to FILE.migrated so it is not read again. It returns how many tokens moved;
// a missing file moves none.
func (a *Agents) MigrateFile(ctx context.Context, path string) (int, error) {
	if a.st == nil {
		return 0, errors.New("tokens kept in a file cannot be migrated into another file")
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var f agentsFile
	if err := json.Unmarshal(data, &f); err != nil {
		return 0, fmt.Errorf("%s: %w (fix or remove it, then try again)", path, err)
	}
	n := 0
	for _, ag := range f.Agents {
		subject, role := ag.Subject, ""
		if a.kind == store.TokenAdmin {
			subject, role = "", roleOwner // as in the file: admin tokens had no role and could do everything
		}
		err := a.st.AddToken(ctx, store.Token{Kind: a.kind, Name: ag.Name, Subject: subject, Role: role, SHA256: ag.TokenSHA256, Created: ag.Created})
		switch {
		case errors.Is(err, store.ErrConflict):
		case err != nil:
			return n, fmt.Errorf("moving %s %s from %s into the state store: %w", a.kind, ag.Name, path, err)
		default:
			n++
		}
	}
	if err := os.Rename(path, path+".migrated"); err != nil {
		return n, err
	}
	return n, nil
}
