package audit

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/airlock-dev/airlock/host/store"
)

// AnchorFile is the name of the anchor file [Attach] appends checkpoints to in the state
// directory by default.
const AnchorFile = "audit-anchor.jsonl"

// TrailOptions tunes [Attach]. Zero fields mean the documented defaults.
type TrailOptions struct {
	// Anchor is a file every checkpoint is also appended to (JSON lines, mode 0600), outside
	// the database, so that `verify --anchor` notices a database truncated after its last
	// checkpoint or restored from an older backup. "" keeps checkpoints in the database only.
	Anchor string
	// Replica names this process in its checkpoints. Default: the host name.
	Replica string
}

// Trail is the keyed audit trail of a state store: it authenticates every record appended
// through the store (it is the store's [store.AuditKeys]), writes signed checkpoints to the
// store and the anchor file, and verifies and exports the log. Safe for concurrent use.
type Trail struct {
	st   *store.Store
	keys *Keyring
	opts TrailOptions

	mu      sync.Mutex // serialises checkpoints
	lastSeq int64      // last record this process checkpointed

	sink *StoreSink // set by NewStoreSink with Trail: refused events go through its limit
}

// Attach unseals (or creates) the audit keys of st with sealer and makes every later append to
// st keyed. Call it once per store, before anything appends.
func Attach(ctx context.Context, st *store.Store, sealer Sealer, opts *TrailOptions) (*Trail, error) {
	var o TrailOptions
	if opts != nil {
		o = *opts
	}
	if o.Replica == "" {
		o.Replica, _ = os.Hostname()
	}
	keys, err := LoadKeyring(ctx, st, sealer)
	if err != nil {
		return nil, err
	}
	t := &Trail{st: st, keys: keys, opts: o}
	st.SetAuditKeys(t)
	return t, nil
}

// Adopt vouches for the records an older airlock wrote without MACs: it signs a checkpoint
// ([store.AuditAdoptReplica]) over the last record of the log's unkeyed beginning, so that they
// verify — as they stand now, which is all a key holder can vouch for. Records after it must
// carry MACs. It is an admin's decision (`airlock audit adopt`), never automatic: a host that
// adopted whatever it found would adopt a forged table too.
func (t *Trail) Adopt(ctx context.Context) (store.AuditCheckpoint, error) {
	var last store.AuditRecord
	for after := int64(0); ; {
		recs, err := t.st.QueryAudit(ctx, store.AuditFilter{AfterSeq: after})
		if err != nil {
			return store.AuditCheckpoint{}, fmt.Errorf("audit: %w", err)
		}
		i := slices.IndexFunc(recs, func(r store.AuditRecord) bool { return r.MAC != "" })
		if i >= 0 {
			recs = recs[:i]
		}
		if len(recs) > 0 {
			last = recs[len(recs)-1]
		}
		if i >= 0 || len(recs) < store.DefaultAuditLimit {
			break
		}
		after = last.Seq
	}
	if last.Seq == 0 {
		return store.AuditCheckpoint{}, errors.New("audit: every record carries a MAC: there is nothing to adopt")
	}
	c := t.keys.sign(last.Seq, last.Hash, time.Now(), store.AuditAdoptReplica)
	if err := t.st.PutAuditCheckpoint(ctx, c); err != nil {
		return c, fmt.Errorf("audit: adopting the unkeyed records: %w", err)
	}
	if t.opts.Anchor != "" {
		return c, appendAnchor(t.opts.Anchor, c)
	}
	return c, nil
}

// TrailOf returns the Trail attached to st, or nil.
func TrailOf(st *store.Store) *Trail {
	t, _ := st.AuditKeys().(*Trail)
	return t
}

// Keys returns the trail's keyring.
func (t *Trail) Keys() *Keyring { return t.keys }

// SignLink implements [store.AuditKeys].
func (t *Trail) SignLink(seq int64, hash string) (string, string, error) {
	return t.keys.SignLink(seq, hash)
}

// CheckLink implements [store.AuditKeys].
func (t *Trail) CheckLink(keyID string, seq int64, hash, mac string) error {
	return t.keys.CheckLink(keyID, seq, hash, mac)
}

