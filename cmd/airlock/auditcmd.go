package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/airlock-dev/airlock/host/admin"
	"github.com/airlock-dev/airlock/host/audit"
	"github.com/airlock-dev/airlock/host/store"
)

func runAudit(ctx context.Context, e *env, args []string) error {
	var g globals
	fs := newFlagSet(e, "audit", `
Usage: airlock audit [tail|search|export|verify|key] [filters] [-n N] [--follow] [--json]

The audit trail is kept in the state store: one record per tool call and one per outbound
request — time, agent, subject, connector version and module digest, tool, argument keys and
digest (never values), decision, upstream method, host and path (never the query string),
status, attempts, waits, duration and the credential slot injected (never a value) — one per
admin action with its actor, and one per refused call or authentication (rate-limited; what is
left out is counted).

Records are hash-chained, each link authenticated with an HMAC under an audit key the database
does not hold (sealed under the master key), and the host signs a checkpoint (ed25519) of the
chain's head every 1000 records or 10 seconds and at shutdown, in the database and in an anchor
file outside it (STATE_DIR/audit-anchor.jsonl, or $AIRLOCK_AUDIT_ANCHOR). 'verify' names the
first edited, deleted, reordered or forged record, or the records missing after a truncation or
a restore from an older backup (exit status 1).

  tail          the last N records (default), --follow to keep printing new ones
  search        the records matching the filters (--json: the events as JSON lines, for a SIEM)
  export        the whole log with its checkpoints, verifiable elsewhere with the public key
  verify        check the chain, its MACs, the checkpoints and the anchor file (--anchor FILE)
  verify --file F --pubkey K    check an export on any machine: no store, no secret key
  key           print the public key that verifies checkpoints (key rotate: start a new one)
  adopt         vouch for the records an older airlock wrote without MACs (after checking them)

Filters: --connector --tool --agent --subject --decision ok|error|denied|unknown --kind call|request|begin|admin|auth
--since/--until (RFC 3339, or a duration back from now such as 24h), and who asked for a call:
--session (the MCP session ID), --conversation and --user (the labels the client sent: _meta
dev.airlock/conversation and dev.airlock/user, or the X-Airlock-Conversation / X-Airlock-User
headers). Labels are the client's word, never authority: the subject comes from the token.

'search' also works through a server's admin API: --server URL (or $AIRLOCK_SERVER), with a
viewer's admin token (or more) in $AIRLOCK_ADMIN_TOKEN. The other actions work on the state store.`, `
  airlock audit search --conversation c-42 --user alice@example.com
  airlock audit
  airlock audit search --connector slack --decision denied --since 24h
  airlock audit export > audit.jsonl
  airlock audit key > audit.pub
  airlock audit verify
  airlock audit verify --file audit.jsonl --pubkey "$(cat audit.pub)"`)
	g.register(fs)
	g.registerServer(fs)
	n := fs.Int("n", 50, "tail: show the last N records")
	follow := fs.Bool("follow", false, "tail: keep printing new records")
	asJSON := fs.Bool("json", false, "print JSON lines")
	anchor := fs.String("anchor", "", "verify: the anchor `file` of checkpoints kept outside the database (default STATE_DIR/audit-anchor.jsonl when it exists)")
	file := fs.String("file", "", "verify: an export `file` to check offline, with --pubkey")
	var pubkeys listFlag
	fs.Var(&pubkeys, "pubkey", "verify --file: a public `key` (ed25519:…) from `airlock audit key`; repeat for keys rotated out")
	filters := map[string]*string{}
	for _, name := range []string{"connector", "tool", "agent", "subject", "session", "conversation", "user", "decision", "kind", "since", "until"} {
		filters[name] = fs.String(name, "", "only records with this "+name)
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	verb, sub := cmpOr(fs.Arg(0), "tail"), ""
	if verb == "key" && fs.Arg(1) == "rotate" {
		sub = "rotate"
	}
	words := 1 // VERB, or key rotate
	if sub != "" {
		words = 2
	}
	if err := atMost(fs, words, ""); err != nil {
		return err
	}
	if verb == "verify" && *file != "" {
		return verifyExportFile(e, *file, pubkeys)
	}
	if *file != "" || len(pubkeys) > 0 {
		return usagef("--file and --pubkey go with verify: airlock audit verify --file F --pubkey K")
	}
	f, err := admin.ParseAuditFilter(func(k string) string {
		if v, ok := filters[k]; ok {
			return *v
		}
		return ""
	}, nil)
	if err != nil {
		return usagef("%v", err)
	}
	if c, err := g.remote(); err != nil || c != nil {
		if err != nil {
			return err
		}
		if verb != "search" {
			return usagef("audit %s works on the state store only; through --server use: airlock audit search [filters]", verb)
		}
		q := url.Values{}
		for k, v := range filters {
			if *v != "" {
				q.Set(k, *v)
			}
		}
		return remoteAuditSearch(ctx, e, c, q, *asJSON)
	}
	// The trail is keyed with the audit key sealed under the master key: these commands need it
	// (a fresh embedded state gets one, saying so; a shared one must be given it).
	g.mayCreateKey, g.notice = true, e.stderr
	st, err := g.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	trail := audit.TrailOf(st)
	if trail == nil {
		return errors.New("the audit trail has no key to check it with: give the master key (--master-key REF)")
	}
	switch verb {
	case "verify":
		if *anchor == "" {
			_, stateDir, err := g.loadConfig()
			if err != nil {
				return err
			}
			if p := anchorPath(stateDir); fileExists(p) {
				*anchor = p
			}
		}
		rep, err := trail.Verify(ctx, *anchor)
		return reportVerify(e, rep, err, *anchor)
	case "export":
		if f != (store.AuditFilter{}) {
			return usagef("export writes the whole log, so that it verifies; to select records use: airlock audit search --json [filters]")
		}
		rep, err := trail.Export(ctx, e.stdout)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "Exported %d records and %d signed checkpoints. Verify anywhere with: airlock audit verify --file FILE --pubkey %s\n",
			rep.Records, rep.Checkpoints, activeKey(trail))
		return nil
	case "key":
		if sub == "rotate" {
			old := activeKey(trail)
			id, err := trail.Keys().Rotate(ctx)
			if err != nil {
				return err
			}
			if err := g.recordAction(ctx, st, "audit key rotate", id, map[string]string{"previous": old, "public_key": activeKey(trail)}); err != nil {
				return err
			}
			fmt.Fprintf(e.stderr, "New audit key %s. Keep the previous public key too: it verifies the records made before.\n", id)
		}
		for _, k := range trail.Keys().PublicKeys() {
			if *asJSON {
				if err := writeJSON(e, map[string]any{"id": k.ID, "public_key": audit.FormatPublicKey(k.Key), "created": k.Created, "active": k.Active}); err != nil {
					return err
				}
				continue
			}
			if k.Active {
				fmt.Fprintln(e.stdout, audit.FormatPublicKey(k.Key))
			} else {
				fmt.Fprintf(e.stderr, "older key %s (created %s): %s\n", k.ID, k.Created.Format(time.RFC3339), audit.FormatPublicKey(k.Key))
			}
		}
		return nil
	case "adopt":
		c, err := trail.Adopt(ctx)
		if err != nil {
			return err
		}
		if err := g.recordAction(ctx, st, "audit adopt", fmt.Sprint(c.Seq), map[string]string{"hash": c.Hash}); err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "Adopted records 1 to %d (written without MACs) with a signed checkpoint; every later record must carry a MAC.\n", c.Seq)
		return nil
	case "search":
		return printRecords(e, st, ctx, f, *asJSON)
	case "tail":
		recs, err := lastRecords(ctx, st, f, *n)
		if err != nil {
			return err
		}
		if len(recs) == 0 && !*follow {
			fmt.Fprintln(e.stdout, "No audit records yet. Run a tool call ('airlock call', 'airlock demo') to make some.")
			return nil
		}
		show(e, recs, *asJSON)
		if !*follow {
			return nil
		}
		last := int64(0)
		if len(recs) > 0 {
			last = recs[len(recs)-1].Seq
		}
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(500 * time.Millisecond):
			}
			f.AfterSeq = last
			more, err := st.QueryAudit(ctx, f)
			if err != nil {
				return err
			}
			show(e, more, *asJSON)
			if len(more) > 0 {
				last = more[len(more)-1].Seq
			}
		}
	default:
		return usagef("unknown action %q: use tail, search, export, verify, key or adopt", verb)
	}
}

