package store

import (
	"errors"
	"fmt"
	"os"
	"sync"
)

// tokenCache keeps the tokens an SQLite file's store has looked up, so that a request does not
// pay a read of the database (on a WAL the audit keeps changing, SQLite re-reads its pages for
// every read transaction) to learn what it learned a moment ago.
//
// It must not keep a revoked token alive, also when another process revoked it: every change to
// the tokens table (added, revoked, role changed) appends a byte to a file beside the database,
// the change mark, after its commit; every lookup stats the mark first and, when it is not the
// file it saw before (device and inode, size, modification time), forgets every token. A
// lookup that comes after a revocation returned therefore sees the mark it left, and reads the
// database. A token is also read again once its last use is due to be stamped (once a minute),
// which bounds how long a change made without touching the mark (by hand, or by a version of
// airlock before the mark) goes unseen. If the mark cannot be stat'ed, nothing is cached.
type tokenCache struct {
	mark string // path of the change mark

	mu     sync.Mutex
	seen   os.FileInfo // the mark when tokens were read
	tokens map[tokenKey]Token
}

type tokenKey struct{ kind, sha256 string }

// tokenMarkSuffix names the change mark after the database file.
const tokenMarkSuffix = "-token-changes"

// newTokenCache returns the cache of the SQLite file at path, creating its change mark (mode
// 0600, like the database) if it can: while the mark cannot be stat'ed, tokens are read from
// the database on every lookup, and a change that cannot append to it says so.
func newTokenCache(path string) *tokenCache {
	mark := path + tokenMarkSuffix
	if f, err := os.OpenFile(mark, os.O_WRONLY|os.O_CREATE, 0o600); err == nil {
		f.Close()
	}
	return &tokenCache{mark: mark, tokens: map[tokenKey]Token{}}
}

// get returns the cached token of k, and the mark as it is now (nil: cannot be stat'ed; do not
// cache). A nil cache has nothing.
func (c *tokenCache) get(k tokenKey) (t Token, hit bool, mark os.FileInfo) {
	if c == nil {
		return Token{}, false, nil
	}
	mark, err := os.Stat(c.mark)
	if err != nil {
		return Token{}, false, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !sameMark(c.seen, mark) {
		clear(c.tokens)
		c.seen = mark
		return Token{}, false, mark
	}
	t, hit = c.tokens[k]
	return t, hit, mark
}

// put caches t, read from the database after the mark was stat'ed as mark, unless the mark
// changed meanwhile.
func (c *tokenCache) put(k tokenKey, t Token, mark os.FileInfo) {
	if c == nil || mark == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if sameMark(c.seen, mark) {
		c.tokens[k] = t
	}
}

// changed appends to the mark, after a change to the tokens table committed, so that every
// process on the file forgets the tokens it cached.
func (c *tokenCache) changed() error {
	if c == nil {
		return nil
	}
	f, err := os.OpenFile(c.mark, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err == nil {
		_, err = f.Write([]byte{'.'})
		err = errors.Join(err, f.Close())
	}
	if err != nil {
		return fmt.Errorf("the change is saved, but running servers on this file may accept the old token for up to %s (restart them to apply it now): %w", lastUsedEvery, err)
	}
	return nil
}

func sameMark(a, b os.FileInfo) bool {
	return a != nil && b != nil && os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}
