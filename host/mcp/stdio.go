package mcp

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"sync"
	"time"

	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// StdioDrainTimeout bounds how long ServeStdio waits, once its input has ended, for the replies
// to requests already read.
const StdioDrainTimeout = 2 * time.Minute

// ServeStdio serves one client over newline-delimited JSON-RPC on in and out (stdin and stdout
// for a desktop agent) until in ends or ctx is done. When in ends, the replies to every request
// already read are written before it returns (up to StdioDrainTimeout): a client may write its
// requests and close its end of the pipe at once, as `echo … | airlock serve` does.
func (s *Server) ServeStdio(ctx context.Context, in io.Reader, out io.Writer) error {
	d := &drain{pending: map[string]bool{}, idle: make(chan struct{}, 1)}
	pr, pw := io.Pipe()
	go d.copyIn(ctx, in, pw)
	err := s.sdk.Run(ctx, &sdk.IOTransport{Reader: pr, Writer: &replyWriter{w: out, d: d}})
	pr.Close()
	if errors.Is(err, io.EOF) || errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// drain counts the requests read from the client and not yet answered.
type drain struct {
	mu      sync.Mutex
	pending map[string]bool
	idle    chan struct{} // signalled when pending becomes empty
}

func idKey(id json.RawMessage) string {
	var v any
	if json.Unmarshal(id, &v) != nil {
		return string(id)
	}
	b, _ := json.Marshal(v) // one spelling for 1, 1.0 and 1e0
	return string(b)
}

// wireMsg is the part of a JSON-RPC message drain looks at.
type wireMsg struct {
	ID     json.RawMessage `json:"id"`
	Method string          `json:"method"`
	Params struct {
		RequestID json.RawMessage `json:"requestId"`
	} `json:"params"`
}

// update notes the messages of raw (one message or a batch), read from the client or written
// to it.
func (d *drain) update(raw []byte, read bool) {
	var msgs []wireMsg
	if json.Unmarshal(raw, &msgs) != nil {
		var one wireMsg
		if json.Unmarshal(raw, &one) != nil {
			return
		}
		msgs = []wireMsg{one}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, m := range msgs {
		switch {
		case read && m.Method != "" && len(m.ID) > 0 && string(m.ID) != "null":
			d.pending[idKey(m.ID)] = true // a request: a reply is owed
		case read && m.Method == "notifications/cancelled" && len(m.Params.RequestID) > 0:
			delete(d.pending, idKey(m.Params.RequestID)) // no reply is owed to a cancelled request
		case !read && m.Method == "" && len(m.ID) > 0:
			delete(d.pending, idKey(m.ID)) // a reply
		}
	}
	if len(d.pending) == 0 {
		select {
		case d.idle <- struct{}{}:
		default:
		}
	}
}

// copyIn passes the client's messages on to the SDK, noting each request. At the end of the
// input it waits until every noted request has its reply, then ends the SDK's input.
func (d *drain) copyIn(ctx context.Context, in io.Reader, pw *io.PipeWriter) {
	dec := json.NewDecoder(in)
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if !errors.Is(err, io.EOF) {
				// Not JSON: hand the rest over unchanged, for the SDK to report.
				io.Copy(pw, io.MultiReader(dec.Buffered(), in))
				pw.Close()
				return
			}
			break
		}
		d.update(raw, true)
		if _, err := pw.Write(append(raw, '\n')); err != nil {
			return // the SDK stopped reading
		}
	}
	timeout := time.NewTimer(StdioDrainTimeout)
	defer timeout.Stop()
	for d.owed() {
		select {
		case <-d.idle:
			continue
		case <-ctx.Done():
		case <-timeout.C:
		}
		break
	}
	pw.Close()
}

func (d *drain) owed() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.pending) > 0
}

// replyWriter writes the SDK's messages to the client and notes each reply. The SDK writes one
// message (or batch) per Write, newline-terminated.
type replyWriter struct {
	w io.Writer
	d *drain
}

func (r *replyWriter) Write(p []byte) (int, error) {
	n, err := r.w.Write(p)
	r.d.update(p, false)
	return n, err
}

func (r *replyWriter) Close() error { return nil }