// auditDetail is the DETAIL column of an admin action, a refused authentication or a count of
// dropped refusals.
func auditDetail(ev audit.Event) string {
	switch ev.Kind {
	case audit.KindAdmin:
		d := fmt.Sprintf("%s: %s %s", ev.Actor, ev.Action, ev.Target)
		if len(ev.Detail) > 0 {
			d += " " + string(ev.Detail)
		}
		return d
	case audit.KindAuth:
		return fmt.Sprintf("%s %s %s from %s: %s", ev.Realm, ev.Method, ev.URL, ev.Remote, ev.Message)
	default:
		return fmt.Sprintf("%d refused calls or authentications not recorded (rate limit)", ev.Dropped)
	}
}

func activeKey(t *audit.Trail) string {
	for _, k := range t.Keys().PublicKeys() {
		if k.Active {
			return audit.FormatPublicKey(k.Key)
		}
	}
	return ""
}

// reportVerify prints the outcome of a verification: OK with what was checked, or BROKEN with
// the first bad record and what happened to it (exit status 1).
func reportVerify(e *env, rep audit.Report, err error, anchor string) error {
	if err := reportBroken(e, rep, err); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "OK: %d records, chain and MACs intact; %d signed checkpoints check, the last covering record %d.\n",
		rep.Records, rep.Checkpoints, rep.Covered)
	switch {
	case anchor != "":
		fmt.Fprintf(e.stdout, "Anchor %s: %d checkpoints, none beyond the log.\n", anchor, rep.Anchored)
	default:
		fmt.Fprintln(e.stdout, "No anchor file: truncation after the last checkpoint and a restore of an older backup cannot be detected (--anchor FILE).")
	}
	if rep.Records > rep.Covered {
		fmt.Fprintf(e.stdout, "Records %d to %d are not yet covered by a checkpoint (the next one signs them).\n", rep.Covered+1, rep.Records)
	}
	return nil
}

