package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// AuditRecord is one record of the audit log. Records form a hash chain: each carries the hash
// of the one before it, so changing, deleting or reordering a record breaks the chain at that
// point ([Store.VerifyAudit]). With [Store.SetAuditKeys], each link is also authenticated by a
// MAC under a key the database does not hold, so a recomputed chain is caught too.
type AuditRecord struct {
	Seq      int64     // 1, 2, 3 … with no gap
	Time     time.Time // the event's "time" field, or the time it was appended when it has none
	PrevHash string    // Hash of record Seq-1; "" for record 1
	Hash     string    // AuditHash(PrevHash, Seq, Data)
	Data     []byte    // the JSON event, byte for byte as appended
	KeyID    string    // the audit key MAC is made with; "" when appended without keys
	MAC      string    // AuditKeys.SignLink(Seq, Hash); "" when appended without keys
}

// AuditKeys authenticates the links of the audit chain with a key the database does not hold
// (package audit's Trail implements it). Implementations must be safe for concurrent use.
type AuditKeys interface {
	// SignLink returns the id of the active key and the MAC of the link (seq, hash) under it.
	SignLink(seq int64, hash string) (keyID, mac string, err error)
	// CheckLink returns nil if mac authenticates (seq, hash) under the key keyID, and an error
	// saying why not otherwise (unknown key, wrong MAC).
	CheckLink(keyID string, seq int64, hash, mac string) error
}

type auditKeysBox struct{ k AuditKeys }

// SetAuditKeys makes every later [Store.AppendAudit] authenticate its records with k (nil:
// stop), and refuse to extend a log whose last record does not carry a valid MAC.
func (s *Store) SetAuditKeys(k AuditKeys) {
	if k == nil {
		s.auditKeys.Store(nil)
		return
	}
	s.auditKeys.Store(&auditKeysBox{k})
}

// AuditKeys returns what [Store.SetAuditKeys] set, or nil.
func (s *Store) AuditKeys() AuditKeys {
	if b := s.auditKeys.Load(); b != nil {
		return b.k
	}
	return nil
}

// ErrAuditTampered reports that the last record of the audit log does not carry a valid MAC:
// someone without the audit key changed the log. AppendAudit refuses to extend such a log (the
// host fails closed) until it is restored; `airlock audit verify` names the bad record.
var ErrAuditTampered = errors.New("the audit log was changed by someone without the audit key")

// AuditHash is the chain hash of a record: the lowercase hex SHA-256 of
// PrevHash + "\n" + decimal Seq + "\n" + Data.
func AuditHash(prevHash string, seq int64, data []byte) string {
	h := sha256.New()
	h.Write([]byte(prevHash))
	h.Write([]byte{'\n'})
	h.Write([]byte(strconv.FormatInt(seq, 10)))
	h.Write([]byte{'\n'})
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil))
}

// AuditBreak is the error [Store.VerifyAudit] returns for the first record where the chain is
// broken.
type AuditBreak struct {
	Seq    int64  // the first bad (or missing) record
	Reason string // what is wrong with it, in plain words
}

func (e *AuditBreak) Error() string {
	return fmt.Sprintf("audit log broken at record %d: %s", e.Seq, e.Reason)
}

// auditFields are the fields of an event kept in their own columns for filtering.
type auditFields struct {
	Time      *string `json:"time"`
	Kind      string  `json:"kind"`
	Connector string  `json:"connector"`
	Tool      string  `json:"tool"`
	Agent     string  `json:"agent"`
	Subject   string  `json:"subject"`
	Outcome   string  `json:"outcome"`
	// Who asked: labels a client sent with a call (see audit.Event).
	Session      string `json:"session"`
	Conversation string `json:"conversation"`
	User         string `json:"end_user"`
}

// maxAuditColumn bounds the bytes of an indexed column of the audit table (auditColumn).
const maxAuditColumn = 512

// clean makes f's values what the columns hold (auditColumn).
func (f *auditFields) clean() {
	for _, p := range []*string{&f.Kind, &f.Connector, &f.Tool, &f.Agent, &f.Subject, &f.Outcome, &f.Session, &f.Conversation, &f.User} {
		*p = auditColumn(*p)
	}
}

