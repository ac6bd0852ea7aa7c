package admin

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/airlock-dev/airlock/host/audit"
	"github.com/airlock-dev/airlock/host/store"
)

// Approvals lists approval requests with status ("" for all), newest first.
func (a *Admin) Approvals(ctx context.Context, status string) ([]store.Approval, error) {
	return a.st.ListApprovals(ctx, status)
}

// Approve lets the pending call id run once, with exactly the arguments it was recorded with,
// before it expires. The agent runs it by calling the tool again with the same arguments.
func (a *Admin) Approve(ctx context.Context, id, by string) (store.Approval, error) {
	return a.decide(ctx, id, "approved", by, "")
}

// Deny refuses the pending call id; the agent is told so, with reason, if it calls again.
func (a *Admin) Deny(ctx context.Context, id, by, reason string) (store.Approval, error) {
	return a.decide(ctx, id, "denied", by, reason)
}

func (a *Admin) decide(ctx context.Context, id, status, by, reason string) (store.Approval, error) {
	// Whether the request expired is the store's decision, on the store's clock (the one the
	// host used to set Expires), not this process's wall clock.
	ap, err := a.st.DecideApproval(ctx, id, status, by, reason)
	if errors.Is(err, store.ErrNotFound) {
		return store.Approval{}, fmt.Errorf("there is no approval request %q (see `airlock approvals`): %w", id, store.ErrNotFound)
	}
	if errors.Is(err, store.ErrConflict) {
		cur, gerr := a.st.GetApproval(ctx, id)
		switch {
		case gerr != nil:
			return store.Approval{}, err
		case cur.Status == store.ApprovalPending || cur.Status == store.ApprovalExpired:
			return store.Approval{}, fmt.Errorf("approval request %s expired at %s: the agent must call again to ask anew: %w",
				id, cur.Expires.UTC().Format(time.RFC3339), store.ErrConflict)
		default:
			return store.Approval{}, fmt.Errorf("approval request %s is already %s: %w", id, cur.Status, store.ErrConflict)
		}
	}
	if err != nil {
		return store.Approval{}, err
	}
	a.logger.Info("approval decided", "approval", id, "status", status, "by", by, "tool", ap.Connector+"."+ap.Tool)
	return ap, audit.Action(ctx, a.st, by, map[string]string{"approved": "approve", "denied": "deny"}[status], id,
		map[string]string{"tool": ap.Connector + "." + ap.Tool, "agent": ap.Agent, "subject": ap.Subject, "args_sha256": ap.ArgsSHA256, "reason": reason})
}
