package emulator

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/kvrotator/kvrotator/emulator/internal/delivery"
)

// call is one routed request to a vault's secrets API.
type call struct {
	r          *http.Request
	v          *vault
	op         string
	name       string // secret name from the path ("" for list and restore)
	version    string // version from the path ("" = latest)
	base       string // scheme://host as the client addressed the vault; ids are built from it
	apiVersion string
}

// result is what an operation answers, and the events it causes.
type result struct {
	status int
	body   any
	events []delivery.Event
}

func (c *call) secretID(name, version string) string {
	if version == "" {
		return c.base + "/secrets/" + name
	}
	return c.base + "/secrets/" + name + "/" + version
}

func (v *vault) recoveryLevel() string {
	if v.cfg.PurgeProtection {
		return "Recoverable"
	}
	return "Recoverable+Purgeable"
}

// bundle renders a version as a SecretBundle; withValue includes the value (GetSecret, SetSecret only).
func (c *call) bundle(name string, sv *secretVersion, withValue bool) bundleOut {
	b := bundleOut{
		ID:          c.secretID(name, sv.Version),
		ContentType: sv.ContentType,
		Tags:        cloneTags(sv.Tags),
		Attributes: attributesOut{
			Enabled:         sv.Enabled,
			NotBefore:       cloneInt(sv.NotBefore),
			Expires:         cloneInt(sv.Expires),
			Created:         sv.Created,
			Updated:         sv.Updated,
			RecoveryLevel:   c.v.recoveryLevel(),
			RecoverableDays: c.v.cfg.RecoverableDays,
		},
	}
	if withValue {
		val := sv.Value
		b.Value = &val
	}
	return b
}

// deletedBundle renders a soft-deleted secret (its latest version); item drops the version from the id.
func (c *call) deletedBundle(e *secretEntry, item bool) bundleOut {
	b := c.bundle(e.Name, e.latest(), false)
	if item {
		b.ID = c.secretID(e.Name, "")
	}
	b.RecoveryID = c.base + "/deletedsecrets/" + e.Name
	dd, sp := e.DeletedDate, e.ScheduledPurgeDate
	b.DeletedDate, b.ScheduledPurgeDate = &dd, &sp
	return b
}

func (s *Server) setSecret(c *call) (*result, *kvError) {
	var req setRequest
	if err := readJSON(c.r, maxBodyBytes, &req); err != nil {
		return nil, err
	}
	if req.Value == nil {
		return nil, badParameter("The request body must contain a value.")
	}
	if len(*req.Value) > maxValueBytes {
		return nil, badParameter("The secret value is too large: the maximum is %d bytes.", maxValueBytes)
	}
	if err := validateProps(req.ContentType, req.Tags); err != nil {
		return nil, err
	}
	now := s.clock.Now().Unix()
	sv := &secretVersion{Version: newVersionID(), Value: *req.Value, Enabled: true, Created: now, Updated: now, Tags: cloneTags(req.Tags)}
	if req.ContentType != nil {
		sv.ContentType = *req.ContentType
	}
	if a := req.Attributes; a != nil {
		if a.Enabled != nil {
			sv.Enabled = *a.Enabled
		}
		if a.NotBefore.Set {
			sv.NotBefore = a.NotBefore.ptr()
		}
		if a.Expires.Set {
			sv.Expires = a.Expires.ptr()
		}
	}

	c.v.mu.Lock()
	defer c.v.mu.Unlock()
	key := strings.ToLower(c.name)
	if _, deleted := c.v.state.Deleted[key]; deleted {
		return nil, &kvError{Status: http.StatusConflict, Code: "Conflict", Inner: "ObjectIsDeletedButRecoverable", Message: fmt.Sprintf(
			"Secret %s is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the secret can only be recovered or purged.", c.name)}
	}
	e := c.v.state.Secrets[key]
	if e == nil {
		e = &secretEntry{Name: c.name}
		c.v.state.Secrets[key] = e
	}
	e.Versions = append(e.Versions, sv)
	events := []delivery.Event{s.secretEvent(c.v, e.Name, sv, eventNewVersion, now)}
	events = append(events, s.expiryEvents(c.v, e, s.clock.Now())...)
	if err := s.persist(c.v); err != nil {
		return nil, err
	}
	return &result{status: http.StatusOK, body: c.bundle(e.Name, sv, true), events: events}, nil
}

func (s *Server) getSecret(c *call) (*result, *kvError) {
	c.v.mu.RLock()
	defer c.v.mu.RUnlock()
	e := c.v.state.Secrets[strings.ToLower(c.name)]
	if e == nil {
		return nil, secretNotFound(c.name)
	}
	sv := e.version(c.version)
	if sv == nil {
		return nil, secretNotFound(c.name + "/" + c.version)
	}
	if !sv.Enabled {
		return nil, &kvError{Status: http.StatusForbidden, Code: "Forbidden", Inner: "SecretDisabled", Message: "Operation get is not allowed on a disabled secret."}
	}
	return &result{status: http.StatusOK, body: c.bundle(e.Name, sv, true)}, nil
}

