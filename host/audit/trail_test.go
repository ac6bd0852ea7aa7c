package audit_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock-dev/airlock/host/audit"
	"github.com/airlock-dev/airlock/host/secret"
	"github.com/airlock-dev/airlock/host/store"
	"github.com/airlock-dev/airlock/internal/testenv"
)

// rig is a state store with an attached trail, and a raw connection to its database for the
// attacker: someone who can read and write every table but holds neither the master key nor
// the state directory's anchor file.
type rig struct {
	st     *store.Store
	trail  *audit.Trail
	anchor string
	db     *sql.DB
	pg     bool
	dsn    string
	sealer *secret.Store
}

func forEachBackend(t *testing.T, fn func(t *testing.T, r *rig)) {
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "state.db")
		fn(t, newRig(t, "sqlite:"+path, "sqlite", path))
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		dsn := testenv.Postgres(t)
		fn(t, newRig(t, dsn, "pgx", dsn))
	})
}

func newRig(t *testing.T, dsn, driver, raw string) *rig {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key, _ := secret.NewMasterKey()
	ss, err := secret.OpenStore(ctx, &secret.MemoryBackend{}, key)
	if err != nil {
		t.Fatal(err)
	}
	anchor := filepath.Join(t.TempDir(), "anchor.jsonl")
	tr, err := audit.Attach(ctx, st, ss, &audit.TrailOptions{Anchor: anchor, Replica: "r1"})
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open(driver, raw)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return &rig{st: st, trail: tr, anchor: anchor, db: db, pg: driver == "pgx", dsn: dsn, sealer: ss}
}

// q rebinds "?" placeholders for PostgreSQL.
func (r *rig) q(s string) string {
	if !r.pg {
		return s
	}
	var b strings.Builder
	n := 0
	for _, c := range s {
		if c == '?' {
			n++
			fmt.Fprintf(&b, "$%d", n)
			continue
		}
		b.WriteRune(c)
	}
	return b.String()
}

func (r *rig) exec(t *testing.T, s string, args ...any) {
	t.Helper()
	if _, err := r.db.Exec(r.q(s), args...); err != nil {
		t.Fatalf("attacker's %q: %v", s, err)
	}
}

// fill appends records from+1..to, one call event each, by agent "bot".
func (r *rig) fill(t *testing.T, from, to int) {
	t.Helper()
	for i := from + 1; i <= to; i++ {
		ev := fmt.Appendf(nil, `{"time":%q,"kind":"call","request_id":"r%d","agent":"bot","subject":"acme","connector":"slack","tool":"slack.post_message","outcome":"ok"}`,
			time.Date(2026, 5, 1, 12, 0, i, 0, time.UTC).Format(time.RFC3339Nano), i)
		if _, err := r.st.AppendAudit(context.Background(), ev); err != nil {
			t.Fatalf("append %d: %v", i, err)
		}
	}
}

func (r *rig) checkpoint(t *testing.T) {
	t.Helper()
	if _, ok, err := r.trail.Checkpoint(context.Background()); err != nil || !ok {
		t.Fatalf("Checkpoint = %v, %v", ok, err)
	}
}

// build makes 30 records with checkpoints (store and anchor) at 10, 20 and 30.
func (r *rig) build(t *testing.T) {
	t.Helper()
	for _, n := range []int{10, 20, 30} {
		r.fill(t, n-10, n)
		r.checkpoint(t)
	}
}

// wantBreak runs verify and wants a break at seq whose reason mentions each of words.
func wantBreak(t *testing.T, what string, err error, seq int64, words ...string) {
	t.Helper()
	var br *store.AuditBreak
	if !errors.As(err, &br) {
		t.Fatalf("%s: verify = %v, want a break at record %d", what, err, seq)
	}
	if br.Seq != seq {
		t.Errorf("%s: verify names record %d (%s), want %d", what, br.Seq, br.Reason, seq)
	}
	for _, w := range words {
		if !strings.Contains(br.Reason, w) {
			t.Errorf("%s: reason %q does not say %q", what, br.Reason, w)
		}
	}
}

type row struct {
	seq                                int64
	ts                                 int64
	prev, hash                         string
	data                               []byte
	kind, conn, tool, agent, subj, out string
	keyID, mac                         string
}