// Checkpoint signs the log's last record (after checking its MAC: a replica never vouches for
// a record it cannot authenticate), records the checkpoint in the store and appends it to the
// anchor file. It does nothing when the log is empty or this process already checkpointed that
// record, and reports whether it wrote one.
func (t *Trail) Checkpoint(ctx context.Context) (store.AuditCheckpoint, bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	last, err := t.st.LastAuditRecord(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return store.AuditCheckpoint{}, false, nil
	}
	if err != nil {
		return store.AuditCheckpoint{}, false, fmt.Errorf("audit: checkpoint: %w", err)
	}
	if last.Seq == t.lastSeq {
		return store.AuditCheckpoint{}, false, nil
	}
	if err := t.keys.CheckLink(last.KeyID, last.Seq, last.Hash, last.MAC); err != nil {
		return store.AuditCheckpoint{}, false, fmt.Errorf("audit: not signing a checkpoint at record %d: %v: %w", last.Seq, err, store.ErrAuditTampered)
	}
	c := t.keys.sign(last.Seq, last.Hash, time.Now(), t.opts.Replica)
	if err := t.st.PutAuditCheckpoint(ctx, c); err != nil {
		return c, false, fmt.Errorf("audit: %w", err)
	}
	if t.opts.Anchor != "" {
		if err := appendAnchor(t.opts.Anchor, c); err != nil {
			return c, false, err
		}
	}
	t.lastSeq = last.Seq
	return c, true, nil
}

func appendAnchor(path string, c store.AuditCheckpoint) error {
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("audit: anchor file: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("audit: anchor file: %w", err)
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("audit: anchor file %s: %w", path, err)
	}
	return nil
}

// ReadAnchor reads the checkpoints of an anchor file.
func ReadAnchor(path string) ([]store.AuditCheckpoint, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("audit: anchor file: %w", err)
	}
	defer f.Close()
	var out []store.AuditCheckpoint
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for line := 1; sc.Scan(); line++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var c store.AuditCheckpoint
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			return out, fmt.Errorf("audit: anchor file %s: line %d is not a checkpoint: %w", path, line, err)
		}
		out = append(out, c)
	}
	return out, sc.Err()
}

// Action records an admin action in st's audit log: actor (an admin token's name, or
// "cli:<os user>"), action ("grant", "secret set", …), target (a connector, a secret's name,
// a token's name) and detail (names and the resulting change; never a secret value), then
// writes a checkpoint when a Trail is attached, so the anchor covers it at once.
func Action(ctx context.Context, st *store.Store, actor, action, target string, detail any) error {
	return recordAction(ctx, st, Event{Time: time.Now().UTC(), Kind: KindAdmin, Actor: actor, Action: action, Target: target, Outcome: "ok"}, detail)
}

// ActionRefused records, like [Action], an admin action that was refused (outcome "denied"):
// an admin whose role does not allow it. message says why; it reaches the audit log only.
// Unlike refused authentications these are not rate-limited: only an authenticated admin can
// cause one.
func ActionRefused(ctx context.Context, st *store.Store, actor, action, target, message string, detail any) error {
	return recordAction(ctx, st, Event{Time: time.Now().UTC(), Kind: KindAdmin, Actor: actor, Action: action, Target: target,
		Outcome: "denied", Code: "forbidden", Message: message}, detail)
}

