package admin_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/airlock-dev/airlock/host/audit"
	"github.com/airlock-dev/airlock/host/store"
)

// auditRow is every column of one audit record, as stored.
type auditRow struct {
	seq                                            int64
	ts                                             int64
	prevHash, hash                                 string
	data                                           []byte
	kind, connector, tool, agent, subject, outcome string
}

const auditCols = `seq, ts, prev_hash, hash, data, kind, connector, tool, agent, subject, outcome`

// Calls through the host leave a hash chain in the store that VerifyAudit checks; changing a
// field, deleting a record or swapping two is detected and the first bad record is named.
func TestAuditVerifyDetectsTampering(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t, envOptions{dsn: b.dsn(t)})
			e.install(t, "slack", "1.0.0", store.InstalledActive, e.slackYAML(t, nil), e.slackW)
			e.grant(t, "", e.slackGrant())
			e.slack.SetEchoHeaders(true) // a careless upstream echoes the token back
			for _, c := range [][2]string{
				{"slack.list_channels", `{"limit":2}`},
				{"slack.post_message", `{"channel":"C0GENERAL","text":"hello"}`},
				{"slack.post_message", `{"channel":"C0OPS","text":"hello"}`}, // Slack refuses
				{"slack.channel_history", `{"channel":"C0GENERAL"}`},
				{"slack.nope", `{}`},
				{"slack.list_channels", `{"limit":1}`},
			} {
				e.call(c[0], c[1])
			}
			recs := e.auditRecords(t, store.AuditFilter{})
			if len(recs) < 10 {
				t.Fatalf("the audit log has %d records, want a call record per call and a request record per request", len(recs))
			}
			if n, err := e.st.VerifyAudit(ctx); err != nil || n != int64(len(recs)) {
				t.Fatalf("VerifyAudit of an intact log = %d, %v; want %d, nil", n, err, len(recs))
			}
			// No canary in any exported record.
			for _, r := range recs {
				if containsCanary(r.Data) {
					t.Errorf("audit record %d holds the secret: %s", r.Seq, r.Data)
				}
				if _, err := audit.DecodeRecord(r); err != nil {
					t.Error(err)
				}
			}

			db := rawDB(t, e.dsn)
			read := func(seq int64) auditRow {
				t.Helper()
				var r auditRow
				if err := db.QueryRow(rebind(e.dsn, `SELECT `+auditCols+` FROM audit WHERE seq = ?`), seq).Scan(
					&r.seq, &r.ts, &r.prevHash, &r.hash, &r.data, &r.kind, &r.connector, &r.tool, &r.agent, &r.subject, &r.outcome); err != nil {
					t.Fatal(err)
				}
				return r
			}
			write := func(seq int64, r auditRow) {
				t.Helper()
				if _, err := db.Exec(rebind(e.dsn, `UPDATE audit SET ts = ?, prev_hash = ?, hash = ?, data = ?, kind = ?, connector = ?, tool = ?, agent = ?, subject = ?, outcome = ? WHERE seq = ?`),
					r.ts, r.prevHash, r.hash, r.data, r.kind, r.connector, r.tool, r.agent, r.subject, r.outcome, seq); err != nil {
					t.Fatal(err)
				}
			}
			insert := func(r auditRow) {
				t.Helper()
				if _, err := db.Exec(rebind(e.dsn, `INSERT INTO audit (`+auditCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`),
					r.seq, r.ts, r.prevHash, r.hash, r.data, r.kind, r.connector, r.tool, r.agent, r.subject, r.outcome); err != nil {
					t.Fatal(err)
				}
			}
			wantBreak := func(what string, seq int64) {
				t.Helper()
				_, err := e.st.VerifyAudit(ctx)
				var br *store.AuditBreak
				if !errors.As(err, &br) {
					t.Fatalf("%s: VerifyAudit = %v, want an *AuditBreak", what, err)
				}
				if br.Seq != seq {
					t.Errorf("%s: VerifyAudit names record %d (%s), want %d", what, br.Seq, br.Reason, seq)
				}
			}
			intact := func() {
				t.Helper()
				if _, err := e.st.VerifyAudit(ctx); err != nil {
					t.Fatalf("after restoring: %v", err)
				}
			}

			// A changed field: a denied call rewritten as allowed.
			const k = 4
			orig := read(k)
			var ev map[string]any
			if err := json.Unmarshal(orig.data, &ev); err != nil {
				t.Fatal(err)
			}
			ev["agent"] = "someone-else"
			forged := orig
			forged.data, _ = json.Marshal(ev)
			write(k, forged)
			wantBreak("changed field", k)
			// The same with the indexed column changed to match, and the record's own hash
			// recomputed: the next record's link breaks.
			forged.agent = "someone-else"
			forged.hash = store.AuditHash(forged.prevHash, k, forged.data)
			write(k, forged)
			wantBreak("changed field with its hash recomputed", k+1)
			// Only the indexed column, to hide a record from searches.
			forged = orig
			forged.tool = "slack.harmless"
			write(k, forged)
			wantBreak("changed column", k)
			write(k, orig)
			intact()

			// A deleted record.
			if _, err := db.Exec(rebind(e.dsn, `DELETE FROM audit WHERE seq = ?`), k); err != nil {
				t.Fatal(err)
			}
			wantBreak("deleted record", k)
			insert(orig)
			intact()

			// A swapped pair.
			a, b := read(k), read(k+1)
			write(k, b)
			write(k+1, a)
			wantBreak("swapped pair", k)
			write(k, a)
			write(k+1, b)
			intact()
		})
	}
}