func (r *rig) rows(t *testing.T) []row {
	t.Helper()
	rs, err := r.db.Query(`SELECT seq, ts, prev_hash, hash, data, kind, connector, tool, agent, subject, outcome, key_id, mac FROM audit ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	var out []row
	for rs.Next() {
		var x row
		if err := rs.Scan(&x.seq, &x.ts, &x.prev, &x.hash, &x.data, &x.kind, &x.conn, &x.tool, &x.agent, &x.subj, &x.out, &x.keyID, &x.mac); err != nil {
			t.Fatal(err)
		}
		out = append(out, x)
	}
	return out
}

func (r *rig) insert(t *testing.T, rows []row) {
	t.Helper()
	for _, x := range rows {
		r.exec(t, `INSERT INTO audit (seq, ts, prev_hash, hash, data, kind, connector, tool, agent, subject, outcome, key_id, mac) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			x.seq, x.ts, x.prev, x.hash, x.data, x.kind, x.conn, x.tool, x.agent, x.subj, x.out, x.keyID, x.mac)
	}
}

// recompute rewrites the documented chain from record `from` on, as the README describes it,
// after the attacker changed some data.
func (r *rig) recompute(t *testing.T, rows []row, from int64) {
	t.Helper()
	prev := ""
	for i := range rows {
		if rows[i].seq >= from {
			rows[i].prev = prev
			rows[i].hash = store.AuditHash(prev, rows[i].seq, rows[i].data)
			r.exec(t, `UPDATE audit SET prev_hash = ?, hash = ?, data = ?, agent = ? WHERE seq = ?`, rows[i].prev, rows[i].hash, rows[i].data, rows[i].agent, rows[i].seq)
		}
		prev = rows[i].hash
	}
}

func verify(t *testing.T, r *rig, anchor string) error {
	t.Helper()
	_, err := r.trail.Verify(context.Background(), anchor)
	return err
}

func TestIntactLogVerifies(t *testing.T) {
	forEachBackend(t, func(t *testing.T, r *rig) {
		r.build(t)
		r.fill(t, 30, 33)
		rep, err := r.trail.Verify(context.Background(), r.anchor)
		if err != nil {
			t.Fatalf("Verify of an intact log = %v", err)
		}
		if rep.Records != 33 || rep.Checkpoints != 3 || rep.Anchored != 3 || rep.Covered != 30 {
			t.Errorf("Verify = %+v; want 33 records, 3 checkpoints in the store and the anchor, covering 30", rep)
		}
	})
}

