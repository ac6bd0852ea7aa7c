package admin

import (
	"context"
	"errors"
	"fmt"
	"time"

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
	cur, err := a.st.GetApproval(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Approval{}, fmt.Errorf("there is no approval request %q (see `airlock approvals`)", id)
	}
	if err != nil {
		return store.Approval{}, err
	}
	if cur.Status == "pending" && !time.Now().Before(cur.Expires) {
		return store.Approval{}, fmt.Errorf("approval request %s expired at %s: the agent must call again to ask anew", id, cur.Expires.UTC().Format(time.RFC3339))
	}
	ap, err := a.st.DecideApproval(ctx, id, status, by, reason)
	if errors.Is(err, store.ErrConflict) {
		return store.Approval{}, fmt.Errorf("approval request %s is already %s", id, cur.Status)
	}
	if err != nil {
		return store.Approval{}, err
	}
	a.logger.Info("approval decided", "approval", id, "status", status, "by", by, "tool", ap.Connector+"."+ap.Tool)
	return ap, nil
}