// auditColumn is s as an indexed column of the audit table holds it (the record's data keeps s
// as it is): UTF-8 without NUL bytes, which PostgreSQL refuses in text, and at most
// maxAuditColumn bytes, cut at a character boundary, within the 2704 bytes of a B-tree entry.
// An agent chooses some of these values (a tool name, and a connector name for a call its
// profile refuses): one record PostgreSQL refused failed the whole batch of other callers'
// records with it, and the store sink, retrying that batch, then refused every call (red team,
// session 9).
func auditColumn(s string) string {
	if len(s) <= maxAuditColumn && strings.IndexByte(s, 0) < 0 && utf8.ValidString(s) {
		return s
	}
	s = strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", "\uFFFD"), "\uFFFD")
	if len(s) > maxAuditColumn {
		cut := maxAuditColumn
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}

func parseAuditFields(data []byte) (auditFields, time.Time, error) {
	var f auditFields
	if !bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte("{")) {
		return f, time.Time{}, errors.New("an audit record must be a JSON object")
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return f, time.Time{}, fmt.Errorf("an audit record must be a JSON object with string fields time, kind, connector, tool, agent, subject, outcome, session, conversation and end_user: %w", err)
	}
	f.clean()
	var t time.Time
	if f.Time != nil {
		t, _ = time.Parse(time.RFC3339Nano, *f.Time)
	}
	return f, t, nil
}

// AppendAudit appends one record per element of data (each a JSON object), in order, and
// returns them. Each carries the hash of the one before it (see [AuditHash]) and, when the
// store has [AuditKeys], the MAC of its link; a keyed append refuses, with an error wrapping
// [ErrAuditTampered], to extend a log whose last record's MAC does not check. Appenders are
// serialised, across processes too (an advisory lock on PostgreSQL, the write lock on SQLite),
// so the records of every replica form one chain.
func (s *Store) AppendAudit(ctx context.Context, data ...[]byte) ([]AuditRecord, error) {
	return s.appendAudit(ctx, s.inTx, data)
}

// AppendAuditDeferred is [Store.AppendAudit] returning once the records are committed — in the
// log, for every reader — but perhaps before they are durable: durable returns once they are
// (and nil when they cannot be lost). On an SQLite file the transaction commits without its
// fsync, and durable fsyncs the write-ahead log, outside the database's write lock, so that the
// next append commits while this one is being synced; concurrent calls of durable share one
// fsync. That fsync is the one synchronous=FULL makes at commit. On PostgreSQL and in memory a
// commit is already all there is.
func (s *Store) AppendAuditDeferred(ctx context.Context, data ...[]byte) (recs []AuditRecord, durable func(context.Context) error, err error) {
	if s.wal == nil {
		recs, err := s.AppendAudit(ctx, data...)
		return recs, nil, err
	}
	recs, err = s.appendAudit(ctx, s.inTxUnsynced, data)
	if err != nil {
		return nil, nil, err
	}
	n := s.wal.committed()
	return recs, func(context.Context) error { return s.wal.sync(n) }, nil
}