// Each attack of issue 15, by someone who can write the database but holds no key.
func TestAttacksOnTheDatabase(t *testing.T) {
	forEachBackend(t, func(t *testing.T, r *rig) {
		ctx := context.Background()
		r.build(t)
		pristine := r.rows(t)
		restore := func(t *testing.T) {
			r.exec(t, `DELETE FROM audit`)
			r.insert(t, pristine)
		}
		cps, err := r.st.AuditCheckpoints(ctx)
		if err != nil {
			t.Fatal(err)
		}
		restoreCheckpoints := func(t *testing.T) {
			r.exec(t, `DELETE FROM audit_checkpoints`)
			for _, c := range cps {
				must(t, r.st.PutAuditCheckpoint(ctx, c))
			}
		}

		t.Run("edit a field", func(t *testing.T) {
			defer restore(t)
			r.exec(t, `UPDATE audit SET data = ? WHERE seq = 7`, bytes.Replace(pristine[6].data, []byte(`"agent":"bot"`), []byte(`"agent":"mallory"`), 1))
			wantBreak(t, "edit", verify(t, r, r.anchor), 7, "changed")
		})
		t.Run("edit and recompute the documented chain", func(t *testing.T) {
			defer restore(t)
			rows := r.rows(t)
			for _, i := range []int{6, 7} { // records 7 and 8, as in the issue
				rows[i].data = bytes.Replace(rows[i].data, []byte(`"agent":"bot"`), []byte(`"agent":"mallory"`), 1)
				rows[i].agent = "mallory"
			}
			r.recompute(t, rows, 7)
			wantBreak(t, "recomputed chain", verify(t, r, r.anchor), 7, "MAC")
			if _, err := r.st.AppendAudit(ctx, []byte(`{"kind":"call","outcome":"ok"}`)); !errors.Is(err, store.ErrAuditTampered) {
				t.Errorf("appending onto a recomputed head = %v, want ErrAuditTampered (fail closed, never vouch for it)", err)
			}
		})
		t.Run("delete a middle record", func(t *testing.T) {
			defer restore(t)
			r.exec(t, `DELETE FROM audit WHERE seq = 12`)
			wantBreak(t, "delete", verify(t, r, r.anchor), 12, "missing")
		})
		t.Run("delete the newest records, before the latest checkpoint", func(t *testing.T) {
			defer restore(t)
			r.exec(t, `DELETE FROM audit WHERE seq > 25`)
			wantBreak(t, "truncate", verify(t, r, ""), 26, "records 26 to 30 are missing", "checkpoint")
		})
		t.Run("delete the newest records and their checkpoints", func(t *testing.T) {
			defer restore(t)
			defer restoreCheckpoints(t)
			r.exec(t, `DELETE FROM audit WHERE seq > 20`)
			r.exec(t, `DELETE FROM audit_checkpoints WHERE seq > 20`)
			// The database alone is consistent now: this needs the anchor kept outside it.
			if err := verify(t, r, ""); err != nil {
				t.Errorf("without the anchor, verify = %v; the README says this truncation needs the anchor (update both if it no longer does)", err)
			}
			wantBreak(t, "truncate with anchor", verify(t, r, r.anchor), 21, "records 21 to 30 are missing", "anchor")
		})
		t.Run("reorder", func(t *testing.T) {
			defer restore(t)
			a, b := pristine[14], pristine[15] // swap records 15 and 16, seq kept
			r.exec(t, `UPDATE audit SET prev_hash = ?, hash = ?, data = ?, key_id = ?, mac = ? WHERE seq = 15`, b.prev, b.hash, b.data, b.keyID, b.mac)
			r.exec(t, `UPDATE audit SET prev_hash = ?, hash = ?, data = ?, key_id = ?, mac = ? WHERE seq = 16`, a.prev, a.hash, a.data, a.keyID, a.mac)
			wantBreak(t, "reorder", verify(t, r, r.anchor), 15, "prev_hash")
		})
		t.Run("replace the whole table with a self-consistent forgery", func(t *testing.T) {
			defer restore(t)
			defer restoreCheckpoints(t)
			r.exec(t, `DELETE FROM audit`)
			r.exec(t, `DELETE FROM audit_checkpoints`)
			// The forger's own chain, MACs of their own, and a checkpoint signed with their own
			// key under the real key's id.
			_, priv, _ := ed25519.GenerateKey(rand.Reader)
			forged := make([]row, 40)
			prev := ""
			for i := range forged {
				seq := int64(i + 1)
				data := fmt.Appendf(nil, `{"kind":"call","agent":"nobody","outcome":"ok","request_id":"f%d"}`, seq)
				mac := make([]byte, 32)
				rand.Read(mac)
				forged[i] = row{seq: seq, prev: prev, hash: store.AuditHash(prev, seq, data), data: data, kind: "call", agent: "nobody", out: "ok",
					keyID: pristine[0].keyID, mac: hex.EncodeToString(mac)}
				prev = forged[i].hash
			}
			r.insert(t, forged)
			c := store.AuditCheckpoint{Seq: 40, Hash: prev, Time: time.Now().UTC(), Replica: "r1", KeyID: pristine[0].keyID}
			c.Sig = base64.StdEncoding.EncodeToString(ed25519.Sign(priv, audit.CheckpointPayload(c)))
			must(t, r.st.PutAuditCheckpoint(ctx, c))
			wantBreak(t, "forged table", verify(t, r, ""), 1, "MAC")
			// Without MACs at all, it is named too.
			r.exec(t, `UPDATE audit SET mac = '', key_id = ''`)
			wantBreak(t, "forged table without MACs", verify(t, r, ""), 1, "no MAC")
		})
		t.Run("rollback to an older backup", func(t *testing.T) {
			defer restore(t)
			defer restoreCheckpoints(t)
			// The backup was taken at record 20 (with its checkpoints); the host then wrote
			// records 21-30 (checkpointed, in the anchor too). Restoring it and letting the host
			// write 15 more gives a log that is genuine, signed, and a different history.
			r.exec(t, `DELETE FROM audit WHERE seq > 20`)
			r.exec(t, `DELETE FROM audit_checkpoints WHERE seq > 20`)
			for i := 21; i <= 35; i++ { // other calls than the lost ones
				_, err := r.st.AppendAudit(ctx, fmt.Appendf(nil, `{"kind":"call","agent":"later","request_id":"n%d","outcome":"ok"}`, i))
				must(t, err)
			}
			fresh, err := audit.Attach(ctx, r.st, r.sealer, &audit.TrailOptions{Replica: "r1"}) // a restarted host
			must(t, err)
			if _, _, err := fresh.Checkpoint(ctx); err != nil {
				t.Fatal(err)
			}
			if err := verify(t, r, ""); err != nil {
				t.Errorf("without the anchor, verify = %v; the README says a rollback needs the anchor", err)
			}
			wantBreak(t, "rollback", verify(t, r, r.anchor), 21, "records 21 to 30 differ", "anchor", "older backup")
			// Before the host wrote again, the anchor shows records missing instead.
			r.exec(t, `DELETE FROM audit WHERE seq > 25`)
			r.exec(t, `DELETE FROM audit_checkpoints WHERE seq > 20`)
			wantBreak(t, "rollback, nothing written since", verify(t, r, r.anchor), 26, "missing", "anchor")
			r.st.SetAuditKeys(r.trail)
		})
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// An export verifies on another machine with only the public key, and any change to it is
// named.
func TestExportVerifiesOffline(t *testing.T) {
	forEachBackend(t, func(t *testing.T, r *rig) {
		ctx := context.Background()
		r.build(t)
		r.fill(t, 30, 34) // not yet checkpointed: the export signs them
		var buf bytes.Buffer
		rep, err := r.trail.Export(ctx, &buf)
		if err != nil || rep.Records != 34 {
			t.Fatalf("Export = %+v, %v", rep, err)
		}
		pubs := r.trail.Keys().PublicKeys()
		// What the other machine gets: the file and the printed key, nothing else.
		printed := audit.FormatPublicKey(pubs[len(pubs)-1].Key)
		pk, err := audit.ParsePublicKey(printed)
		must(t, err)
		only := []audit.PublicKey{{Key: pk}}
		export := buf.Bytes()
		got, err := audit.VerifyExport(bytes.NewReader(export), only)
		if err != nil || got.Records != 34 || got.Covered != 34 {
			t.Fatalf("VerifyExport of a fresh export = %+v, %v", got, err)
		}

		lines := bytes.Split(bytes.TrimSpace(export), []byte("\n"))
		record := func(seq int) int { return seq } // line 0 is the header
		flip := func(seq int, old, new string) []byte {
			out := bytes.Clone(export)
			l := lines[record(seq)]
			i := bytes.Index(out, l)
			j := bytes.Index(l, []byte(old))
			if j < 0 {
				t.Fatalf("record %d has no %q: %s", seq, old, l)
			}
			copy(out[i+j:], new)
			return out
		}
		t.Run("a flipped byte is named", func(t *testing.T) {
			_, err := audit.VerifyExport(bytes.NewReader(flip(17, `"agent":"bot"`, `"agent":"bou"`)), only)
			wantBreak(t, "flipped byte", err, 17, "changed")
		})
		t.Run("a deleted line is named", func(t *testing.T) {
			cut := bytes.Replace(export, append(bytes.Clone(lines[record(9)]), '\n'), nil, 1)
			_, err := audit.VerifyExport(bytes.NewReader(cut), only)
			wantBreak(t, "deleted line", err, 9, "missing")
		})
		t.Run("an edit with the chain recomputed", func(t *testing.T) {
			// The attacker rewrites record 15 in the file and recomputes every later hash.
			var out bytes.Buffer
			prev := ""
			for i, l := range lines {
				if i == 0 || !bytes.Contains(l, []byte(`"type":"record"`)) {
					out.Write(l)
					out.WriteByte('\n')
					continue
				}
				seq := int64(i)
				data := l[bytes.Index(l, []byte(`"data":`))+len(`"data":`) : len(l)-1]
				if seq == 15 {
					data = bytes.Replace(data, []byte(`"bot"`), []byte(`"eve"`), 1)
				}
				h := store.AuditHash(prev, seq, data)
				fmt.Fprintf(&out, `{"type":"record","seq":%d,"prev_hash":%q,"hash":%q,"key_id":"x","mac":"y","data":%s}`+"\n", seq, prev, h, data)
				prev = h
			}
			_, err := audit.VerifyExport(&out, only)
			wantBreak(t, "recomputed export", err, 11, "records 11 to 20 differ")
		})
		t.Run("cut after the last checkpoint", func(t *testing.T) {
			n := 0
			var keep [][]byte
			for _, l := range lines {
				if bytes.Contains(l, []byte(`"type":"checkpoint"`)) && bytes.Contains(l, []byte(`"seq":34,`)) {
					continue // the final checkpoint is dropped with the last records
				}
				if bytes.Contains(l, []byte(`"seq":34,`)) {
					continue
				}
				keep = append(keep, l)
				n++
			}
			_, err := audit.VerifyExport(bytes.NewReader(append(bytes.Join(keep, []byte("\n")), '\n')), only)
			wantBreak(t, "cut", err, 31, "not covered")
		})
		t.Run("another key proves nothing", func(t *testing.T) {
			other, _, _ := ed25519.GenerateKey(rand.Reader)
			_, err := audit.VerifyExport(bytes.NewReader(export), []audit.PublicKey{{Key: other}})
			wantBreak(t, "other key", err, 1, "not covered")
		})
		if err := os.WriteFile(filepath.Join(t.TempDir(), "x"), export, 0o600); err != nil {
			t.Fatal(err)
		}
	})
}

// After a key rotation, records and checkpoints made with the old key still verify, online
// and offline with both public keys.
func TestKeyRotation(t *testing.T) {
	forEachBackend(t, func(t *testing.T, r *rig) {
		ctx := context.Background()
		r.fill(t, 0, 5)
		r.checkpoint(t)
		old := r.trail.Keys().PublicKeys()[0]
		id, err := r.trail.Keys().Rotate(ctx)
		must(t, err)
		r.fill(t, 5, 10)
		r.checkpoint(t)
		recs, _ := r.st.QueryAudit(ctx, store.AuditFilter{})
		if recs[0].KeyID != old.ID || recs[9].KeyID != id {
			t.Errorf("key ids = %s … %s, want %s … %s", recs[0].KeyID, recs[9].KeyID, old.ID, id)
		}
		if _, err := r.trail.Verify(ctx, r.anchor); err != nil {
			t.Fatalf("Verify after rotation = %v", err)
		}
		var buf bytes.Buffer
		if _, err := r.trail.Export(ctx, &buf); err != nil {
			t.Fatal(err)
		}
		if _, err := audit.VerifyExport(bytes.NewReader(buf.Bytes()), r.trail.Keys().PublicKeys()); err != nil {
			t.Errorf("VerifyExport with both keys = %v", err)
		}
	})
}

// Records an older airlock wrote without MACs are named by verify until an admin adopts them
// with a signed checkpoint (never automatically: a forged unkeyed table would be adopted too);
// then they verify, and an unkeyed record added after that is named, online and offline.
func TestUnkeyedLogIsAdopted(t *testing.T) {
	forEachBackend(t, func(t *testing.T, r *rig) {
		ctx := context.Background()
		r.st.SetAuditKeys(nil) // as an older airlock wrote it
		r.fill(t, 0, 5)
		tr, err := audit.Attach(ctx, r.st, r.sealer, &audit.TrailOptions{Anchor: r.anchor, Replica: "r1"})
		must(t, err)
		r.fill(t, 5, 8) // a host with keys extends it
		wantBreak(t, "unkeyed, not adopted", verify(t, r, ""), 1, "no MAC", "audit adopt")
		if _, err := tr.Adopt(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := tr.Adopt(ctx); err != nil {
			t.Fatal(err) // idempotent
		}
		if rep, err := tr.Verify(ctx, r.anchor); err != nil || rep.Records != 8 {
			t.Fatalf("Verify of an adopted log = %+v, %v", rep, err)
		}
		var buf bytes.Buffer
		if _, err := tr.Export(ctx, &buf); err != nil {
			t.Fatal(err)
		}
		if _, err := audit.VerifyExport(bytes.NewReader(buf.Bytes()), tr.Keys().PublicKeys()); err != nil {
			t.Fatalf("VerifyExport of an adopted log = %v", err)
		}
		last := r.rows(t)[7]
		data := []byte(`{"kind":"call","agent":"mallory","outcome":"ok"}`)
		r.insert(t, []row{{seq: 9, prev: last.hash, hash: store.AuditHash(last.hash, 9, data), data: data, kind: "call", agent: "mallory", out: "ok"}})
		wantBreak(t, "unkeyed record after adoption", verify(t, r, ""), 9, "no MAC")
		// The attacker's export: the records as they are, the host's checkpoints.
		var forged bytes.Buffer
		for _, l := range bytes.SplitAfter(buf.Bytes(), []byte("\n")) {
			forged.Write(l)
			if bytes.Contains(l, []byte(`"seq":8,`)) && bytes.Contains(l, []byte(`"type":"record"`)) {
				fmt.Fprintf(&forged, `{"type":"record","seq":9,"prev_hash":%q,"hash":%q,"data":%s}`+"\n", last.hash, store.AuditHash(last.hash, 9, data), data)
			}
		}
		_, err = audit.VerifyExport(&forged, tr.Keys().PublicKeys())
		wantBreak(t, "offline: unkeyed record after adoption", err, 9, "no MAC")
	})
}
