package abi

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strconv"

	"github.com/airlock-dev/airlock/pdk/pdkjson"
)

// Hand-written codecs for the airlock_http envelopes ([HTTPRequest], [HTTPResponse]), used by the
// PDK (encode the request, decode the response) and the host (the other two).
//
// They write and read the same JSON as encoding/json, without reflection: inside a standard-Go
// WebAssembly module reflection-driven encoding/json runs ~10× slower than natively and was the
// largest part of a small tool call's own work. The wire format does not change. Strings,
// numbers and the nesting are read by pdk/pdkjson (the PDK's reader, exact to encoding/json);
// the decoders here are fast paths around it: an object they are not certain to read exactly as
// encoding/json would (a key that differs from a field's only in case, a duplicate key) or any
// error makes them report false, and the caller falls back to json.Unmarshal, for its result and
// its error (DecodeHTTPRequest and DecodeHTTPResponse do so themselves).

// AppendHTTPRequest appends req as JSON, the same object encoding/json writes (fields in
// declaration order, omitempty honoured, header names sorted, body in standard base64).
func AppendHTTPRequest(b []byte, req *HTTPRequest) []byte {
	b = append(b, `{"method":`...)
	b = pdkjson.AppendString(b, req.Method)
	b = append(b, `,"url":`...)
	b = pdkjson.AppendString(b, req.URL)
	if len(req.Headers) > 0 {
		b = append(b, `,"headers":`...)
		b = appendHeaders(b, req.Headers)
	}
	if len(req.Body) > 0 {
		b = append(b, `,"body":"`...)
		b = base64.StdEncoding.AppendEncode(b, req.Body)
		b = append(b, '"')
	}
	if req.Credential != "" {
		b = append(b, `,"credential":`...)
		b = pdkjson.AppendString(b, req.Credential)
	}
	if req.IdempotencyKey != "" {
		b = append(b, `,"idempotency_key":`...)
		b = pdkjson.AppendString(b, req.IdempotencyKey)
	}
	if req.TimeoutMS != 0 {
		b = append(b, `,"timeout_ms":`...)
		b = strconv.AppendInt(b, req.TimeoutMS, 10)
	}
	if req.RawBody {
		b = append(b, `,"raw_body":true`...)
	}
	if len(req.ResponseHeaders) > 0 {
		b = append(b, `,"response_headers":`...)
		b = appendStrings(b, req.ResponseHeaders)
	}
	return append(b, '}')
}

// appendHeaders appends a header map as encoding/json does (names sorted).
func appendHeaders(b []byte, h map[string][]string) []byte {
	if len(h) == 1 { // no order to find
		for k, v := range h {
			b = append(b, '{')
			b = pdkjson.AppendString(b, k)
			b = append(b, ':')
			b = appendStrings(b, v)
			return append(b, '}')
		}
	}
	b = append(b, '{')
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = pdkjson.AppendString(b, k)
		b = append(b, ':')
		b = appendStrings(b, h[k])
	}
	return append(b, '}')
}

// appendStrings appends a []string as encoding/json does (null for nil).
func appendStrings(b []byte, vs []string) []byte {
	if vs == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for j, v := range vs {
		if j > 0 {
			b = append(b, ',')
		}
		b = pdkjson.AppendString(b, v)
	}
	return append(b, ']')
}

// AppendHTTPResponse appends resp as JSON, the same object encoding/json writes.
func AppendHTTPResponse(b []byte, resp *HTTPResponse) []byte {
	return appendHTTPResponse(b, resp, false)
}

// AppendHTTPResponseRaw appends resp for a request that asked for a raw body
// ([HTTPRequest.RawBody]): the JSON object AppendHTTPResponse writes, but with the body's length
// as "raw_body_length" in place of "body", followed by the body's bytes as they are. Without a
// body it is exactly AppendHTTPResponse's object.
func AppendHTTPResponseRaw(b []byte, resp *HTTPResponse) []byte {
	b = appendHTTPResponse(b, resp, true)
	return append(b, resp.Body...)
}