func recordAction(ctx context.Context, st *store.Store, e Event, detail any) error {
	action, target := e.Action, e.Target
	if detail != nil {
		b, err := json.Marshal(detail)
		if err != nil {
			return fmt.Errorf("audit: encoding the detail of %s: %w", action, err)
		}
		e.Detail = b
	}
	data, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	if _, err := st.AppendAudit(ctx, data); err != nil {
		return fmt.Errorf("audit: recording %s of %s: %w", action, target, err)
	}
	if t := TrailOf(st); t != nil {
		if _, _, err := t.Checkpoint(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Refused records a refused call or authentication through the attached Trail's sink, whose
// rate limit keeps a flood from filling the disk (what it leaves out is counted in a
// KindDropped record). Without a Trail with a sink it does nothing.
func Refused(ctx context.Context, st *store.Store, e Event) {
	if t := TrailOf(st); t != nil && t.sink != nil {
		e.Outcome = "denied"
		t.sink.Write(ctx, e)
	}
}

// Report is what [Trail.Verify] and [VerifyExport] found intact.
type Report struct {
	Records     int64 // records whose chain (and MAC, online) checked
	Checkpoints int   // signed checkpoints that checked
	Anchored    int   // checkpoints of the anchor file that checked ("" anchor: 0)
	// Covered is the last record a valid checkpoint signs; records after it are protected by
	// their MACs only (online) and could be deleted without trace by someone holding the
	// database unless a later checkpoint reaches the anchor.
	Covered int64
}

// Verify checks the whole log: every record's chain link and MAC (the first bad record is
// named), the signature of every checkpoint in the store and in the anchor file (anchor ""
// for none), and that the log still holds what each checkpoint signed — so truncation,
// rollback to an older backup and a table replaced by a forged one are reported with the
// records missing. Problems are returned as an *[store.AuditBreak].
func (t *Trail) Verify(ctx context.Context, anchor string) (Report, error) {
	var rep Report
	cps, err := t.st.AuditCheckpoints(ctx)
	if err != nil {
		return rep, err
	}
	n, err := t.st.VerifyAuditKeyed(ctx, t.keys, legacyUntil(cps, t.keys.verify))
	rep.Records = n
	if err != nil {
		return rep, err
	}
	hashAt := func(seq int64) (string, error) {
		r, err := t.st.AuditRecordAt(ctx, seq)
		return r.Hash, err
	}
	c := checker{last: n, hashAt: hashAt, verify: t.keys.verify}
	for _, cp := range cps {
		if err := c.check(cp, "a checkpoint"); err != nil {
			return rep, err
		}
		rep.Checkpoints++
	}
	if anchor != "" {
		acps, err := ReadAnchor(anchor)
		if err != nil {
			return rep, err
		}
		for _, cp := range acps {
			if err := c.check(cp, "a checkpoint in the anchor file "+anchor); err != nil {
				return rep, err
			}
			rep.Anchored++
		}
	}
	rep.Covered = c.covered
	return rep, nil
}

// legacyUntil is the last record of a log written before the keyed chain, as the valid adoption
// checkpoints say (0: none): records up to it may carry no MAC.
func legacyUntil(cps []store.AuditCheckpoint, verify func(store.AuditCheckpoint) error) int64 {
	var until int64
	for _, c := range cps {
		if c.Replica == store.AuditAdoptReplica && verify(c) == nil {
			until = max(until, c.Seq)
		}
	}
	return until
}

// checker compares checkpoints with a log whose records 1..last have checked.
type checker struct {
	last    int64
	hashAt  func(seq int64) (string, error)
	verify  func(store.AuditCheckpoint) error
	covered int64   // highest record a valid checkpoint matched
	matched []int64 // every record a valid checkpoint matched, for naming where a rewrite starts
}

func (c *checker) check(cp store.AuditCheckpoint, what string) error {
	when := cp.Time.UTC().Format(time.RFC3339)
	if err := c.verify(cp); err != nil {
		return &store.AuditBreak{Seq: cp.Seq, Reason: fmt.Sprintf("%s at record %d (replica %s, %s) does not check: %v; checkpoints are only written by a host holding the audit key",
			what, cp.Seq, cp.Replica, when, err)}
	}
	if cp.Seq > c.last {
		return &store.AuditBreak{Seq: c.last + 1, Reason: fmt.Sprintf(
			"records %d to %d are missing: %s signed by replica %s at %s says the log reached record %d (hash %.16s…), but it ends at record %d; "+
				"the newest records were deleted or the database was restored from an older backup",
			c.last+1, cp.Seq, what, cp.Replica, when, cp.Seq, cp.Hash, c.last)}
	}
	h, err := c.hashAt(cp.Seq)
	if err != nil {
		return err
	}
	if h != cp.Hash {
		from := int64(1)
		for _, m := range c.matched {
			if m < cp.Seq {
				from = max(from, m+1)
			}
		}
		return &store.AuditBreak{Seq: from, Reason: fmt.Sprintf(
			"records %d to %d differ from what %s signed by replica %s at %s vouches for (record %d had hash %.16s…, now %.16s…): "+
				"they were rewritten and the chain recomputed, or the database was restored from an older backup and written since",
			from, cp.Seq, what, cp.Replica, when, cp.Seq, cp.Hash, h)}
	}
	c.covered = max(c.covered, cp.Seq)
	c.matched = append(c.matched, cp.Seq)
	return nil
}

// Export format, one JSON object per line.
const exportFormat = "airlock-audit-export/1"

type exportLine struct {
	Type string `json:"type"` // "header", "record", "checkpoint"

	// header
	Format string          `json:"format,omitempty"`
	Keys   []exportKey     `json:"keys,omitempty"`
	Data   json.RawMessage `json:"data,omitempty"`

	// record
	Seq      int64     `json:"seq,omitempty"`
	Time     time.Time `json:"time,omitzero"`
	PrevHash string    `json:"prev_hash,omitempty"`
	Hash     string    `json:"hash,omitempty"`
	KeyID    string    `json:"key_id,omitempty"`
	MAC      string    `json:"mac,omitempty"`

	// checkpoint
	Replica string `json:"replica,omitempty"`
	Sig     string `json:"sig,omitempty"`
}

type exportKey struct {
	ID        string `json:"id"`
	PublicKey string `json:"public_key"`
}

// Export writes the whole log to w as JSON lines, for verification elsewhere with only the
// public key ([VerifyExport], `airlock audit verify --file F --pubkey K`): a header naming the
// public keys, every record (data byte for byte as chained), and every checkpoint, ending with
// one signed now over the last record exported, so every record is covered by a signature.
func (t *Trail) Export(ctx context.Context, w io.Writer) (Report, error) {
	var rep Report
	if _, _, err := t.Checkpoint(ctx); err != nil {
		return rep, err
	}
	cps, err := t.st.AuditCheckpoints(ctx)
	if err != nil {
		return rep, err
	}
	end := int64(0)
	for _, c := range cps {
		end = max(end, c.Seq)
	}
	bw := bufio.NewWriter(w)
	hdr := exportLine{Type: "header", Format: exportFormat}
	for _, k := range t.keys.PublicKeys() {
		hdr.Keys = append(hdr.Keys, exportKey{ID: k.ID, PublicKey: FormatPublicKey(k.Key)})
	}
	if err := writeLine(bw, hdr); err != nil {
		return rep, err
	}
	for after := int64(0); after < end; {
		recs, err := t.st.QueryAudit(ctx, store.AuditFilter{AfterSeq: after, Limit: store.DefaultAuditLimit})
		if err != nil {
			return rep, err
		}
		if len(recs) == 0 {
			break
		}
		for _, r := range recs {
			if r.Seq > end {
				break
			}
			if err := writeLine(bw, exportLine{Type: "record", Seq: r.Seq, Time: r.Time, PrevHash: r.PrevHash, Hash: r.Hash,
				KeyID: r.KeyID, MAC: r.MAC, Data: r.Data}); err != nil {
				return rep, err
			}
			rep.Records++
		}
		after = recs[len(recs)-1].Seq
	}
	for _, c := range cps {
		if c.Seq > end {
			continue
		}
		if err := writeLine(bw, exportLine{Type: "checkpoint", Seq: c.Seq, Hash: c.Hash, Time: c.Time, Replica: c.Replica, KeyID: c.KeyID, Sig: c.Sig}); err != nil {
			return rep, err
		}
		rep.Checkpoints++
	}
	rep.Covered = end
	return rep, bw.Flush()
}

// writeLine writes one export line. The record's data is written exactly as stored (it is
// what the chain hashes), not re-encoded.
func writeLine(w *bufio.Writer, l exportLine) error {
	data := l.Data
	l.Data = nil
	b, err := json.Marshal(l)
	if err != nil {
		return err
	}
	if len(data) > 0 {
		b = append(b[:len(b)-1], `,"data":`...)
		b = append(b, data...)
		b = append(b, '}')
	}
	b = append(b, '\n')
	_, err = w.Write(b)
	return err
}

// VerifyExport checks an export made by [Trail.Export] with only the public keys given (at
// least the current one; older ones for records made before a rotation): every record's chain
// link, that every record carries a MAC (it cannot be checked without the secret key), every
// checkpoint signed by a given key, and that every record is covered by such a checkpoint. A
// changed byte is named by its record; a chain recomputed after an edit is named as the stretch
// between the last checkpoint that still matches and the first that does not.
func VerifyExport(r io.Reader, pubs []PublicKey) (Report, error) {
	var rep Report
	trusted := map[string]PublicKey{}
	for _, p := range pubs {
		trusted[KeyID(p.Key)] = p
	}
	if len(trusted) == 0 {
		return rep, errors.New("audit: give the public key to verify with (`airlock audit key` prints it on the host)")
	}
	hashes := map[int64]string{}
	var (
		after   int64
		prev    string
		cps     []store.AuditCheckpoint
		unkeyed []int64 // records with no MAC: only an adopted, pre-keyed log may have them
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for line := 1; sc.Scan(); line++ {
		if len(sc.Bytes()) == 0 {
			continue
		}
		var l exportLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			return rep, &store.AuditBreak{Seq: after + 1, Reason: fmt.Sprintf("line %d of the export (after record %d) is not valid JSON: the file was changed or cut (%v)", line, after, err)}
		}
		switch l.Type {
		case "header":
			if l.Format != exportFormat {
				return rep, fmt.Errorf("audit: line %d: unknown export format %q (this airlock reads %s)", line, l.Format, exportFormat)
			}
		case "record":
			rec := store.AuditRecord{Seq: l.Seq, PrevHash: l.PrevHash, Hash: l.Hash, Data: l.Data, KeyID: l.KeyID, MAC: l.MAC}
			if br := store.CheckAuditLink(after, prev, rec, nil, false); br != nil {
				return rep, br
			}
			if rec.MAC == "" {
				unkeyed = append(unkeyed, rec.Seq)
			}
			after, prev = rec.Seq, rec.Hash
			hashes[rec.Seq] = rec.Hash
			rep.Records++
		case "checkpoint":
			cps = append(cps, store.AuditCheckpoint{Seq: l.Seq, Hash: l.Hash, Time: l.Time, Replica: l.Replica, KeyID: l.KeyID, Sig: l.Sig})
		default:
			return rep, fmt.Errorf("audit: line %d: unknown line type %q", line, l.Type)
		}
	}
	if err := sc.Err(); err != nil {
		return rep, fmt.Errorf("audit: reading the export: %w", err)
	}
	c := checker{last: after,
		hashAt: func(seq int64) (string, error) { return hashes[seq], nil },
		verify: func(cp store.AuditCheckpoint) error {
			p, ok := trusted[cp.KeyID]
			if !ok {
				return errUntrusted
			}
			return VerifyCheckpoint(cp, p.Key)
		}}
	legacy := legacyUntil(cps, c.verify)
	for _, seq := range unkeyed {
		if seq > legacy {
			return rep, &store.AuditBreak{Seq: seq, Reason: "it carries no MAC and no signed adoption covers it: it was written without the audit key (inserted or rewritten in the database)"}
		}
	}
	for _, cp := range cps {
		err := c.check(cp, "a checkpoint")
		var br *store.AuditBreak
		if errors.As(err, &br) && errors.Is(c.verify(cp), errUntrusted) {
			continue // signed by a key not given: proves nothing either way
		}
		if err != nil {
			return rep, err
		}
		rep.Checkpoints++
	}
	rep.Covered = c.covered
	if c.covered < after {
		return rep, &store.AuditBreak{Seq: c.covered + 1, Reason: fmt.Sprintf(
			"records %d to %d are not covered by any checkpoint signed by the keys given: they could have been added or changed after the export "+
				"(an export ends with a checkpoint over its last record; pass the public key of every key id the file names)", c.covered+1, after)}
	}
	return rep, nil
}

var errUntrusted = errors.New("signed by a key not given to verify with")

// GrantChanged records the change an admin just made to connector's grant (action "grant" or
// "revoke"), with the resulting difference against the previous version of the grant: the
// fields that changed, and for lists what was added and removed. A grant names secrets by
// reference only, so the difference holds no secret value.
func GrantChanged(ctx context.Context, st *store.Store, actor, action, connector string) error {
	hist, err := st.GrantHistory(ctx, connector)
	if err != nil || len(hist) == 0 {
		return fmt.Errorf("audit: recording %s of %s: %w", action, connector, err)
	}
	cur := hist[len(hist)-1]
	var prev []byte
	if len(hist) > 1 {
		prev = hist[len(hist)-2].Grant
	}
	return versionChanged(ctx, st, actor, action, connector, "grant_version", cur.Version, prev, cur.Grant, "revoked", cur.Revoked, cur.Note)
}

// ProfileChanged records the change an admin just made to an agent profile (action "profile
// set" or "profile delete"), with the difference against the previous version, as
// [GrantChanged] does for grants.
func ProfileChanged(ctx context.Context, st *store.Store, actor, action, name string) error {
	hist, err := st.ProfileHistory(ctx, name)
	if err != nil || len(hist) == 0 {
		return fmt.Errorf("audit: recording %s of %s: %w", action, name, err)
	}
	cur := hist[len(hist)-1]
	var prev []byte
	if len(hist) > 1 {
		prev = hist[len(hist)-2].Body
	}
	return versionChanged(ctx, st, actor, action, name, "profile_version", cur.Version, prev, cur.Body, "deleted", cur.Deleted, cur.Note)
}

// versionChanged records an admin action that made version of a versioned decision (a grant,
// a profile): the difference from prev to cur, whether it withdrew the decision (gone, under
// the key goneKey) and the admin's note.
func versionChanged(ctx context.Context, st *store.Store, actor, action, target, versionKey string, version int, prev, cur []byte, goneKey string, gone bool, note string) error {
	detail := map[string]any{versionKey: version, "changes": jsonDiff(prev, cur)}
	if gone {
		detail[goneKey] = true
	}
	if note != "" {
		detail["note"] = note
	}
	return Action(ctx, st, actor, action, target, detail)
}

// jsonDiff compares two JSON objects field by field: {"field": {"added": […], "removed": […]}}
// for lists of strings, {"field": {"from": …, "to": …}} otherwise.
func jsonDiff(a, b []byte) map[string]any {
	var ma, mb map[string]any
	json.Unmarshal(a, &ma)
	json.Unmarshal(b, &mb)
	out := map[string]any{}
	keys := map[string]bool{}
	for k := range ma {
		keys[k] = true
	}
	for k := range mb {
		keys[k] = true
	}
	for k := range keys {
		va, vb := ma[k], mb[k]
		ja, _ := json.Marshal(va)
		jb, _ := json.Marshal(vb)
		if string(ja) == string(jb) {
			continue
		}
		la, aok := stringList(va)
		lb, bok := stringList(vb)
		if (aok || va == nil) && (bok || vb == nil) {
			out[k] = map[string][]string{"added": minus(lb, la), "removed": minus(la, lb)}
			continue
		}
		out[k] = map[string]any{"from": va, "to": vb}
	}
	return out
}

func stringList(v any) ([]string, bool) {
	l, ok := v.([]any)
	if !ok {
		return nil, false
	}
	out := make([]string, 0, len(l))
	for _, x := range l {
		s, ok := x.(string)
		if !ok {
			return nil, false
		}
		out = append(out, s)
	}
	return out, true
}

func minus(a, b []string) []string {
	out := []string{}
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// RefusedAuth records r, which was answered 401 on a listener that authenticates with bearer
// tokens (realm "mcp" or "admin"), as a refused authentication in st's audit trail: the remote
// address, the path, and whether a token was presented (and, when expired is true, that it had
// expired) — never the token. The trail's sink rate-limits them
// ([StoreSinkOptions.RefusedPerSecond]).
func RefusedAuth(st *store.Store, realm string, r *http.Request, expired bool) {
	msg := "no bearer token"
	switch {
	case expired:
		msg = "an expired bearer token"
	case r.Header.Get("Authorization") != "":
		msg = "a bearer token that is not valid (unknown or revoked)"
	}
	Refused(r.Context(), st, Event{Time: time.Now().UTC(), Kind: KindAuth, Realm: realm, Remote: r.RemoteAddr,
		URL: r.URL.Path, Method: r.Method, Status: http.StatusUnauthorized, Code: "unauthenticated", Message: msg})
}

// VerifyStore verifies st's log with its attached Trail (chain, MACs, checkpoints; no anchor),
// or only its plain hash chain when none is attached, and returns how many records checked.
func VerifyStore(ctx context.Context, st *store.Store) (int64, error) {
	if t := TrailOf(st); t != nil {
		rep, err := t.Verify(ctx, "")
		return rep.Records, err
	}
	return st.VerifyAudit(ctx)
}
