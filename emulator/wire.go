package emulator

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/kvrotator/kvrotator/internal/kvnames"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Operation names: the azsecrets client methods, also used by fault rules and logs.
const (
	opSet          = "SetSecret"
	opGet          = "GetSecret"
	opUpdate       = "UpdateSecretProperties"
	opList         = "ListSecretProperties"
	opListVersions = "ListSecretPropertiesVersions"
	opDelete       = "DeleteSecret"
	opGetDeleted   = "GetDeletedSecret"
	opListDeleted  = "ListDeletedSecretProperties"
	opPurge        = "PurgeDeletedSecret"
	opRecover      = "RecoverDeletedSecret"
	opBackup       = "BackupSecret"
	opRestore      = "RestoreSecret"
)

// Key Vault limits (about-secrets.md).
const (
	maxValueBytes      = 25 * 1024
	maxContentTypeLen  = 255
	maxTags            = 15
	maxTagNameLen      = 512
	maxTagValueLen     = 512
	maxBackupVersions  = 500
	maxPageSize        = 25
	maxBodyBytes       = 1 << 20  // set and update requests
	maxRestoreBodySize = 24 << 20 // a backup of 500 versions of 25 KB, base64url-encoded
)

// kvError is an error answered with Key Vault's error envelope.
type kvError struct {
	Status     int
	Code       string
	Message    string
	Inner      string
	RetryAfter int // seconds; 0: no header
}

func (e *kvError) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

func badParameter(format string, args ...any) *kvError {
	return &kvError{Status: http.StatusBadRequest, Code: "BadParameter", Message: fmt.Sprintf(format, args...)}
}

func secretNotFound(name string) *kvError {
	return &kvError{Status: http.StatusNotFound, Code: "SecretNotFound", Message: fmt.Sprintf(
		"A secret with (name/id) %s was not found in this key vault. If you recently deleted this secret you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182", name)}
}

func deletedNotFound(name string) *kvError {
	return &kvError{Status: http.StatusNotFound, Code: "SecretNotFound", Message: "Deleted Secret not found: " + name}
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code       string       `json:"code"`
	Message    string       `json:"message"`
	InnerError *errorDetail `json:"innererror,omitempty"`
}

