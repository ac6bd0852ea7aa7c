package host

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/airlock-dev/airlock/host/internal/idempotency"
	"github.com/airlock-dev/airlock/host/store"
	"github.com/airlock-dev/airlock/internal/abi"
)

// CodeApprovalPending is the error code of a call that waits for an admin's approval.
const CodeApprovalPending = "approval_pending"

// DefaultApprovalTTL is how long an approval request stays open, and how long an approved one
// may be used, when Config.ApprovalTTL is zero.
const DefaultApprovalTTL = time.Hour

// approve runs the human-approval gate (DESIGN.md step 3) for a call that needs one and did not
// arrive confirmed. With no state store, it says how to confirm. With one, the first call
// records a pending approval for these exact arguments and is refused with its ID; once an admin
// approves it, the same call (same connector, tool, subject and arguments) runs exactly once.
// It returns nil when the call may run.
func (h *Host) approve(ctx context.Context, c *connector, tool string, req CallRequest, args *callArgs) *ResultError {
	if h.store == nil {
		return &ResultError{Code: abi.CodeNeedsConfirm, Category: abi.Correctable,
			Message: fmt.Sprintf("%s changes things that are hard to undo, so it runs only after a human confirms this exact call. "+
				"Ask the user to confirm it (clients that support MCP elicitation are asked automatically), then call it again", req.Tool)}
	}
	now := h.now()
	hash := args.digest()
	conn := c.manifest.Name
	fail := func(err error) *ResultError {
		h.logger.Error("approval store", "tool", req.Tool, "err", err)
		return &ResultError{Code: abi.CodeUnavailable, Category: abi.Retryable,
			Message: "the approval of this call could not be checked because the state store is unavailable; try again later"}
	}
	list, err := h.store.FindApprovals(ctx, conn, tool, req.Subject, hash)
	if err != nil {
		return fail(err)
	}
	var pending *store.Approval
	for i := range list {
		a := &list[i]
		switch {
		case a.Status == store.ApprovalApproved && now.Before(a.Expires):
			err := h.store.ConsumeApproval(ctx, a.ID, conn, tool, req.Subject, hash, now)
			if err == nil {
				h.logger.Info("approved call runs", "approval", a.ID, "tool", req.Tool, "approved_by", a.DecidedBy)
				return nil
			}
			if !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrNotFound) {
				return fail(err)
			}
		case a.Status == store.ApprovalPending && now.Before(a.Expires):
			pending = a
		case a.Status == store.ApprovalDenied && now.Sub(a.Decided) < h.approvalTTL:
			why := ""
			if a.Reason != "" {
				why = " (" + a.Reason + ")"
			}
			return &ResultError{Code: abi.CodeNotGranted, Category: abi.Fatal,
				Message: fmt.Sprintf("an admin denied this exact call of %s%s (approval %s); do not retry it with the same arguments", req.Tool, why, a.ID)}
		}
	}
	if pending == nil {
		a := store.Approval{ID: "ap_" + newRequestID(), Connector: conn, Tool: tool, Agent: req.Agent, Subject: req.Subject,
			ArgsSHA256: hash, Args: args.raw, Status: store.ApprovalPending, Created: now, Expires: now.Add(h.approvalTTL)}
		if err := h.store.CreateApproval(ctx, a); err != nil {
			return fail(err)
		}
		pending = &a
		h.logger.Info("call waits for approval", "approval", a.ID, "tool", req.Tool, "agent", req.Agent, "subject", req.Subject)
		h.noticeApproval(a, args.raw, req.Tool+" needs a human's approval before it runs")
	}
	return &ResultError{Code: CodeApprovalPending, Category: abi.Correctable,
		Message: fmt.Sprintf("%s needs a human's approval before it runs; approval %s is pending (expires %s). "+
			"Ask an admin to run `airlock approve %s`, then call %s again with exactly the same arguments; a changed argument needs a new approval",
			req.Tool, pending.ID, pending.Expires.UTC().Format(time.RFC3339), pending.ID, req.Tool)}
}

// argsDigest is the SHA-256 of the canonical form of JSON arguments (keys sorted, no
// insignificant space), so an approval binds the arguments' meaning, not their spelling.
func argsDigest(args []byte) string {
	a := callArgs{raw: args}
	return a.digest()
}

// callArgs is a call's arguments and, made on first use, their canonical form, to which
// approvals, held results and idempotency bind: a call that goes through several of them
// canonicalises its arguments once.
type callArgs struct {
	raw   []byte
	canon []byte
	err   error
	made  bool
}

func (a *callArgs) canonical() ([]byte, error) {
	if !a.made {
		a.canon, a.err = idempotency.Canonical(a.raw)
		a.made = true
	}
	return a.canon, a.err
}

// digest is argsDigest of the arguments.
func (a *callArgs) digest() string {
	c, err := a.canonical()
	if err != nil { // validated JSON cannot get here; bind the exact bytes anyway
		sum := sha256.Sum256(a.raw)
		return hex.EncodeToString(sum[:])
	}
	return idempotency.HashCanonical(c)
}

// noticeApproval tells Config.OnNotice that approval a was created here (so one replica, the
// one that created it, notifies), with the call's arguments (nil for a held result).
func (h *Host) noticeApproval(a store.Approval, args []byte, detail string) {
	h.notice(Notice{Event: NoticeApprovalPending, ID: a.ID, Connector: a.Connector, Tool: a.Tool, Agent: a.Agent,
		Subject: a.Subject, Arguments: args, Detail: detail, Created: a.Created, Expires: a.Expires})
}
