package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/airlock-dev/airlock/host/admin"
	"github.com/airlock-dev/airlock/host/audit"
	"github.com/airlock-dev/airlock/host/store"
)

func runAudit(ctx context.Context, e *env, args []string) error {
	var g globals
	fs := newFlagSet(e, "audit", `
Usage: airlock audit [tail|search|export|verify] [filters] [-n N] [--follow] [--json]

The audit trail is kept in the state store: one record per tool call and one per outbound
request — time, agent, subject, connector version and module digest, tool, argument keys and
digest (never values), decision, upstream method, host and path (never the query string),
status, attempts, waits, duration and the credential slot injected (never a value).

Records are append-only and hash-chained: each carries the hash of the one before, so 'verify'
detects any edited, deleted or reordered record and names the first bad one (exit status 1).

  tail     the last N records (default), --follow to keep printing new ones
  search   the records matching the filters
  export   the matching records as JSON lines, for a SIEM or an archive
  verify   check the whole chain

Filters: --connector --tool --agent --subject --decision ok|error|denied --kind call|request
--since/--until (RFC 3339, or a duration back from now such as 24h).`, `
  airlock audit
  airlock audit search --connector slack --decision denied --since 24h
  airlock audit export --since 2026-11-01T00:00:00Z > audit.jsonl
  airlock audit verify`)
	g.register(fs)
	n := fs.Int("n", 50, "tail: show the last N records")
	follow := fs.Bool("follow", false, "tail: keep printing new records")
	asJSON := fs.Bool("json", false, "print JSON lines")
	filters := map[string]*string{}
	for _, name := range []string{"connector", "tool", "agent", "subject", "decision", "kind", "since", "until"} {
		filters[name] = fs.String(name, "", "only records with this "+name)
	}
	verb := "tail"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		verb, args = args[0], args[1:]
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("unexpected arguments %q", fs.Args())
	}
	st, err := g.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	f, err := admin.ParseAuditFilter(func(k string) string {
		if v, ok := filters[k]; ok {
			return *v
		}
		return ""
	}, nil)
	if err != nil {
		return usagef("%v", err)
	}
	switch verb {
	case "verify":
		n, err := st.VerifyAudit(ctx)
		var br *store.AuditBreak
		if errors.As(err, &br) {
			fmt.Fprintf(e.stdout, "BROKEN: record %d: %s (%d records checked before it). The audit log was edited, truncated or reordered.\n", br.Seq, br.Reason, n)
			return errSilent
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "OK: %d records, hash chain intact.\n", n)
		return nil
	case "export":
		return printRecords(e, st, ctx, f, true)
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
		return usagef("unknown action %q: use tail, search, export or verify", verb)
	}
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
