package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Approval statuses. An approval moves pending → approved | denied | expired, and
// approved → used | expired; nothing else.
const (
	ApprovalPending  = "pending"
	ApprovalApproved = "approved"
	ApprovalDenied   = "denied"
	ApprovalUsed     = "used"
	ApprovalExpired  = "expired"
)

// Approval is a request for a human to approve one exact tool call.
type Approval struct {
	ID, Connector, Tool, Agent, Subject string
	ArgsSHA256                          string // hex SHA-256 of Args; the call must match it
	Args                                []byte // exact JSON arguments, for the admin to review
	Status                              string // Approval* constants
	Reason, DecidedBy                   string
	Created, Expires                    time.Time // Created is stamped by the store when zero
	Decided                             time.Time // zero until decided
}

const approvalCols = `id, connector, tool, agent, subject, args_sha256, args, status, reason, decided_by, created, expires, decided`

func scanApproval(sc interface{ Scan(...any) error }) (Approval, error) {
	var (
		a                         Approval
		created, expires, decided int64
	)
	if err := sc.Scan(&a.ID, &a.Connector, &a.Tool, &a.Agent, &a.Subject, &a.ArgsSHA256, &a.Args, &a.Status,
		&a.Reason, &a.DecidedBy, &created, &expires, &decided); err != nil {
		return Approval{}, err
	}
	a.Args = nonNil(a.Args)
	a.Created, a.Expires, a.Decided = fromNanos(created), fromNanos(expires), fromNanos(decided)
	return a, nil
}

// CreateApproval records a new pending approval. a.ID must be new ([ErrConflict] otherwise)
// and a.Expires set; a.Status must be empty or "pending".
func (s *Store) CreateApproval(ctx context.Context, a Approval) error {
	op := "creating approval " + a.ID
	switch {
	case a.ID == "" || a.Connector == "" || a.Tool == "" || a.ArgsSHA256 == "":
		return fmt.Errorf("store: %s: an approval needs an id, a connector, a tool and an arguments hash", op)
	case a.Expires.IsZero():
		return fmt.Errorf("store: %s: an approval needs an expiry time", op)
	case a.Status != "" && a.Status != ApprovalPending:
		return fmt.Errorf("store: %s: a new approval is pending; decide it with DecideApproval", op)
	}
	_, err := s.exec(ctx, `INSERT INTO approvals (`+approvalCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', '', '', ?, ?, 0)`,
		a.ID, a.Connector, a.Tool, a.Agent, a.Subject, a.ArgsSHA256, nonNil(a.Args), toNanos(s.stamp(a.Created)), toNanos(a.Expires))
	if err != nil && s.d.isUnique(err) {
		return fmt.Errorf("store: %s: an approval with this id exists already; choose a new id: %w", op, ErrConflict)
	}
	return wrap(op, err)
}

// GetApproval returns the approval id, or an error wrapping [ErrNotFound].
func (s *Store) GetApproval(ctx context.Context, id string) (Approval, error) {
	return getApproval(ctx, s.queryRow, id)
}