func (s *Server) updateSecret(c *call) (*result, *kvError) {
	var req updateRequest
	if err := readJSON(c.r, maxBodyBytes, &req); err != nil {
		return nil, err
	}
	if err := validateProps(req.ContentType, req.Tags); err != nil {
		return nil, err
	}
	c.v.mu.Lock()
	defer c.v.mu.Unlock()
	e := c.v.state.Secrets[strings.ToLower(c.name)]
	if e == nil {
		return nil, secretNotFound(c.name)
	}
	sv := e.version(c.version)
	if sv == nil {
		return nil, secretNotFound(c.name + "/" + c.version)
	}
	updated := sv.clone()
	if req.ContentType != nil {
		updated.ContentType = *req.ContentType
	}
	if req.Tags != nil {
		updated.Tags = cloneTags(req.Tags)
	}
	if a := req.Attributes; a != nil {
		if a.Enabled != nil {
			updated.Enabled = *a.Enabled
		}
		if a.NotBefore.Set {
			updated.NotBefore = a.NotBefore.ptr()
		}
		if a.Expires.Set {
			updated.Expires = a.Expires.ptr()
			// A new expiry is a new deadline: expiry events may fire again for it.
			updated.NearExpirySent, updated.ExpiredSent = false, false
		}
	}
	updated.Updated = s.clock.Now().Unix()
	*sv = *updated
	events := s.expiryEvents(c.v, e, s.clock.Now())
	if err := s.persist(c.v); err != nil {
		return nil, err
	}
	return &result{status: http.StatusOK, body: c.bundle(e.Name, sv, false), events: events}, nil
}

// page applies $skiptoken/maxresults paging over sorted keys and returns the keys of this page and
// the absolute nextLink (nil on the last page).
func (c *call) page(keys []string) ([]string, *string, *kvError) {
	q := c.r.URL.Query()
	size := maxPageSize
	if m := q.Get("maxresults"); m != "" {
		n, err := strconv.Atoi(m)
		if err != nil || n < 1 || n > maxPageSize {
			return nil, nil, badParameter("maxresults must be an integer between 1 and %d.", maxPageSize)
		}
		size = n
	}
	start := 0
	if tok := q.Get("$skiptoken"); tok != "" {
		after, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil {
			return nil, nil, badParameter("The $skiptoken is not valid.")
		}
		for start < len(keys) && keys[start] <= string(after) {
			start++
		}
	}
	end := min(start+size, len(keys))
	pageKeys := keys[start:end]
	if end >= len(keys) {
		return pageKeys, nil, nil
	}
	next := url.Values{}
	next.Set("api-version", c.apiVersion)
	next.Set("$skiptoken", base64.RawURLEncoding.EncodeToString([]byte(keys[end-1])))
	next.Set("maxresults", strconv.Itoa(size))
	link := c.base + c.r.URL.Path + "?" + next.Encode()
	return pageKeys, &link, nil
}

func (s *Server) listSecrets(c *call) (*result, *kvError) {
	c.v.mu.RLock()
	defer c.v.mu.RUnlock()
	keys, next, err := c.page(sortedKeys(c.v.state.Secrets))
	if err != nil {
		return nil, err
	}
	out := pageOut{Value: make([]bundleOut, 0, len(keys)), NextLink: next}
	for _, k := range keys {
		e := c.v.state.Secrets[k]
		b := c.bundle(e.Name, e.latest(), false)
		b.ID = c.secretID(e.Name, "")
		out.Value = append(out.Value, b)
	}
	return &result{status: http.StatusOK, body: out}, nil
}

func (s *Server) listVersions(c *call) (*result, *kvError) {
	c.v.mu.RLock()
	defer c.v.mu.RUnlock()
	e := c.v.state.Secrets[strings.ToLower(c.name)]
	if e == nil {
		return nil, secretNotFound(c.name)
	}
	byKey := make(map[string]*secretVersion, len(e.Versions))
	keys := make([]string, 0, len(e.Versions))
	for _, sv := range e.Versions {
		k := strings.ToLower(sv.Version)
		byKey[k] = sv
		keys = append(keys, k)
	}
	sort.Strings(keys)
	keys, next, err := c.page(keys)
	if err != nil {
		return nil, err
	}
	out := pageOut{Value: make([]bundleOut, 0, len(keys)), NextLink: next}
	for _, k := range keys {
		out.Value = append(out.Value, c.bundle(e.Name, byKey[k], false))
	}
	return &result{status: http.StatusOK, body: out}, nil
}

