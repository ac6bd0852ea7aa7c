package audit

// Queued returns how many events wait in the sink's queue to be appended (for the
// airlock_audit_queue_depth gauge).
func (s *StoreSink) Queued() int { return len(s.ch) }
