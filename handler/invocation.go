package handler

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// inputError is an invocation the handler cannot use: too large, or not a well-formed envelope.
type inputError struct {
	tooLarge bool
	msg      string
}

// readData reads the invocation envelope {"Data":{...},"Metadata":{...}} and returns Data[binding],
// or the single Data entry when the binding is named differently. Metadata is not read. The body is
// never logged or echoed.
func (h *handler) readData(r *http.Request, binding string) (json.RawMessage, *inputError) {
	tooLarge := &inputError{tooLarge: true, msg: fmt.Sprintf("the invocation body is over the %d-byte limit", h.maxBody)}
	if r.ContentLength > h.maxBody {
		return nil, tooLarge
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, h.maxBody+1))
	if err != nil {
		return nil, &inputError{msg: "reading the invocation body failed"}
	}
	if int64(len(body)) > h.maxBody {
		return nil, tooLarge
	}
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return nil, &inputError{msg: "the invocation body is not a JSON object"}
	}
	var env struct {
		Data map[string]json.RawMessage `json:"Data"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, &inputError{msg: "the invocation body is not a valid envelope ({\"Data\":{...},\"Metadata\":{...}})"}
	}
	if v, ok := env.Data[binding]; ok {
		return v, nil
	}
	if len(env.Data) == 1 {
		for _, v := range env.Data {
			return v, nil
		}
	}
	return nil, &inputError{msg: fmt.Sprintf("the invocation has no Data.%s (%d Data entries)", binding, len(env.Data))}
}