func appendHTTPResponse(b []byte, resp *HTTPResponse, raw bool) []byte {
	b = append(b, '{')
	n := len(b)
	sep := func() {
		if len(b) > n {
			b = append(b, ',')
		}
	}
	if resp.Status != 0 {
		b = append(b, `"status":`...)
		b = strconv.AppendInt(b, int64(resp.Status), 10)
	}
	if len(resp.Headers) > 0 {
		sep()
		b = append(b, `"headers":`...)
		b = appendHeaders(b, resp.Headers)
	}
	if len(resp.Body) > 0 && !raw {
		sep()
		b = append(b, `"body":"`...)
		b = base64.StdEncoding.AppendEncode(b, resp.Body)
		b = append(b, '"')
	}
	if e := resp.Error; e != nil {
		sep()
		b = append(b, `"error":{"code":`...)
		b = pdkjson.AppendString(b, e.Code)
		b = append(b, `,"category":`...)
		b = pdkjson.AppendString(b, string(e.Category))
		b = append(b, `,"message":`...)
		b = pdkjson.AppendString(b, e.Message)
		if e.RetryAfterMS != 0 {
			b = append(b, `,"retry_after_ms":`...)
			b = strconv.AppendInt(b, e.RetryAfterMS, 10)
		}
		b = append(b, '}')
	}
	if len(resp.Body) > 0 && raw {
		sep()
		b = append(b, `"raw_body_length":`...)
		b = strconv.AppendInt(b, int64(len(resp.Body)), 10)
	}
	return append(b, '}')
}

// DecodeHTTPRequest reads an HTTPRequest envelope into *req, as json.Unmarshal into a zero
// HTTPRequest would (and with its error when the data is not a valid envelope).
func DecodeHTTPRequest(data []byte, req *HTTPRequest) error {
	if fastHTTPRequest(data, req) {
		return nil
	}
	*req = HTTPRequest{}
	return json.Unmarshal(data, req)
}

var requestKeys = [...]string{"method", "url", "headers", "body", "credential", "idempotency_key", "timeout_ms", "raw_body", "response_headers"}

func fastHTTPRequest(data []byte, req *HTTPRequest) bool {
	var d pdkjson.Decoder
	d.Reset(data)
	var r HTTPRequest
	ok := object(&d, requestKeys[:], func(i int) bool {
		switch i {
		case 0:
			r.Method = d.String()
		case 1:
			r.URL = d.String()
		case 2:
			var ok bool
			r.Headers, ok = headers(&d)
			return ok
		case 3:
			r.Body = d.Base64()
		case 4:
			r.Credential = d.String()
		case 5:
			r.IdempotencyKey = d.String()
		case 6:
			r.TimeoutMS = d.Int()
		case 7:
			r.RawBody = d.Bool()
		case 8:
			var ok bool
			r.ResponseHeaders, ok = stringArray(&d, nil)
			return ok
		}
		return true
	})
	if !ok || d.End() != nil {
		return false
	}
	*req = r
	return true
}

// object reads a JSON object whose fields are keys with d, calling field(i) to read the value of
// keys[i] (a null leaves the field as it is). Unknown keys are skipped. It reports false for
// anything but an object, and for a key that matches one of keys only ignoring case or a
// repeated key: encoding/json resolves those in ways the fast path does not copy. field reports
// false to give up.
func object(d *pdkjson.Decoder, keys []string, field func(i int) bool) bool {
	if d.Kind() != pdkjson.Object {
		return false
	}
	var seen uint64 // bit i: keys[i] was read
	ok := true
	d.Object(func(key string) {
		if !ok {
			return
		}
		i := slices.Index(keys, key)
		switch {
		case i < 0:
			ok = foldIndex(keys, key) < 0 // the value is skipped
		case seen&(1<<i) != 0:
			ok = false
		case d.Null():
			seen |= 1 << i
		default:
			seen |= 1 << i
			ok = field(i)
		}
	})
	return ok
}