func getApproval(ctx context.Context, queryRow func(context.Context, string, ...any) *sql.Row, id string) (Approval, error) {
	a, err := scanApproval(queryRow(ctx, `SELECT `+approvalCols+` FROM approvals WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Approval{}, notFound("approval "+id, "it may have been purged; ask for a new approval")
	}
	return a, wrap("reading approval "+id, err)
}

// ListApprovals returns the approvals with status ("" = all), newest first.
func (s *Store) ListApprovals(ctx context.Context, status string) ([]Approval, error) {
	if status == "" {
		return s.approvals(ctx, "listing approvals", "")
	}
	return s.approvals(ctx, "listing approvals", ` WHERE status = ?`, status)
}

// FindApprovals returns the approvals of one exact call — connector, tool, subject and
// arguments digest — newest first, whatever their status. The call path uses it to find the
// approval a repeated call may run on, without reading every approval ever made.
func (s *Store) FindApprovals(ctx context.Context, connector, tool, subject, argsSHA256 string) ([]Approval, error) {
	return s.approvals(ctx, "finding approvals", ` WHERE connector = ? AND tool = ? AND subject = ? AND args_sha256 = ?`,
		connector, tool, subject, argsSHA256)
}

func (s *Store) approvals(ctx context.Context, op, where string, args ...any) ([]Approval, error) {
	rows, err := s.query(ctx, `SELECT `+approvalCols+` FROM approvals`+where+` ORDER BY created DESC, id DESC`, args...)
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	var out []Approval
	for rows.Next() {
		a, err := scanApproval(rows)
		if err != nil {
			return nil, wrap(op, err)
		}
		out = append(out, a)
	}
	return out, wrap(op, rows.Err())
}

// DecideApproval records an admin's decision, status "approved" or "denied", made by by with
// reason. Only a pending, unexpired approval can be decided; otherwise it returns an error
// wrapping [ErrConflict] (or [ErrNotFound]). It returns the approval as decided.
func (s *Store) DecideApproval(ctx context.Context, id, status, by, reason string) (Approval, error) {
	op := "deciding approval " + id
	if status != ApprovalApproved && status != ApprovalDenied {
		return Approval{}, fmt.Errorf("store: %s: the decision must be %q or %q, not %q", op, ApprovalApproved, ApprovalDenied, status)
	}
	now := s.now().UTC()
	var out Approval
	err := s.inTx(ctx, func(t tx) error {
		r, err := t.exec(ctx, `UPDATE approvals SET status = ?, decided_by = ?, reason = ?, decided = ?
			WHERE id = ? AND status = 'pending' AND expires > ?`, status, by, reason, toNanos(now), id, toNanos(now))
		if err != nil {
			return wrap(op, err)
		}
		n, err := affected(r)
		if err != nil {
			return wrap(op, err)
		}
		a, err := getApproval(ctx, t.queryRow, id)
		if err != nil {
			return err
		}
		if n == 0 {
			if a.Status == ApprovalPending {
				return fmt.Errorf("store: %s: it expired at %s; the agent must ask again: %w", op, a.Expires.Format(time.RFC3339), ErrConflict)
			}
			return fmt.Errorf("store: %s: it is already %s: %w", op, a.Status, ErrConflict)
		}
		out = a
		return nil
	})
	if err == nil {
		s.notify(ctx, ChangeApproval, id)
	}
	return out, err
}

// ConsumeApproval atomically turns the approval id into "used" if it is approved, unexpired at
// now, and was given for exactly this connector, tool, subject and arguments hash. An approval
// runs one call: a second Consume fails. Otherwise it returns an error wrapping [ErrNotFound]
// or [ErrConflict] that says why.
func (s *Store) ConsumeApproval(ctx context.Context, id, connector, tool, subject, argsSHA256 string, now time.Time) error {
	op := "using approval " + id
	r, err := s.exec(ctx, `UPDATE approvals SET status = 'used'
		WHERE id = ? AND status = 'approved' AND connector = ? AND tool = ? AND subject = ? AND args_sha256 = ? AND expires > ?`,
		id, connector, tool, subject, argsSHA256, toNanos(now))
	if err != nil {
		return wrap(op, err)
	}
	if n, err := affected(r); err != nil {
		return wrap(op, err)
	} else if n == 1 {
		return nil
	}
	a, err := s.GetApproval(ctx, id)
	if err != nil {
		return err
	}
	switch {
	case a.Status == ApprovalUsed:
		return fmt.Errorf("store: %s: it was already used; an approval runs one call, ask for a new one: %w", op, ErrConflict)
	case a.Status == ApprovalPending:
		return fmt.Errorf("store: %s: it is still pending; wait for an admin to decide: %w", op, ErrConflict)
	case a.Status != ApprovalApproved:
		return fmt.Errorf("store: %s: it is %s: %w", op, a.Status, ErrConflict)
	case a.Connector != connector || a.Tool != tool || a.Subject != subject || a.ArgsSHA256 != argsSHA256:
		return fmt.Errorf("store: %s: it was approved for a different call (connector, tool, subject or arguments differ); ask for approval of this exact call: %w", op, ErrConflict)
	default:
		return fmt.Errorf("store: %s: it expired at %s; ask for a new approval: %w", op, a.Expires.Format(time.RFC3339), ErrConflict)
	}
}