func (s *Store) appendAudit(ctx context.Context, inTx func(context.Context, func(tx) error) error, data [][]byte) ([]AuditRecord, error) {
	if len(data) == 0 {
		return nil, nil
	}
	type row struct {
		f auditFields
		t time.Time
	}
	rows := make([]row, len(data))
	now := s.now().UTC()
	for i, d := range data {
		f, t, err := parseAuditFields(d)
		if err != nil {
			return nil, fmt.Errorf("store: appending audit record %d of %d: %w: %w", i+1, len(data), ErrRecordRefused, err)
		}
		if t.IsZero() {
			t = now
		}
		rows[i] = row{f, t.UTC()}
	}
	out := make([]AuditRecord, len(data))
	keys := s.AuditKeys()
	stmts, err := s.auditStmts(ctx)
	if err != nil {
		return nil, wrap("appending to the audit log", err)
	}
	err = inTx(ctx, func(t tx) error {
		if err := t.lock(ctx, lockAudit); err != nil {
			return wrap("appending to the audit log", err)
		}
		var (
			seq              int64
			prev, keyID, mac string
		)
		err := t.StmtContext(ctx, stmts.head).QueryRowContext(ctx).Scan(&seq, &prev, &keyID, &mac)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return wrap("reading the head of the audit log", err)
		}
		// A keyed appender extends only a log whose head it can authenticate: the head's hash
		// commits to every record before it, so a checkpoint signed later never vouches for a
		// record forged in the database.
		// A head with no MAC (a log from before the keyed chain) is extended: verification
		// names such records unless an admin adopted them with a signed checkpoint.
		if keys != nil && mac != "" {
			if err := keys.CheckLink(keyID, seq, prev, mac); err != nil {
				return fmt.Errorf("store: appending to the audit log: record %d (the last one) %v: %w; "+
					"run `airlock audit verify`, and restore the database from a backup", seq, err, ErrAuditTampered)
			}
		}
		for i, d := range data {
			seq++
			d = bytes.Clone(d)
			r := AuditRecord{Seq: seq, Time: rows[i].t, PrevHash: prev, Hash: AuditHash(prev, seq, d), Data: d}
			if keys != nil {
				if r.KeyID, r.MAC, err = keys.SignLink(r.Seq, r.Hash); err != nil {
					return fmt.Errorf("store: appending to the audit log: %w", err)
				}
			}
			out[i] = r
			prev = r.Hash
		}
		// Multi-row INSERTs of fixed sizes (64, 16, 4, 1 rows): a batch of n records costs a
		// few statements, not n (one round trip each on PostgreSQL, one parse each on SQLite),
		// and the few statement texts stay in the drivers' caches.
		args := make([]any, 0, auditInsertCols*min(len(out), auditInsertChunks[0]))
		for i := 0; i < len(out); {
			n := 1
			for _, c := range auditInsertChunks {
				if len(out)-i >= c {
					n = c
					break
				}
			}
			args = args[:0]
			for j, r := range out[i : i+n] {
				f := rows[i+j].f
				args = append(args, r.Seq, toNanos(r.Time), r.PrevHash, r.Hash, r.Data, f.Kind, f.Connector, f.Tool, f.Agent, f.Subject, f.Outcome, r.KeyID, r.MAC,
					f.Session, f.Conversation, f.User)
			}
			if _, err := t.StmtContext(ctx, stmts.insert[n]).ExecContext(ctx, args...); err != nil {
				if s.d.isRefused(err) {
					return fmt.Errorf("store: appending to the audit log: %w: %w", ErrRecordRefused, err)
				}
				return wrap("appending to the audit log", err)
			}
			i += n
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// auditInsertChunks are the row counts of the INSERT statements AppendAudit uses, largest
// first; auditInsertCols is the number of values per row.
var auditInsertChunks = [...]int{64, 16, 4, 1}

const auditInsertCols = 16

// auditStmts are the statements of an append, prepared once per store (and per connection).
type auditStmts struct {
	head   *sql.Stmt
	insert map[int]*sql.Stmt // by row count
}

// auditStmts returns the store's prepared append statements, preparing them the first time.
// Called outside any transaction (an SQLite store has one connection).
func (s *Store) auditStmts(ctx context.Context) (*auditStmts, error) {
	s.auditMu.Lock()
	defer s.auditMu.Unlock()
	if s.audit != nil {
		return s.audit, nil
	}
	prep := func(q string) (*sql.Stmt, error) { return s.db.PrepareContext(ctx, s.d.rebind(q)) }
	a := &auditStmts{insert: map[int]*sql.Stmt{}}
	var err error
	if a.head, err = prep(`SELECT seq, hash, key_id, mac FROM audit ORDER BY seq DESC LIMIT 1`); err != nil {
		return nil, err
	}
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", auditInsertCols), ", ") + ")"
	for _, n := range auditInsertChunks {
		q := `INSERT INTO audit (seq, ts, prev_hash, hash, data, kind, connector, tool, agent, subject, outcome, key_id, mac, session, conversation, end_user) VALUES ` +
			strings.TrimSuffix(strings.Repeat(row+", ", n), ", ")
		st, err := prep(q)
		if err != nil { // a cancelled context, a closed store: prepare again next time
			a.head.Close()
			for _, st := range a.insert {
				st.Close()
			}
			return nil, err
		}
		a.insert[n] = st
	}
	s.audit = a
	return a, nil
}

// AuditFilter selects audit records. Zero fields match everything.
type AuditFilter struct {
	Connector, Tool, Agent, Subject string
	// Session, Conversation and User match the labels a call carried (audit.Event's session,
	// conversation and end_user).
	Session, Conversation, User string
	Decision                    string    // the event's outcome: "ok", "error", "denied"
	Kind                        string    // "call" or "request"
	Since, Until                time.Time // Since ≤ Time < Until
	AfterSeq                    int64     // only records after this one, for paging
	BeforeSeq                   int64     // only records before this one (0: no bound), for paging back
	NewestFirst                 bool      // order by sequence, highest first (default lowest first)
	Limit                       int       // at most this many; 0 means 1000
}

// DefaultAuditLimit is the number of records QueryAudit returns when AuditFilter.Limit is 0.
const DefaultAuditLimit = 1000

// QueryAudit returns the records matching f, oldest first (newest first with f.NewestFirst).
func (s *Store) QueryAudit(ctx context.Context, f AuditFilter) ([]AuditRecord, error) {
	var (
		where []string
		args  []any
	)
	add := func(cond string, v any) {
		where = append(where, cond)
		args = append(args, v)
	}
	for _, c := range []struct{ col, v string }{
		{"connector", f.Connector}, {"tool", f.Tool}, {"agent", f.Agent}, {"subject", f.Subject},
		{"outcome", f.Decision}, {"kind", f.Kind},
		{"session", f.Session}, {"conversation", f.Conversation}, {"end_user", f.User},
	} {
		if c.v != "" {
			add(c.col+" = ?", c.v)
		}
	}
	if !f.Since.IsZero() {
		add("ts >= ?", toNanos(f.Since))
	}
	if !f.Until.IsZero() {
		add("ts < ?", toNanos(f.Until))
	}
	if f.AfterSeq > 0 {
		add("seq > ?", f.AfterSeq)
	}
	if f.BeforeSeq > 0 {
		add("seq < ?", f.BeforeSeq)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultAuditLimit
	}
	q := `SELECT seq, ts, prev_hash, hash, data, key_id, mac FROM audit`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	order := " ORDER BY seq"
	if f.NewestFirst {
		order += " DESC"
	}
	q += order + " LIMIT " + strconv.Itoa(limit)
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, wrap("querying the audit log", err)
	}
	recs, err := scanAudit(rows)
	return recs, wrap("querying the audit log", err)
}

func scanAudit(rows *sql.Rows) ([]AuditRecord, error) {
	defer rows.Close()
	var out []AuditRecord
	for rows.Next() {
		var (
			r  AuditRecord
			ts int64
		)
		if err := rows.Scan(&r.Seq, &ts, &r.PrevHash, &r.Hash, &r.Data, &r.KeyID, &r.MAC); err != nil {
			return nil, err
		}
		r.Time = fromNanos(ts)
		out = append(out, r)
	}
	return out, rows.Err()
}

// AuditHead returns the last record's sequence number and hash (0 and "" for an empty log).
// Keeping a copy of it elsewhere (a ticket, a log shipper) lets a later VerifyAudit detect a
// truncated tail too, which the chain alone cannot.
func (s *Store) AuditHead(ctx context.Context) (seq int64, hash string, err error) {
	err = s.queryRow(ctx, `SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`).Scan(&seq, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, "", nil
	}
	return seq, hash, wrap("reading the head of the audit log", err)
}

// verifyPage is how many records VerifyAudit reads at a time.
const verifyPage = 500

// CheckAuditLink checks that r is the record that follows record afterSeq (whose hash is
// afterHash; 0 and "" before record 1): no gap, its prev_hash, its own hash, and — with keys —
// its MAC. requireMAC refuses a record with no MAC (a verifier without the key, offline, can
// still see that one is missing); only records of a log written before the keyed chain, and
// adopted by a signed checkpoint ([AuditAdoptReplica]), may lack one. It returns nil or the break
// at the first bad record.
func CheckAuditLink(afterSeq int64, afterHash string, r AuditRecord, keys AuditKeys, requireMAC bool) *AuditBreak {
	want := afterSeq + 1
	switch {
	case r.Seq != want:
		reason := fmt.Sprintf("record %d is missing (the log jumps from %d to %d): records were deleted", want, afterSeq, r.Seq)
		if r.Seq-want > 1 {
			reason = fmt.Sprintf("records %d to %d are missing (the log jumps from %d to %d): records were deleted", want, r.Seq-1, afterSeq, r.Seq)
		}
		if r.Seq < want {
			reason = fmt.Sprintf("record %d comes after record %d: records were reordered or duplicated", r.Seq, afterSeq)
		}
		return &AuditBreak{Seq: want, Reason: reason}
	case r.PrevHash != afterHash:
		return &AuditBreak{Seq: r.Seq, Reason: fmt.Sprintf(
			"its prev_hash does not match the hash of record %d: a record was rewritten, reordered or replaced", r.Seq-1)}
	case AuditHash(r.PrevHash, r.Seq, r.Data) != r.Hash:
		return &AuditBreak{Seq: r.Seq, Reason: "its contents do not match its hash: the record was changed"}
	case r.MAC == "" && requireMAC:
		return &AuditBreak{Seq: r.Seq, Reason: "it carries no MAC: it was written without the audit key (inserted or rewritten in the database); " +
			"if it was written by an airlock older than the keyed chain, an admin may vouch for those records with `airlock audit adopt`"}
	case r.MAC == "":
		// Written before the keyed chain, and adopted by a signed checkpoint.
	case keys != nil:
		if err := keys.CheckLink(r.KeyID, r.Seq, r.Hash, r.MAC); err != nil {
			return &AuditBreak{Seq: r.Seq, Reason: fmt.Sprintf(
				"its MAC does not authenticate it (%v): the record was changed and the chain recomputed, or forged, by someone without the audit key", err)}
		}
	}
	return nil
}

// VerifyAudit walks the whole chain from record 1 and reports the first bad record as an
// *[AuditBreak]: a changed record (its hash or an indexed column no longer matches its
// contents), a deleted one (a gap in the sequence, or a prev_hash that does not match) or a
// reordered pair. It returns how many records it found intact before the break (all of them
// when err is nil). It checks no MAC: anyone who can write the database can recompute this
// chain, and deleting records from the end is invisible to it. Package audit's Verify checks
// the MACs, the signed checkpoints and an anchor kept outside the database as well.
func (s *Store) VerifyAudit(ctx context.Context) (checked int64, err error) {
	return s.VerifyAuditKeyed(ctx, nil, 0)
}

// VerifyAuditKeyed is [Store.VerifyAudit] that also checks every record's MAC under keys
// (nil: none), so a chain recomputed by someone without the key breaks at the first record
// they changed. Records up to legacyUntil (the last record of a log written before the keyed
// chain, as a verified adoption checkpoint says) may carry no MAC.
func (s *Store) VerifyAuditKeyed(ctx context.Context, keys AuditKeys, legacyUntil int64) (checked int64, err error) {
	var (
		after int64
		prev  string
	)
	for {
		rows, err := s.query(ctx, `SELECT seq, ts, prev_hash, hash, data, key_id, mac, kind, connector, tool, agent, subject, outcome,
			session, conversation, end_user FROM audit WHERE seq > ? ORDER BY seq LIMIT `+strconv.Itoa(verifyPage), after)
		if err != nil {
			return checked, wrap("reading the audit log", err)
		}
		type rec struct {
			AuditRecord
			ts  int64
			col auditFields
		}
		var page []rec
		for rows.Next() {
			var r rec
			if err := rows.Scan(&r.Seq, &r.ts, &r.PrevHash, &r.Hash, &r.Data, &r.KeyID, &r.MAC,
				&r.col.Kind, &r.col.Connector, &r.col.Tool, &r.col.Agent, &r.col.Subject, &r.col.Outcome,
				&r.col.Session, &r.col.Conversation, &r.col.User); err != nil {
				rows.Close()
				return checked, wrap("reading the audit log", err)
			}
			page = append(page, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return checked, wrap("reading the audit log", err)
		}
		if len(page) == 0 {
			return checked, nil
		}
		for _, r := range page {
			if br := CheckAuditLink(after, prev, r.AuditRecord, keys, keys != nil && r.Seq > legacyUntil); br != nil {
				return checked, br
			}
			f, t, err := parseAuditFields(r.Data)
			if err != nil {
				return checked, &AuditBreak{Seq: r.Seq, Reason: "its data is not a JSON object: the record was changed"}
			}
			f.Time = nil
			r.col.clean() // as a column written before clean existed may hold it
			if f != r.col {
				return checked, &AuditBreak{Seq: r.Seq, Reason: "its indexed columns do not match its data: the record was changed to mislead searches"}
			}
			if !t.IsZero() && toNanos(t) != r.ts {
				return checked, &AuditBreak{Seq: r.Seq, Reason: "its time column does not match its data: the record was changed to mislead searches"}
			}
			checked++
			after, prev = r.Seq, r.Hash
		}
	}
}

// AuditRecordAt returns record seq, or an error wrapping [ErrNotFound].
func (s *Store) AuditRecordAt(ctx context.Context, seq int64) (AuditRecord, error) {
	recs, err := s.QueryAudit(ctx, AuditFilter{AfterSeq: seq - 1, Limit: 1})
	if err != nil {
		return AuditRecord{}, err
	}
	if len(recs) == 0 || recs[0].Seq != seq {
		return AuditRecord{}, notFound(fmt.Sprintf("audit record %d", seq), "")
	}
	return recs[0], nil
}

// LastAuditRecord returns the last record of the audit log, or an error wrapping [ErrNotFound]
// when it is empty.
func (s *Store) LastAuditRecord(ctx context.Context) (AuditRecord, error) {
	seq, _, err := s.AuditHead(ctx)
	if err != nil {
		return AuditRecord{}, err
	}
	if seq == 0 {
		return AuditRecord{}, notFound("an audit record", "the log is empty")
	}
	return s.AuditRecordAt(ctx, seq)
}

// AuditCheckpoint is a signed statement that the audit log held record Seq with hash Hash at
// Time, made by a replica holding the audit key (package audit writes and checks them).
type AuditCheckpoint struct {
	Seq     int64     `json:"seq"`
	Hash    string    `json:"hash"`
	Time    time.Time `json:"time"`
	Replica string    `json:"replica"`
	KeyID   string    `json:"key_id"`
	Sig     string    `json:"sig"`
}

// AuditAdoptReplica is the replica a checkpoint names when an admin adopts the records an older
// airlock wrote without MACs (`airlock audit adopt`): records up to it may carry no MAC.
const AuditAdoptReplica = "adopted-unkeyed-log"

// PutAuditCheckpoint records c; a second checkpoint of the same replica at the same record is
// ignored.
func (s *Store) PutAuditCheckpoint(ctx context.Context, c AuditCheckpoint) error {
	_, err := s.exec(ctx, `INSERT INTO audit_checkpoints (seq, hash, ts, replica, key_id, sig) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT (replica, seq) DO NOTHING`, c.Seq, c.Hash, toNanos(c.Time), c.Replica, c.KeyID, c.Sig)
	return wrap("recording an audit checkpoint", err)
}

// AuditCheckpoints returns every checkpoint, by record and then time.
func (s *Store) AuditCheckpoints(ctx context.Context) ([]AuditCheckpoint, error) {
	rows, err := s.query(ctx, `SELECT seq, hash, ts, replica, key_id, sig FROM audit_checkpoints ORDER BY seq, ts`)
	if err != nil {
		return nil, wrap("reading the audit checkpoints", err)
	}
	defer rows.Close()
	var out []AuditCheckpoint
	for rows.Next() {
		var (
			c  AuditCheckpoint
			ts int64
		)
		if err := rows.Scan(&c.Seq, &c.Hash, &ts, &c.Replica, &c.KeyID, &c.Sig); err != nil {
			return nil, wrap("reading the audit checkpoints", err)
		}
		c.Time = fromNanos(ts)
		out = append(out, c)
	}
	return out, wrap("reading the audit checkpoints", rows.Err())
}