// DecodeHTTPResponse reads an HTTPResponse envelope into *resp, as json.Unmarshal into a zero
// HTTPResponse would (and with its error when the data is not a valid envelope). It also reads
// what [AppendHTTPResponseRaw] writes; resp.Body then shares memory with data.
func DecodeHTTPResponse(data []byte, resp *HTTPResponse) error {
	if fastHTTPResponse(data, resp) {
		return nil
	}
	*resp = HTTPResponse{}
	var v struct {
		HTTPResponse
		RawBodyLength *int64 `json:"raw_body_length"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if dec.Decode(&v) != nil || v.RawBodyLength == nil {
		return json.Unmarshal(data, resp)
	}
	rest := data[dec.InputOffset():]
	if n := *v.RawBodyLength; n <= 0 || int64(len(rest)) != n || v.Body != nil {
		return errors.New("abi: the response's raw body does not have the length its envelope gives")
	}
	*resp = v.HTTPResponse
	resp.Body = rest[:len(rest):len(rest)]
	return nil
}

// fastHTTPResponse is the fast path of DecodeHTTPResponse; false means "use json.Unmarshal".
func fastHTTPResponse(data []byte, resp *HTTPResponse) bool {
	var d pdkjson.Decoder
	d.Reset(data)
	var r HTTPResponse
	rawLength := int64(-1)
	ok := object(&d, responseKeys[:], func(i int) bool {
		switch i {
		case 0:
			r.Status = int(d.Int())
		case 1:
			var ok bool
			r.Headers, ok = headers(&d)
			return ok
		case 2:
			r.Body = d.Base64()
		case 3:
			r.Error = new(Error)
			return errorObject(&d, r.Error)
		case 4:
			rawLength = d.Int()
		}
		return true
	})
	if !ok {
		return false
	}
	if rawLength >= 0 {
		// A raw body follows the object: exactly rawLength bytes (AppendHTTPResponseRaw).
		rest := data[d.InputOffset():]
		if d.Err() != nil || rawLength == 0 || int64(len(rest)) != rawLength || r.Body != nil {
			return false
		}
		r.Body = rest[:len(rest):len(rest)]
	} else if d.End() != nil {
		return false
	}
	*resp = r
	return true
}

var (
	responseKeys = [...]string{"status", "headers", "body", "error", "raw_body_length"}
	errorKeys    = [...]string{"code", "category", "message", "retry_after_ms"}
)

func foldIndex(keys []string, key string) int {
	for i, k := range keys {
		if equalFoldASCII(k, key) {
			return i
		}
	}
	return -1
}

// headers reads an object of string arrays (or nulls); a repeated name makes it give up.
func headers(d *pdkjson.Decoder) (map[string][]string, bool) {
	if d.Kind() != pdkjson.Object {
		return nil, false
	}
	h := make(map[string][]string)
	pool := make([]string, 0, 8) // the values of every header share one array
	ok := true
	d.Object(func(name string) {
		if _, dup := h[name]; dup || !ok {
			ok = false
			return
		}
		if d.Null() {
			h[name] = nil
			return
		}
		first := len(pool)
		pool, ok = stringArray(d, pool)
		h[name] = pool[first:len(pool):len(pool)]
	})
	return h, ok
}

// stringArray appends the strings of an array to pool; anything but an array of strings makes
// it give up.
func stringArray(d *pdkjson.Decoder, pool []string) ([]string, bool) {
	if d.Kind() != pdkjson.Array {
		return pool, false
	}
	if pool == nil {
		pool = []string{}
	}
	ok := true
	d.Array(func(int) {
		ok = ok && d.Kind() == pdkjson.String
		pool = append(pool, d.String())
	})
	return pool, ok
}

func errorObject(d *pdkjson.Decoder, e *Error) bool {
	return object(d, errorKeys[:], func(i int) bool {
		switch i {
		case 0:
			e.Code = d.String()
		case 1:
			e.Category = Category(d.String())
		case 2:
			e.Message = d.String()
		case 3:
			e.RetryAfterMS = d.Int()
		}
		return true
	})
}

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}
