package credential

// Forget drops what the provider holds in memory for subject's connection (its token,
// metadata and status), so the next Credential reads the state store again: after the
// connection was deleted there, the subject's calls fail until it is connected anew.
func (p *Provider) Forget(subject string) {
	c := p.conn(subject)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.loaded, c.tok, c.meta, c.hosts, c.status, c.detail, c.stale = false, nil, nil, nil, "", "", false
	c.failErr = nil
}
