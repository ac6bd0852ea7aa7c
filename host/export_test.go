package host

// DropConfirmation makes tool of connector run without a human's approval, as a policy that
// missed it would: for tests of the checks behind the approval gate.
func DropConfirmation(h *Host, connector, tool string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.connectors[connector].policy.Confirm, tool)
}
