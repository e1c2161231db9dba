package emulator

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/kvrotator/kvrotator/emulator/internal/authn"
)

// apiVersionRE accepts the 7.x versions and the date versions (2025-07-01, 2026-04-01, previews).
var apiVersionRE = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^(7\.[0-9]+|20[0-9]{2}-[01][0-9]-[0-3][0-9])(-preview(\.[0-9]+)?)?$`)
})

type statusRecorder struct {
	http.ResponseWriter
	status int
	wrote  bool // an answer was started
}

func (r *statusRecorder) WriteHeader(code int) {
	r.status = code
	r.wrote = true
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	r.wrote = true
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// handler serves one listener; fixed is the vault of a dedicated listener, nil on the shared one.
func (s *Server) handler(fixed *vault) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := r.URL.Path
		switch {
		case path == "/secrets" || strings.HasPrefix(path, "/secrets/") || path == "/deletedsecrets" || strings.HasPrefix(path, "/deletedsecrets/"):
			s.serveVault(w, r, fixed)
		case strings.HasPrefix(path, "/_emulator/"):
			if s.allowDev(w, r) {
				s.serveAdmin(w, r)
			}
		case strings.HasPrefix(path, "/v1/") && fixed == nil:
			s.serveLogs(w, r)
		case strings.HasPrefix(path, "/topics/") && fixed == nil:
			s.serveTopic(w, r)
		case s.idHandler != nil && fixed == nil:
			if (path == "/msi" || strings.HasPrefix(path, "/msi/")) && !s.allowDev(w, r) {
				return
			}
			s.idHandler.ServeHTTP(w, r)
		default:
			writeError(w, &kvError{Status: http.StatusNotFound, Code: "NotFound", Message: "The requested resource does not exist."})
		}
	})
}

func (s *Server) serveVault(w http.ResponseWriter, r *http.Request, fixed *vault) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	w = rec
	audit := &auditEntry{arrived: s.clock.Now(), started: start, requestID: uuid.NewString()}
	w.Header().Set("x-ms-request-id", audit.requestID)
	w.Header().Set("x-ms-keyvault-region", "local")
	w.Header().Set("x-ms-keyvault-service-version", "1.9.0.0-kvrotator-emulator")
	w.Header().Set("Cache-Control", "no-cache")
	c := &call{r: r}
	caller := ""
	defer func() {
		vaultName := ""
		if c.v != nil {
			vaultName = c.v.name
		}
		s.log.Info("keyvault request", "method", r.Method, "path", r.URL.Path, "vault", vaultName,
			"operation", c.op, "identity", caller, "status", rec.status, "ms", time.Since(start).Milliseconds())
		switch {
		case c.v == nil: // no vault to attribute the request to
		case audit.status != 0: // applied, answer dropped
			s.recordAudit(c, audit, audit.status)
		case rec.wrote:
			s.recordAudit(c, audit, rec.status)
		}
	}()

	v, kerr := s.resolveVault(r.Host, fixed)
	if kerr != nil {
		writeError(w, kerr)
		return
	}
	c.v = v
	c.base = s.scheme() + "://" + r.Host
	if d := s.cfg.Latency + v.cfg.Latency; d > 0 {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
	}

	var id *IdentityConfig
	if !s.cfg.NoAuth {
		if id, kerr = s.authenticate(r); kerr != nil {
			w.Header().Set("WWW-Authenticate", authn.WWWAuthenticate(s.cfg.Authority, s.cfg.TenantID, s.challengeResource(r.Host)))
			writeError(w, kerr)
			return
		}
		caller = id.Name
		audit.identity = id
	}

	c.apiVersion = r.URL.Query().Get("api-version")
	if c.apiVersion == "" {
		writeError(w, badParameter("The api-version query parameter is required."))
		return
	}
	if !apiVersionRE().MatchString(c.apiVersion) {
		writeError(w, badParameter("The specified version (%s) is not recognized. Consider using the latest supported version (2026-04-01).", c.apiVersion))
		return
	}
	if kerr = route(c, r.Method, r.URL.Path); kerr != nil {
		writeError(w, kerr)
		return
	}
	if c.name != "" {
		if kerr = validateName(c.name); kerr != nil {
			writeError(w, kerr)
			return
		}
	}
	if id != nil && !id.allowed(v.name, opAction[c.op]) {
		writeError(w, forbidden(id, s.cfg.TenantID, v.name, s.vaultResourceID(v), opAction[c.op]))
		return
	}
	if lim := s.limiters[strings.ToLower(v.name)]; lim != nil {
		if ok, wait := lim.Allow(c.op == opSet || c.op == opRestore, time.Now()); !ok {
			writeError(w, &kvError{Status: http.StatusTooManyRequests, Code: "Throttled", RetryAfter: retryAfterSeconds(wait),
				Message: "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached"})
			return
		}
	}
	rule, faulted := s.script.Match(v.name, c.op, c.name)
	if faulted && !rule.DropAfter {
		if rule.Delay > 0 {
			select {
			case <-time.After(rule.Delay):
			case <-r.Context().Done():
				return
			}
		}
		if rule.Drop {
			rec.status = 0
			// Aborts the response: HTTP/1 closes the connection, HTTP/2 resets the stream.
			panic(http.ErrAbortHandler)
		}
		msg := rule.Message
		if msg == "" {
			msg = fmt.Sprintf("Injected fault for %s.", c.op)
		}
		e := &kvError{Status: rule.Status, Code: rule.Code, Message: msg}
		if rule.RetryAfter > 0 {
			e.RetryAfter = retryAfterSeconds(rule.RetryAfter)
		}
		writeError(w, e)
		return
	}

	res, kerr := s.dispatch(c)
	if kerr == nil {
		audit.served = servedID(c, res)
	}
	if faulted && rule.DropAfter {
		// Applied (or refused) as usual; the answer is lost: timeout after commit.
		if kerr == nil {
			s.publish(res.events)
			audit.status = res.status
		} else {
			audit.status = kerr.Status
		}
		dropAfter(r, rec, rule.Delay)
	}
	if kerr != nil {
		writeError(w, kerr)
		return
	}
	s.publish(res.events)
	if res.status == http.StatusNoContent {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeJSON(w, res.status, res.body)
}

// dropAfter waits delay (unless the client goes away) and aborts the response without an answer:
// HTTP/1 closes the connection, HTTP/2 resets the stream.
func dropAfter(r *http.Request, rec *statusRecorder, delay time.Duration) {
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
		}
	}
	rec.status = 0
	panic(http.ErrAbortHandler)
}

func (s *Server) dispatch(c *call) (*result, *kvError) {
	switch c.op {
	case opSet:
		return s.setSecret(c)
	case opGet:
		return s.getSecret(c)
	case opUpdate:
		return s.updateSecret(c)
	case opList:
		return s.listSecrets(c)
	case opListVersions:
		return s.listVersions(c)
	case opDelete:
		return s.deleteSecret(c)
	case opGetDeleted:
		return s.getDeleted(c)
	case opListDeleted:
		return s.listDeleted(c)
	case opPurge:
		return s.purgeDeleted(c)
	case opRecover:
		return s.recoverDeleted(c)
	case opBackup:
		return s.backupSecret(c)
	case opRestore:
		return s.restoreSecret(c)
	}
	return nil, &kvError{Status: http.StatusInternalServerError, Code: "InternalServerError", Message: "unrouted operation"}
}

// route maps method and path to an operation, filling c.op, c.name and c.version.
func route(c *call, method, path string) *kvError {
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	notAllowed := &kvError{Status: http.StatusMethodNotAllowed, Code: "MethodNotAllowed", Message: fmt.Sprintf("The method %s is not allowed on %s.", method, path)}
	notFound := &kvError{Status: http.StatusNotFound, Code: "NotFound", Message: fmt.Sprintf("The path %s does not exist.", path)}
	op := func(m map[string]string) *kvError {
		o, ok := m[method]
		if !ok {
			return notAllowed
		}
		c.op = o
		return nil
	}
	switch parts[0] {
	case "secrets":
		switch len(parts) {
		case 1:
			return op(map[string]string{http.MethodGet: opList})
		case 2:
			if parts[1] == "restore" && method == http.MethodPost {
				c.op = opRestore
				return nil
			}
			c.name = parts[1]
			return op(map[string]string{http.MethodPut: opSet, http.MethodGet: opGet, http.MethodPatch: opUpdate, http.MethodDelete: opDelete})
		case 3:
			c.name = parts[1]
			switch parts[2] {
			case "versions":
				return op(map[string]string{http.MethodGet: opListVersions})
			case "backup":
				return op(map[string]string{http.MethodPost: opBackup})
			}
			c.version = parts[2]
			return op(map[string]string{http.MethodGet: opGet, http.MethodPatch: opUpdate})
		}
	case "deletedsecrets":
		switch len(parts) {
		case 1:
			return op(map[string]string{http.MethodGet: opListDeleted})
		case 2:
			c.name = parts[1]
			return op(map[string]string{http.MethodGet: opGetDeleted, http.MethodDelete: opPurge})
		case 3:
			if parts[2] == "recover" {
				c.name = parts[1]
				return op(map[string]string{http.MethodPost: opRecover})
			}
		}
	}
	return notFound
}

// challengeResource is the resource named in the challenge for a request to host.
func (s *Server) challengeResource(host string) string {
	switch s.cfg.Resource {
	case "auto":
		return authn.ChallengeResource(host)
	case "azure":
		return "https://vault.azure.net"
	}
	return s.cfg.Resource
}

// authenticate checks the bearer token: signature, audience (the challenge resource or
// https://vault.azure.net) and expiry against wall time, and that it names a known identity.
func (s *Server) authenticate(r *http.Request) (*IdentityConfig, *kvError) {
	unauthorized := func(msg string) *kvError {
		return &kvError{Status: http.StatusUnauthorized, Code: "Unauthorized", Message: msg}
	}
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return nil, unauthorized("AKV10000: Request is missing a Bearer or PoP token.")
	}
	audiences := []string{s.challengeResource(r.Host), "https://vault.azure.net"}
	p, err := s.issuer.Validate(strings.TrimSpace(token), audiences, time.Now())
	switch {
	case errors.Is(err, authn.ErrExpired):
		return nil, unauthorized("AKV10021: Authentication failed: the access token has expired.")
	case errors.Is(err, authn.ErrAudience):
		return nil, unauthorized(fmt.Sprintf("AKV10022: Invalid audience. Expected %s.", strings.Join(audiences, " or ")))
	case errors.Is(err, authn.ErrSignature):
		return nil, unauthorized("AKV10031: Authentication failed: the token signature is invalid.")
	case err != nil:
		return nil, unauthorized("AKV10001: Authentication failed: the access token is malformed.")
	}
	id := s.identities[strings.ToLower(p.ObjectID)]
	if id == nil {
		return &IdentityConfig{Name: "unknown:" + p.ObjectID, ClientID: p.ClientID, ObjectID: p.ObjectID}, nil
	}
	return id, nil
}

// forbidden is Key Vault's RBAC denial.
func forbidden(id *IdentityConfig, tenant, vaultName, resource, action string) *kvError {
	return &kvError{Status: http.StatusForbidden, Code: "Forbidden", Inner: "ForbiddenByRbac", Message: fmt.Sprintf(
		"Caller is not authorized to perform action on resource.\r\nIf role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\n"+
			"Caller: appid=%s;oid=%s;iss=https://sts.windows.net/%s/\r\nAction: '%s'\r\nResource: '%s'\r\nAssignment: (not found)\r\nDecisionReason: 'DeniedWithNoValidRBAC' \r\nVault: %s;location=local\r\n",
		id.ClientID, id.ObjectID, tenant, action, strings.ToLower(resource), vaultName)}
}