func writeError(w http.ResponseWriter, e *kvError) {
	body := errorBody{Error: errorDetail{Code: e.Code, Message: e.Message}}
	if e.Inner != "" {
		body.Error.InnerError = &errorDetail{Code: e.Inner}
	}
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	writeJSON(w, e.Status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":{"code":"InternalServerError","message":"response encoding failed"}}`)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// Response shapes (SecretBundle, DeletedSecretBundle, SecretItem, DeletedSecretItem).

type attributesOut struct {
	Enabled         bool   `json:"enabled"`
	NotBefore       *int64 `json:"nbf,omitempty"`
	Expires         *int64 `json:"exp,omitempty"`
	Created         int64  `json:"created"`
	Updated         int64  `json:"updated"`
	RecoveryLevel   string `json:"recoveryLevel"`
	RecoverableDays int    `json:"recoverableDays,omitempty"`
}

type bundleOut struct {
	Value              *string           `json:"value,omitempty"`
	ID                 string            `json:"id"`
	ContentType        string            `json:"contentType,omitempty"`
	Attributes         attributesOut     `json:"attributes"`
	Tags               map[string]string `json:"tags,omitempty"`
	RecoveryID         string            `json:"recoveryId,omitempty"`
	DeletedDate        *int64            `json:"deletedDate,omitempty"`
	ScheduledPurgeDate *int64            `json:"scheduledPurgeDate,omitempty"`
}

type pageOut struct {
	Value    []bundleOut `json:"value"`
	NextLink *string     `json:"nextLink"`
}

type backupOut struct {
	Value string `json:"value"`
}

// Request shapes.

type setRequest struct {
	Value       *string           `json:"value"`
	ContentType *string           `json:"contentType"`
	Attributes  *attributesIn     `json:"attributes"`
	Tags        map[string]string `json:"tags"`
}

type updateRequest struct {
	ContentType *string           `json:"contentType"`
	Attributes  *attributesIn     `json:"attributes"`
	Tags        map[string]string `json:"tags"`
}

type restoreRequest struct {
	Value *string `json:"value"`
}

// attributesIn holds the writable attributes; created, updated, recoveryLevel and recoverableDays are
// read-only and ignored when a client sends them back.
type attributesIn struct {
	Enabled   *bool       `json:"enabled"`
	NotBefore optionalInt `json:"nbf"`
	Expires   optionalInt `json:"exp"`
}

// optionalInt tells an absent field from an explicit null (which clears nbf/exp) and from a value.
type optionalInt struct {
	Set   bool
	Null  bool
	Value int64
}

func (o *optionalInt) UnmarshalJSON(b []byte) error {
	o.Set = true
	if string(b) == "null" {
		o.Null = true
		return nil
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || len(b) == 0 || b[0] == '"' {
		return errNotInteger
	}
	if f != math.Trunc(f) || math.Abs(f) > 1<<53 {
		return errNotInteger
	}
	o.Value = int64(f)
	return nil
}

var errNotInteger = errors.New("must be an integer number of seconds since 1970-01-01 UTC")

// ptr returns the value as a pointer, nil for null; only meaningful when Set.
func (o optionalInt) ptr() *int64 {
	if o.Null {
		return nil
	}
	v := o.Value
	return &v
}

// readJSON reads a bounded request body and decodes it into dst, turning every failure into the
// BadParameter answer Key Vault gives. Messages never echo the body (it may hold a secret value).
func readJSON(r *http.Request, limit int64, dst any) *kvError {
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return badParameter("The request body could not be read.")
	}
	if int64(len(body)) > limit {
		return badParameter("The request body is larger than the maximum of %d bytes.", limit)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return badParameter("The request body is required.")
	}
	if err := json.Unmarshal(body, dst); err != nil {
		var syn *json.SyntaxError
		var typ *json.UnmarshalTypeError
		switch {
		case errors.As(err, &syn):
			return badParameter("The request body is not valid JSON (error at byte %d).", syn.Offset)
		case errors.As(err, &typ):
			field := typ.Field
			if field == "" {
				return badParameter("The request body must be a JSON object.")
			}
			// typ.Value may carry a literal ("number 42"): keep only its kind.
			got, _, _ := strings.Cut(typ.Value, " ")
			return badParameter("Invalid value for '%s': expected %s, got JSON %s.", field, jsonTypeName(typ.Type.Kind().String()), got)
		case errors.Is(err, errNotInteger):
			return badParameter("Invalid attribute value: nbf and exp %s.", errNotInteger)
		default:
			return badParameter("The request body is not valid JSON.")
		}
	}
	return nil
}

func jsonTypeName(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "map", "struct":
		return "an object"
	case "ptr":
		return "a value"
	}
	return "a " + kind
}

// validateName checks a secret name against Key Vault's rules.
func validateName(name string) *kvError {
	if !kvnames.Secret(name) {
		return badParameter("The request URI contains an invalid name: %s", name)
	}
	return nil
}

// validateProps checks content type and tags against Key Vault's limits.
func validateProps(contentType *string, tags map[string]string) *kvError {
	if contentType != nil && utf8.RuneCountInString(*contentType) > maxContentTypeLen {
		return badParameter("Content type is too long: the maximum is %d characters.", maxContentTypeLen)
	}
	if len(tags) > maxTags {
		return badParameter("The number of tags (%d) exceeds the maximum of %d.", len(tags), maxTags)
	}
	for k, v := range tags {
		if k == "" {
			return badParameter("Tag names must not be empty.")
		}
		if utf8.RuneCountInString(k) > maxTagNameLen {
			return badParameter("Tag name is too long: the maximum is %d characters.", maxTagNameLen)
		}
		if utf8.RuneCountInString(v) > maxTagValueLen {
			return badParameter("Value of tag '%s' is too long: the maximum is %d characters.", k, maxTagValueLen)
		}
	}
	return nil
}