func (s *Server) deleteSecret(c *call) (*result, *kvError) {
	c.v.mu.Lock()
	defer c.v.mu.Unlock()
	key := strings.ToLower(c.name)
	e := c.v.state.Secrets[key]
	if e == nil {
		return nil, secretNotFound(c.name)
	}
	now := s.clock.Now().Unix()
	e.DeletedDate = now
	e.ScheduledPurgeDate = now + int64(c.v.cfg.RecoverableDays)*86400
	delete(c.v.state.Secrets, key)
	c.v.state.Deleted[key] = e
	if err := s.persist(c.v); err != nil {
		return nil, err
	}
	return &result{status: http.StatusOK, body: c.deletedBundle(e, false)}, nil
}

func (s *Server) getDeleted(c *call) (*result, *kvError) {
	c.v.mu.RLock()
	defer c.v.mu.RUnlock()
	e := c.v.state.Deleted[strings.ToLower(c.name)]
	if e == nil {
		return nil, deletedNotFound(c.name)
	}
	return &result{status: http.StatusOK, body: c.deletedBundle(e, false)}, nil
}

func (s *Server) listDeleted(c *call) (*result, *kvError) {
	c.v.mu.RLock()
	defer c.v.mu.RUnlock()
	keys, next, err := c.page(sortedKeys(c.v.state.Deleted))
	if err != nil {
		return nil, err
	}
	out := pageOut{Value: make([]bundleOut, 0, len(keys)), NextLink: next}
	for _, k := range keys {
		out.Value = append(out.Value, c.deletedBundle(c.v.state.Deleted[k], true))
	}
	return &result{status: http.StatusOK, body: out}, nil
}

func (s *Server) purgeDeleted(c *call) (*result, *kvError) {
	c.v.mu.Lock()
	defer c.v.mu.Unlock()
	key := strings.ToLower(c.name)
	if c.v.state.Deleted[key] == nil {
		return nil, deletedNotFound(c.name)
	}
	if c.v.cfg.PurgeProtection {
		return nil, &kvError{Status: http.StatusForbidden, Code: "Forbidden", Inner: "PurgeProtectionEnabled",
			Message: fmt.Sprintf("Operation 'purge' is not allowed on secret %s because purge protection is enabled on this vault.", c.name)}
	}
	delete(c.v.state.Deleted, key)
	if err := s.persist(c.v); err != nil {
		return nil, err
	}
	return &result{status: http.StatusNoContent}, nil
}

func (s *Server) recoverDeleted(c *call) (*result, *kvError) {
	c.v.mu.Lock()
	defer c.v.mu.Unlock()
	key := strings.ToLower(c.name)
	e := c.v.state.Deleted[key]
	if e == nil {
		return nil, deletedNotFound(c.name)
	}
	delete(c.v.state.Deleted, key)
	e.DeletedDate, e.ScheduledPurgeDate = 0, 0
	c.v.state.Secrets[key] = e
	if err := s.persist(c.v); err != nil {
		return nil, err
	}
	return &result{status: http.StatusOK, body: c.bundle(e.Name, e.latest(), false)}, nil
}

func (s *Server) backupSecret(c *call) (*result, *kvError) {
	c.v.mu.RLock()
	defer c.v.mu.RUnlock()
	e := c.v.state.Secrets[strings.ToLower(c.name)]
	if e == nil {
		return nil, secretNotFound(c.name)
	}
	if len(e.Versions) > maxBackupVersions {
		return nil, badParameter("Secret %s has %d versions; backup is limited to %d versions.", e.Name, len(e.Versions), maxBackupVersions)
	}
	blob, err := s.sealBackup(e)
	if err != nil {
		return nil, &kvError{Status: http.StatusInternalServerError, Code: "InternalServerError", Message: "The backup could not be created."}
	}
	return &result{status: http.StatusOK, body: backupOut{Value: blob}}, nil
}

func (s *Server) restoreSecret(c *call) (*result, *kvError) {
	var req restoreRequest
	if err := readJSON(c.r, maxRestoreBodySize, &req); err != nil {
		return nil, err
	}
	if req.Value == nil || *req.Value == "" {
		return nil, badParameter("The request body must contain the backup blob in 'value'.")
	}
	e, err := s.openBackup(*req.Value)
	if err != nil {
		return nil, badParameter("The backup blob is invalid or was not created by this Key Vault emulator.")
	}
	c.v.mu.Lock()
	defer c.v.mu.Unlock()
	key := strings.ToLower(e.Name)
	if c.v.state.Secrets[key] != nil || c.v.state.Deleted[key] != nil {
		return nil, &kvError{Status: http.StatusConflict, Code: "Conflict", Message: fmt.Sprintf(
			"There was a conflict restoring the secret '%s'. This may be because a secret with the same name already exists or has been soft-deleted in this vault.", c.secretID(e.Name, e.latest().Version))}
	}
	e.DeletedDate, e.ScheduledPurgeDate = 0, 0
	c.v.state.Secrets[key] = e
	events := s.expiryEvents(c.v, e, s.clock.Now())
	if err := s.persist(c.v); err != nil {
		return nil, err
	}
	return &result{status: http.StatusOK, body: c.bundle(e.Name, e.latest(), false), events: events}, nil
}
