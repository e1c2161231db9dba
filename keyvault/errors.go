package keyvault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/kvrotator/kvrotator/rotation"
	"github.com/kvrotator/kvrotator/vocab"
)

// Error is a failed vault operation. Its message names the operation, vault, secret (and version),
// the HTTP status and Key Vault's error code; it never includes a response body or a secret value.
// The SDK's error is kept for errors.As / errors.Unwrap.
type Error struct {
	// Op is the operation: "get secret", "list secrets", "set secret", "update tags of secret".
	Op string
	// Vault is the vault name.
	Vault string
	// Secret is the secret name ("" for list).
	Secret string
	// Version is the version asked for ("" for the latest, list and set).
	Version string
	// StatusCode is the HTTP status of Key Vault's answer, 0 when there was none (transport,
	// credential or validation failure).
	StatusCode int
	// Code is Key Vault's most specific error code (the innermost of error.code / innererror.code),
	// e.g. "SecretNotFound", "ForbiddenByRbac", "Throttled".
	Code string
	// Err is the underlying error (an *azcore.ResponseError for HTTP failures), or nil.
	Err error

	detail string // the safe description after the colon
}

// Error implements error: keyvault: get secret "db-password" in vault "myvault": 403 Forbidden (ForbiddenByRbac).
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("keyvault: ")
	b.WriteString(e.Op)
	if e.Secret != "" {
		fmt.Fprintf(&b, " %q", e.Secret)
	}
	if e.Version != "" {
		fmt.Fprintf(&b, " version %q", e.Version)
	}
	fmt.Fprintf(&b, " in vault %q: %s", e.Vault, e.detail)
	return b.String()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Is makes a 404 match rotation.ErrNotFound, and a 403 SecretDisabled rotation.ErrDisabled.
func (e *Error) Is(target error) bool {
	switch target {
	case rotation.ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	case rotation.ErrDisabled:
		return e.StatusCode == http.StatusForbidden && e.Code == "SecretDisabled"
	}
	return false
}

// wrap turns an SDK error into an *Error and classifies it: permanent errors are wrapped with
// vocab.Permanent, transient ones are returned as the bare *Error.
func (v *Vault) wrap(op, secret, version string, err error) error {
	e := &Error{Op: op, Vault: v.name, Secret: secret, Version: version, Err: err}
	permanent := classify(e, err)
	if permanent {
		return vocab.Permanent(e)
	}
	return e
}

// nonRetriable is azcore's marker for errors its retry policy must not retry (configuration errors
// such as a challenge resource that does not match the vault, or an unavailable credential).
type nonRetriable interface {
	error
	NonRetriable()
}

// classify fills in e's status, code and safe detail from err, and reports whether it is permanent.
func classify(e *Error, err error) (permanent bool) {
	var re *azcore.ResponseError
	var afe *azidentity.AuthenticationFailedError
	var ue *url.Error
	var ne net.Error
	var nr nonRetriable
	switch {
	case errors.As(err, &re):
		e.StatusCode = re.StatusCode
		e.Code = safeCode(innermostCode(re))
		e.detail = statusText(re.StatusCode, e.Code)
		return !transientStatus(re.StatusCode)
	case errors.Is(err, context.Canceled):
		e.detail = "canceled"
		return false
	case errors.Is(err, context.DeadlineExceeded):
		e.detail = "deadline exceeded"
		return false
	case errors.As(err, &afe):
		e.detail = "authentication failed"
		if cred := credentialType(afe.Error()); cred != "" {
			e.detail += " (" + cred + ")"
		}
		if afe.RawResponse == nil {
			return false
		}
		code := safeCode(oauthErrorCode(afe.RawResponse))
		e.detail += ": " + statusText(afe.RawResponse.StatusCode, code)
		return !transientStatus(afe.RawResponse.StatusCode)
	case errors.As(err, &ue), errors.As(err, &ne):
		e.detail = "transport error: " + firstLine(err.Error())
		return false
	case errors.As(err, &nr):
		// Produced by azcore/azidentity themselves (no response body): challenge resource mismatch,
		// https required, no credential available here.
		e.detail = firstLine(err.Error())
		return true
	default:
		// Anything else (e.g. a response that could not be decoded) is described by type only: its
		// text might quote response content.
		e.detail = "request failed: unexpected response"
		return false
	}
}

// transientStatus is vocab's one rule: 408, 429 and 5xx are worth retrying.
func transientStatus(status int) bool { return vocab.TransientStatus(status) }

// statusText formats "403 Forbidden (ForbiddenByRbac)".
func statusText(status int, code string) string {
	s := fmt.Sprintf("%d %s", status, http.StatusText(status))
	s = strings.TrimSpace(s)
	if code != "" {
		s += " (" + code + ")"
	}
	return s
}

// innermostCode is the most specific of Key Vault's error.code / error.innererror.code…, falling
// back to azcore's ErrorCode.
func innermostCode(re *azcore.ResponseError) string {
	code := re.ErrorCode
	if re.RawResponse == nil {
		return code
	}
	body, err := runtime.Payload(re.RawResponse)
	if err != nil || len(body) == 0 {
		return code
	}
	type inner struct {
		Code       string          `json:"code"`
		InnerError json.RawMessage `json:"innererror"`
	}
	var env struct {
		Error *inner `json:"error"`
	}
	if json.Unmarshal(body, &env) != nil || env.Error == nil {
		return code
	}
	cur := env.Error
	for depth := 0; cur != nil && depth < 8; depth++ {
		if cur.Code != "" {
			code = cur.Code
		}
		if len(cur.InnerError) == 0 {
			break
		}
		var next inner
		if json.Unmarshal(cur.InnerError, &next) != nil {
			break
		}
		cur = &next
	}
	return code
}

// oauthErrorCode reads the OAuth "error" field of an identity endpoint's error response.
func oauthErrorCode(resp *http.Response) string {
	body, err := runtime.Payload(resp)
	if err != nil {
		return ""
	}
	var e struct {
		Error any `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil {
		return ""
	}
	switch x := e.Error.(type) {
	case string:
		return x
	case map[string]any:
		if c, ok := x["code"].(string); ok {
			return c
		}
	}
	return ""
}

// safeCode keeps an error code only if it looks like one (letters, digits, '_', '.', '-'; at most 64).
func safeCode(code string) string {
	if code == "" || len(code) > 64 {
		return ""
	}
	for _, r := range code {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.' || r == '-') {
			return ""
		}
	}
	return code
}

// credentialType extracts "ManagedIdentityCredential" from azidentity's message prefix.
func credentialType(msg string) string {
	head, _, ok := strings.Cut(msg, " ")
	if !ok {
		return ""
	}
	head = strings.TrimSuffix(head, ":")
	if strings.HasSuffix(head, "Credential") && safeCode(head) != "" {
		return head
	}
	return ""
}

// firstLine is s's first line, at most 300 bytes.
func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	s = strings.TrimSpace(s)
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}