// reportBroken prints a break (the first bad record, or what is missing) and returns
// errSilent (exit status 1), returns any other error, or nil when the verification passed.
func reportBroken(e *env, rep audit.Report, err error) error {
	var br *store.AuditBreak
	if errors.As(err, &br) {
		fmt.Fprintf(e.stdout, "BROKEN: record %d: %s (%d records checked).\n", br.Seq, br.Reason, rep.Records)
		return errSilent
	}
	return err
}

func verifyExportFile(e *env, path string, keys []string) error {
	if len(keys) == 0 {
		return usagef("verify --file needs --pubkey KEY (print it on the host with: airlock audit key)")
	}
	var pubs []audit.PublicKey
	for _, k := range keys {
		if b, err := os.ReadFile(k); err == nil {
			k = string(b) // a file holding the key
		}
		p, err := audit.ParsePublicKey(k)
		if err != nil {
			return usagef("--pubkey: %v", err)
		}
		pubs = append(pubs, audit.PublicKey{ID: audit.KeyID(p), Key: p})
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	rep, err := audit.VerifyExport(f, pubs)
	if err := reportBroken(e, rep, err); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "OK: %d records, chain intact, every record covered by %d checkpoints signed by the key(s) given (the last covers record %d).\n",
		rep.Records, rep.Checkpoints, rep.Covered)
	return nil
}

// lastRecords returns the last n records matching f (n ≤ 0: all), oldest first.
func lastRecords(ctx context.Context, st *store.Store, f store.AuditFilter, n int) ([]store.AuditRecord, error) {
	if f == (store.AuditFilter{}) && n > 0 {
		head, _, err := st.AuditHead(ctx)
		if err != nil {
			return nil, err
		}
		f.AfterSeq, f.Limit = max(0, head-int64(n)), n
		return st.QueryAudit(ctx, f)
	}
	var out []store.AuditRecord
	for {
		f.Limit = 1000
		recs, err := st.QueryAudit(ctx, f)
		if err != nil {
			return nil, err
		}
		out = append(out, recs...)
		if n > 0 && len(out) > n {
			out = out[len(out)-n:]
		}
		if len(recs) < f.Limit {
			return out, nil
		}
		f.AfterSeq = recs[len(recs)-1].Seq
	}
}

func printRecords(e *env, st *store.Store, ctx context.Context, f store.AuditFilter, asJSON bool) error {
	for {
		f.Limit = 1000
		recs, err := st.QueryAudit(ctx, f)
		if err != nil {
			return err
		}
		show(e, recs, asJSON)
		if len(recs) < f.Limit {
			return nil
		}
		f.AfterSeq = recs[len(recs)-1].Seq
	}
}

// remoteAuditSearch prints the records the admin API's /audit answers for the filters q, oldest
// first as the local search does: it follows the pages (newest first) to the last, then prints.
func remoteAuditSearch(ctx context.Context, e *env, c *adminClient, q url.Values, asJSON bool) error {
	q.Set("limit", strconv.Itoa(admin.MaxAuditPage))
	var recs []store.AuditRecord
	for {
		var page admin.AuditPage
		if err := c.do(ctx, "GET", "audit?"+q.Encode(), nil, &page); err != nil {
			return err
		}
		for _, r := range page.Records {
			var line bytes.Buffer // one JSON line per record, as the local search prints
			if err := json.Compact(&line, r.Event); err != nil {
				return fmt.Errorf("the airlock server's audit record %d is not JSON: %w", r.Seq, err)
			}
			recs = append(recs, store.AuditRecord{Seq: r.Seq, Data: line.Bytes()})
		}
		if page.NextCursor == "" {
			break
		}
		q.Set("cursor", page.NextCursor)
	}
	slices.Reverse(recs)
	show(e, recs, asJSON)
	return nil
}

func show(e *env, recs []store.AuditRecord, asJSON bool) {
	if asJSON {
		for _, r := range recs {
			fmt.Fprintln(e.stdout, string(r.Data))
		}
		return
	}
	events := make([]audit.Event, 0, len(recs))
	for _, r := range recs {
		var ev audit.Event
		if json.Unmarshal(r.Data, &ev) == nil {
			events = append(events, ev)
		}
	}
	printAudit(e, events)
}
