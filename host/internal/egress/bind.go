package egress

import (
	"context"
	"fmt"
	"slices"
	"strings"
)

// Binding narrows the requests made under a context to the network rules and credential slots
// of the tool being run (the manifest's tools[].uses; DESIGN.md invariant 9). The client's rules
// and slots are what the connector as a whole may use; a binding says which of them this call
// may. Without a binding, every rule and slot of the client may be used.
type Binding struct {
	// Tool is the tool's full name (connector.tool), for messages.
	Tool string
	// Hosts are the hosts of the rules the tool may use, as [Rule].Host writes them.
	Hosts []string
	// Slots are the credential slots the tool may name.
	Slots []string
}

// Call is what one tool call brings to the requests made under its context: the binding and an
// observer. A host puts both in one context value (WithCall), kept with the call's other state,
// so a call costs one context allocation.
type Call struct {
	// Binding limits the call's requests; nil: no binding.
	Binding *Binding
	// Observer is also reported each Record; nil: none.
	Observer Observer
}

// Observer is told of each outbound request made under a context (see Call).
type Observer interface{ Observe(Record) }

type callKey struct{}

// WithCall returns a context under which Do refuses, with egress_denied, a request (or a
// redirect hop) to a host none of c.Binding's rules covers and a request naming a slot it does
// not list, and reports each Record to c.Observer as well as to Config.Observe. c must not
// change while requests run under the context.
func WithCall(ctx context.Context, c *Call) context.Context {
	return new(CallContext).Bind(ctx, c)
}

// CallContext is the context WithCall returns, as a type a caller can keep inside a struct of
// its own that outlives the call, so that binding a call allocates nothing (the host keeps one
// in each call's state).
type CallContext struct {
	context.Context
	call *Call
}

// Bind makes cc a child of ctx carrying c, as WithCall(ctx, c), and returns it.
func (cc *CallContext) Bind(ctx context.Context, c *Call) context.Context {
	cc.Context, cc.call = ctx, c
	return cc
}

func (cc *CallContext) Value(key any) any {
	if key == (callKey{}) {
		return cc.call
	}
	return cc.Context.Value(key)
}

func callFrom(ctx context.Context) *Call {
	c, _ := ctx.Value(callKey{}).(*Call)
	return c
}

func bindingFrom(ctx context.Context) *Binding {
	if c := callFrom(ctx); c != nil {
		return c.Binding
	}
	return nil
}

// refuseTarget returns why t is outside the binding, or "" when a rule b names covers t's host
// (or there is no binding). Whether that rule allows the whole request is checked apart.
func (b *Binding) refuseTarget(rules []rule, t *target) string {
	if b == nil || slices.ContainsFunc(rules, func(r rule) bool { return r.host.match(t) && slices.Contains(b.Hosts, r.name) }) {
		return ""
	}
	return fmt.Sprintf("tool %s may not reach %s: its manifest binds it to %s (tools[].uses.network). "+
		"The connector tried to use a destination its tool does not declare; do not retry, report it to the connector's publisher",
		b.Tool, t.host, orNone(b.Hosts))
}

// refuseSlot returns why naming slot is outside the binding, or "".
func (b *Binding) refuseSlot(slot string) string {
	if b == nil || slices.Contains(b.Slots, slot) {
		return ""
	}
	return fmt.Sprintf("tool %s may not use credential %s: its manifest binds it to %s (tools[].uses.credentials). "+
		"The connector tried to use a credential its tool does not declare; do not retry, report it to the connector's publisher",
		b.Tool, slot, orNone(b.Slots))
}

func orNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ", ")
}
