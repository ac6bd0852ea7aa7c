package pdk

import (
	"encoding/json"

	"github.com/airlock-dev/airlock/internal/abi"
)

// Moving bytes between guest memory and Extism memory, with the bulk-copy host functions
// (internal/abi, airlock_mem_read / airlock_mem_write / airlock_input_read): one host call per
// payload instead of one per 8 bytes.

// writeBlock copies b into a new block of Extism memory and returns its offset.
func writeBlock(b []byte) uint64 {
	off := memWrite(b)
	if off == 0 && len(b) > 0 {
		panic("pdk: the host could not allocate a block of Extism memory")
	}
	return off
}

// readBlock copies the block at off into guest memory and frees it.
func readBlock(off uint64) []byte {
	n := length(off)
	b := make([]byte, n)
	if got := memRead(off, b); got != int64(n) {
		panic("pdk: the host returned a block that cannot be read")
	}
	free(off)
	return b
}

// callJSON sends v as a JSON block to a host function and decodes the block it answers into out.
// It reports false when the host answered "none" (0).
func callJSON(fn func(uint64) uint64, v, out any) (bool, error) {
	req, err := json.Marshal(v)
	if err != nil {
		return false, err
	}
	off := writeBlock(req)
	res := fn(off)
	free(off)
	if res == 0 {
		return false, nil
	}
	return true, json.Unmarshal(readBlock(res), out)
}

// callHTTP is callJSON for airlock_http with the envelope codecs of internal/abi instead of
// reflection: the same JSON, in about a third of the guest time. It asks for the response body
// raw, after the envelope (ABI.md); a host that predates that answers in base64, read the same.
func callHTTP(req *HTTPRequest, resp *HTTPResponse) (bool, error) {
	r := *req
	r.RawBody = true
	off := writeBlock(abi.AppendHTTPRequest(make([]byte, 0, 256+len(req.URL)+len(req.Body)*4/3), &r))
	res := hostHTTP(off)
	free(off)
	if res == 0 {
		return false, nil
	}
	return true, abi.DecodeHTTPResponse(readBlock(res), resp)
}
