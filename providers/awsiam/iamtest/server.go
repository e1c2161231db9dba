// Package iamtest is a local AWS IAM and STS for kvrotator's aws-iam provider tests: the Query
// protocol as AWS documents it and as aws-sdk-go-v2 speaks it (its tests check the server with the
// SDK's clients; the provider speaks it with its own client), over one HTTP endpoint.
//
//   - Requests are POST / with a form body (Action=…&Version=2010-05-08 for IAM, 2011-06-15 for
//     STS), signed with Signature Version 4: the server recomputes every signature with the secret of
//     the key it names (service iam or sts, the configured region, X-Amz-Date within 15 minutes) and
//     answers 403 SignatureDoesNotMatch on a mismatch, 403 InvalidClientTokenId for a key it does not
//     know or that is inactive.
//   - Answers are text/xml: <{Action}Response><{Action}Result>…</{Action}Result><ResponseMetadata>
//     <RequestId>…</RequestId></ResponseMetadata></{Action}Response>, lists as <member> items, and
//     errors as <ErrorResponse><Error><Type>Sender</Type><Code>…</Code><Message>…</Message></Error>
//     <RequestId>…</RequestId></ErrorResponse> with the x-amzn-RequestId header.
//   - IAM: CreateAccessKey (the secret only in this answer; at most 2 keys per user, inactive ones
//     included: 409 LimitExceeded), ListAccessKeys (Marker/MaxItems paging), UpdateAccessKey,
//     DeleteAccessKey (404 NoSuchEntity for a key the user does not have), TagUser (at most 50 tags,
//     keys case-insensitive), UntagUser, ListUserTags. Each needs a grant of the caller's user on the
//     target user (Grant), else 403 AccessDenied, as an identity policy would.
//   - STS: GetCallerIdentity (no permission needed) → Account, Arn, UserId.
//
// Faults switch on at run time: throttling (400 Throttling, optionally with Retry-After), failures
// (FailNext: 500 ServiceFailure, 503, …), IAM's eventual consistency (a new key is refused with
// InvalidClientTokenId for its first calls: SetPropagation), an answer lost after the action was
// applied (LoseNext: the connection is closed instead of answering), and error messages that echo the
// signing key's secret (EchoSecrets), for leak tests.
package iamtest

import (
	"crypto/rand"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The API versions of the Query protocol.
const (
	IAMVersion = "2010-05-08"
	STSVersion = "2011-06-15"
)

// Limits IAM enforces.
const (
	MaxKeysPerUser = 2  // IAM quota "access keys per user", inactive keys included
	MaxTagsPerUser = 50 // IAM quota "tags per user"
)

// Every IAM action the server implements.
var IAMActions = []string{"CreateAccessKey", "ListAccessKeys", "UpdateAccessKey", "DeleteAccessKey", "TagUser", "UntagUser", "ListUserTags"}

var (
	userNamePattern = regexp.MustCompile(`^[\w+=,.@-]{1,64}$`)
	keyIDPattern    = regexp.MustCompile(`^\w{16,128}$`)
	tagKeyPattern   = regexp.MustCompile(`^[\p{L}\p{Z}\p{N}_.:/=+\-@]{1,128}$`)
	tagValuePattern = regexp.MustCompile(`^[\p{L}\p{Z}\p{N}_.:/=+\-@]{0,256}$`)
)

// Key is an access key.
type Key struct {
	ID      string
	Secret  string
	User    string
	Status  string // Active or Inactive
	Created time.Time
	// unpropagated counts the calls a new key is still refused for (SetPropagation).
	unpropagated int
}

// Pair is the key's {"AccessKeyId","SecretAccessKey"} JSON, as kvrotator stores it.
func (k Key) Pair() string {
	return `{"Version":1,"AccessKeyId":"` + k.ID + `","SecretAccessKey":"` + k.Secret + `"}`
}

// Tag is an IAM tag.
type Tag struct{ Key, Value string }

type user struct {
	name, path, id string
	tags           []Tag
	// grants: action → target user names (lower-case) or "*".
	grants map[string][]string
}

// Request is a request the server answered, for assertions. It holds no secret.
type Request struct {
	Service string // iam or sts; "" when the request was refused before it was known
	Action  string
	KeyID   string // the signing access key
	Params  url.Values
	Status  int
	Code    string // the error code, "" on success
}

// Config sets up a Server.
type Config struct {
	Account   string // 12 digits; default 123456789012
	Partition string // default aws
	IAMRegion string // the region IAM requests must be signed for; default us-east-1
	STSRegion string // the region STS requests must be signed for; default us-east-1
}

// Server is the local IAM and STS.
type Server struct {
	URL string
	cfg Config
	srv *httptest.Server

	mu       sync.Mutex
	users    map[string]*user // by lower-case name: IAM user names are unique case-insensitively
	keys     map[string]*Key
	created  int
	requests []Request
	reqSeq   int

	faults      []Fault
	propagation int
	echo        bool
	now         func() time.Time
}

// Fault is a scripted misbehaviour (Inject).
type Fault struct {
	// Action is the action it applies to; "" for every request.
	Action string
	// Skip lets this many matching requests through first; Count is how many it then applies to.
	Skip, Count int
	// Status and Code are the error answer (400 Throttling, 500 ServiceFailure, 403 AccessDenied, …).
	Status int
	Code   string
	// RetryAfter adds a Retry-After header (AWS's Query APIs send none; a proxy might).
	RetryAfter time.Duration
	// Lose applies the action and then closes the connection instead of answering (Status and Code
	// are ignored): the caller cannot know whether it happened.
	Lose bool
}

// NewServer starts a server for account 123456789012 in the aws partition.
func NewServer() *Server { return NewServerWith(Config{}) }

// NewServerWith starts a server with cfg.
func NewServerWith(cfg Config) *Server {
	if cfg.Account == "" {
		cfg.Account = "123456789012"
	}
	if cfg.Partition == "" {
		cfg.Partition = "aws"
	}
	if cfg.IAMRegion == "" {
		cfg.IAMRegion = "us-east-1"
	}
	if cfg.STSRegion == "" {
		cfg.STSRegion = "us-east-1"
	}
	s := &Server{cfg: cfg, users: map[string]*user{}, keys: map[string]*Key{}, now: time.Now}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	return s
}

// Close stops the server.
func (s *Server) Close() { s.srv.Close() }

// Account is the server's account id.
func (s *Server) Account() string { return s.cfg.Account }

// AddUser creates an IAM user (path "/" when empty).
func (s *Server) AddUser(name, path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if path == "" {
		path = "/"
	}
	s.users[strings.ToLower(name)] = &user{name: name, path: path, id: "AIDA" + randomString(17, upperDigits), grants: map[string][]string{}}
}

// Grant allows user `caller` the IAM actions on the users `targets` ("*": every user). With no actions,
// every IAM action the server implements.
func (s *Server) Grant(caller string, targets []string, actions ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[strings.ToLower(caller)]
	if u == nil {
		panic("iamtest: Grant for an unknown user " + caller)
	}
	if len(actions) == 0 {
		actions = IAMActions
	}
	for _, a := range actions {
		for _, t := range targets {
			u.grants[a] = append(u.grants[a], strings.ToLower(t))
		}
	}
}

// Revoke removes a grant of one action (every target).
func (s *Server) Revoke(caller, action string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.users[strings.ToLower(caller)].grants, action)
}

// AddKey creates an active access key for a user, as the console would (nothing counted in Created).
func (s *Server) AddKey(userName string) Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, err := s.newKey(userName)
	if err != nil {
		panic("iamtest: AddKey: " + err.Error())
	}
	s.created--
	k.unpropagated = 0
	return *k
}

// AddKeyAt is AddKey with a creation time.
func (s *Server) AddKeyAt(userName string, created time.Time) Key {
	k := s.AddKey(userName)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[k.ID].Created = created.UTC().Truncate(time.Second)
	return *s.keys[k.ID]
}

// SetStatus sets a key's status (a person in the console).
func (s *Server) SetStatus(id, status string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys[id].Status = status
}

// DeleteKey deletes a key (a person in the console).
func (s *Server) DeleteKey(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.keys, id)
}

// SetTag sets a user tag (a person in the console: an access key's description is a user tag whose key
// is the access key id).
func (s *Server) SetTag(userName, key, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[strings.ToLower(userName)]
	u.tags = setTag(u.tags, Tag{key, value})
}

// Tags are a user's tags.
func (s *Server) Tags(userName string) []Tag {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.users[strings.ToLower(userName)].tags)
}

// Tag is a user's tag's value and whether it is set.
func (s *Server) Tag(userName, key string) (string, bool) {
	for _, t := range s.Tags(userName) {
		if strings.EqualFold(t.Key, key) {
			return t.Value, true
		}
	}
	return "", false
}

// Keys are a user's keys, oldest first.
func (s *Server) Keys(userName string) []Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keysOf(userName)
}

func (s *Server) keysOf(userName string) []Key {
	var out []Key
	for _, k := range s.keys {
		if strings.EqualFold(k.User, userName) {
			out = append(out, *k)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// Key is a key by id, and whether it exists.
func (s *Server) Key(id string) (Key, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keys[id]
	if !ok {
		return Key{}, false
	}
	return *k, true
}

// Works reports whether STS would accept a key pair now (active, known, right secret, propagated),
// without counting a call.
func (s *Server) Works(id, secret string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	k, ok := s.keys[id]
	return ok && k.Secret == secret && k.Status == "Active" && k.unpropagated == 0
}

// Created counts the keys made through CreateAccessKey.
func (s *Server) Created() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.created
}

// Requests are the requests answered so far.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// Count counts the answered requests for an action (successful or not).
func (s *Server) Count(action string) int {
	n := 0
	for _, r := range s.Requests() {
		if r.Action == action {
			n++
		}
	}
	return n
}

// Inject adds a fault; faults apply in the order they were added.
func (s *Server) Inject(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, f)
}

// Throttle answers the next n requests with 400 Throttling ("Rate exceeded"), with a Retry-After
// header when retryAfter is positive.
func (s *Server) Throttle(n int, retryAfter time.Duration) {
	s.Inject(Fault{Count: n, Status: http.StatusBadRequest, Code: "Throttling", RetryAfter: retryAfter})
}

// FailNext answers the next n requests with status and code (500 ServiceFailure, 503
// ServiceUnavailable, …).
func (s *Server) FailNext(n, status int, code string) {
	s.Inject(Fault{Count: n, Status: status, Code: code})
}

// FailAction answers the next n requests for action with status and code.
func (s *Server) FailAction(action string, n, status int, code string) {
	s.Inject(Fault{Action: action, Count: n, Status: status, Code: code})
}

// LoseNext applies the next n requests for action and then closes the connection instead of
// answering: the caller cannot know whether the action happened.
func (s *Server) LoseNext(action string, n int) {
	s.Inject(Fault{Action: action, Count: n, Lose: true})
}

// fault is the fault that applies to a request for action, if any.
func (s *Server) fault(action string) *Fault {
	for i := range s.faults {
		f := &s.faults[i]
		if f.Count <= 0 || (f.Action != "" && f.Action != action) {
			continue
		}
		if f.Skip > 0 {
			f.Skip--
			return nil
		}
		f.Count--
		out := *f
		return &out
	}
	return nil
}

// SetPropagation makes keys created from now on refused (403 InvalidClientTokenId) for their first n
// calls: IAM's eventual consistency.
func (s *Server) SetPropagation(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.propagation = n
}

// SetClock sets the server's clock (default time.Now): the time signatures are checked against, the
// answers' Date header, and new keys' creation time. A clock minutes away from the client's is how
// clock skew looks.
func (s *Server) SetClock(now func() time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = now
}

// EchoSecrets makes error messages quote the signing key's secret (a misbehaving server), for tests
// that check the client redacts it.
func (s *Server) EchoSecrets(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.echo = on
}

// apiError is an error answer.
type apiError struct {
	status  int
	kind    string // Sender or Receiver
	code    string
	message string
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func sender(status int, code, format string, args ...any) *apiError {
	return &apiError{status, "Sender", code, fmt.Sprintf(format, args...)}
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "bad body", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqSeq++
	reqID := fmt.Sprintf("%08x-0000-4000-8000-%012x", s.reqSeq, s.reqSeq)
	form, _ := url.ParseQuery(string(body))
	rec := Request{Action: form.Get("Action"), Params: form} // a request carries no secret: SigV4 sends none
	service := "iam"
	if form.Get("Version") == STSVersion {
		service = "sts"
	}
	var result any
	var signer *Key
	var aerr *apiError
	f := s.fault(rec.Action)
	if f != nil && !f.Lose {
		kind := "Sender"
		if f.Status >= 500 {
			kind = "Receiver"
		}
		msg := "injected failure"
		if f.Code == "Throttling" {
			msg = "Rate exceeded"
		}
		aerr = &apiError{f.Status, kind, f.Code, msg}
		if f.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(int(f.RetryAfter/time.Second)))
		}
	} else {
		result, signer, aerr = s.handle(r, body, form, service, &rec)
	}
	if aerr == nil && f != nil && f.Lose {
		rec.Status, rec.Code = 0, "lost"
		s.requests = append(s.requests, rec)
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler)
	}
	ns := "https://iam.amazonaws.com/doc/" + IAMVersion + "/"
	if service == "sts" {
		ns = "https://sts.amazonaws.com/doc/" + STSVersion + "/"
	}
	w.Header().Set("x-amzn-RequestId", reqID)
	w.Header().Set("Content-Type", "text/xml")
	w.Header().Set("Date", s.now().UTC().Format(http.TimeFormat))
	if aerr != nil {
		msg := aerr.message
		if s.echo && signer != nil {
			msg += " (signed with " + signer.ID + ":" + signer.Secret + ")"
		}
		rec.Status, rec.Code = aerr.status, aerr.code
		s.requests = append(s.requests, rec)
		w.WriteHeader(aerr.status)
		_, _ = fmt.Fprintf(w, `<ErrorResponse xmlns="%s">`+"\n  <Error>\n    <Type>%s</Type>\n    <Code>%s</Code>\n    <Message>%s</Message>\n  </Error>\n  <RequestId>%s</RequestId>\n</ErrorResponse>\n",
			ns, aerr.kind, escape(aerr.code), escape(msg), reqID)
		return
	}
	rec.Status = http.StatusOK
	s.requests = append(s.requests, rec)
	inner := ""
	if result != nil {
		b, err := xml.MarshalIndent(result, "  ", "  ")
		if err != nil {
			panic(err)
		}
		inner = "\n  " + strings.TrimSpace(string(b))
	}
	_, _ = fmt.Fprintf(w, `<%sResponse xmlns="%s">%s`+"\n  <ResponseMetadata>\n    <RequestId>%s</RequestId>\n  </ResponseMetadata>\n</%sResponse>\n",
		rec.Action, ns, inner, reqID, rec.Action)
}

func escape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// handle authenticates, applies the faults and runs the action. It returns the result element (nil
// for none), the signing key, or an error.
func (s *Server) handle(r *http.Request, body []byte, form url.Values, service string, rec *Request) (any, *Key, *apiError) {
	if r.Method != http.MethodPost || r.URL.Path != "/" {
		return nil, nil, sender(http.StatusBadRequest, "InvalidAction", "only POST / is served")
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/x-www-form-urlencoded") {
		return nil, nil, sender(http.StatusBadRequest, "InvalidAction", "Content-Type must be application/x-www-form-urlencoded")
	}
	auth, err := ParseAuthorization(r.Header.Get("Authorization"))
	if err != nil {
		return nil, nil, sender(http.StatusForbidden, "IncompleteSignature", "%s", err)
	}
	rec.KeyID = auth.AccessKeyID
	key, ok := s.keys[auth.AccessKeyID]
	if !ok || key.Status != "Active" {
		return nil, nil, sender(http.StatusForbidden, "InvalidClientTokenId", "The security token included in the request is invalid")
	}
	wantRegion := s.cfg.IAMRegion
	if service == "sts" {
		wantRegion = s.cfg.STSRegion
	}
	if auth.Service != service || auth.Region != wantRegion {
		return nil, key, sender(http.StatusForbidden, "SignatureDoesNotMatch", "Credential should be scoped to a valid region and service: %s/%s, not %s/%s",
			wantRegion, service, auth.Region, auth.Service)
	}
	if err := auth.Verify(r, body, key.Secret, s.now()); err != nil {
		return nil, key, sender(http.StatusForbidden, "SignatureDoesNotMatch", "%s", err)
	}
	if key.unpropagated > 0 {
		key.unpropagated--
		return nil, key, sender(http.StatusForbidden, "InvalidClientTokenId", "The security token included in the request is invalid")
	}
	rec.Service = service
	want := IAMVersion
	if service == "sts" {
		want = STSVersion
	}
	if form.Get("Version") != want {
		return nil, key, sender(http.StatusBadRequest, "InvalidParameterValue", "Version must be %s", want)
	}
	caller := s.users[strings.ToLower(key.User)]
	if service == "sts" {
		if rec.Action != "GetCallerIdentity" {
			return nil, key, sender(http.StatusBadRequest, "InvalidAction", "Could not find operation %s for version %s", rec.Action, STSVersion)
		}
		return callerIdentity{Arn: s.arn(caller), UserID: caller.id, Account: s.cfg.Account}, key, nil
	}
	if !slices.Contains(IAMActions, rec.Action) {
		return nil, key, sender(http.StatusBadRequest, "InvalidAction", "Could not find operation %s for version %s", rec.Action, IAMVersion)
	}
	target := form.Get("UserName")
	if target == "" {
		target = caller.name // IAM acts on the caller's own user when UserName is absent
	}
	if !userNamePattern.MatchString(target) {
		return nil, key, sender(http.StatusBadRequest, "ValidationError", "1 validation error detected: Value at 'userName' failed to satisfy constraint")
	}
	if !s.allowed(caller, rec.Action, target) {
		return nil, key, sender(http.StatusForbidden, "AccessDenied",
			"User: %s is not authorized to perform: iam:%s on resource: user %s because no identity-based policy allows the iam:%s action",
			s.arn(caller), rec.Action, target, rec.Action)
	}
	u := s.users[strings.ToLower(target)]
	if u == nil {
		return nil, key, sender(http.StatusNotFound, "NoSuchEntity", "The user with name %s cannot be found.", target)
	}
	res, aerr := s.iam(rec.Action, u, form)
	return res, key, aerr
}

func (s *Server) allowed(caller *user, action, target string) bool {
	for _, t := range caller.grants[action] {
		if t == "*" || t == strings.ToLower(target) {
			return true
		}
	}
	return false
}

func (s *Server) arn(u *user) string {
	return "arn:" + s.cfg.Partition + ":iam::" + s.cfg.Account + ":user" + u.path + u.name
}

// The result elements.
type (
	callerIdentity struct {
		XMLName xml.Name `xml:"GetCallerIdentityResult"`
		Arn     string   `xml:"Arn"`
		UserID  string   `xml:"UserId"`
		Account string   `xml:"Account"`
	}
	createResult struct {
		XMLName   xml.Name  `xml:"CreateAccessKeyResult"`
		AccessKey accessKey `xml:"AccessKey"`
	}
	accessKey struct {
		UserName        string `xml:"UserName"`
		AccessKeyID     string `xml:"AccessKeyId"`
		Status          string `xml:"Status"`
		SecretAccessKey string `xml:"SecretAccessKey"`
		CreateDate      string `xml:"CreateDate"`
	}
	keyMetadata struct {
		UserName    string `xml:"UserName"`
		AccessKeyID string `xml:"AccessKeyId"`
		Status      string `xml:"Status"`
		CreateDate  string `xml:"CreateDate"`
	}
	listKeys struct {
		XMLName     xml.Name      `xml:"ListAccessKeysResult"`
		UserName    string        `xml:"UserName"`
		Members     []keyMetadata `xml:"AccessKeyMetadata>member"`
		IsTruncated bool          `xml:"IsTruncated"`
		Marker      string        `xml:"Marker,omitempty"`
	}
	tagMember struct {
		Key   string `xml:"Key"`
		Value string `xml:"Value"`
	}
	listTags struct {
		XMLName     xml.Name    `xml:"ListUserTagsResult"`
		Members     []tagMember `xml:"Tags>member"`
		IsTruncated bool        `xml:"IsTruncated"`
		Marker      string      `xml:"Marker,omitempty"`
	}
)

// iam runs an IAM action on user u. The result marshals as the <{Action}Result> element; nil for
// actions that answer with ResponseMetadata only.
func (s *Server) iam(action string, u *user, form url.Values) (any, *apiError) {
	switch action {
	case "CreateAccessKey":
		k, aerr := s.newKey(u.name)
		if aerr != nil {
			return nil, aerr
		}
		return createResult{AccessKey: accessKey{UserName: u.name, AccessKeyID: k.ID, Status: k.Status, SecretAccessKey: k.Secret,
			CreateDate: k.Created.Format(time.RFC3339)}}, nil
	case "ListAccessKeys":
		keys := s.keysOf(u.name)
		page, next, aerr := paging(form, len(keys))
		if aerr != nil {
			return nil, aerr
		}
		out := listKeys{UserName: u.name, Members: []keyMetadata{}}
		for _, k := range keys[page[0]:page[1]] {
			out.Members = append(out.Members, keyMetadata{UserName: u.name, AccessKeyID: k.ID, Status: k.Status, CreateDate: k.Created.Format(time.RFC3339)})
		}
		out.IsTruncated, out.Marker = next != "", next
		return out, nil
	case "UpdateAccessKey", "DeleteAccessKey":
		id := form.Get("AccessKeyId")
		if !keyIDPattern.MatchString(id) {
			return nil, sender(http.StatusBadRequest, "ValidationError", "1 validation error detected: Value at 'accessKeyId' failed to satisfy constraint")
		}
		k, ok := s.keys[id]
		if !ok || !strings.EqualFold(k.User, u.name) {
			return nil, sender(http.StatusNotFound, "NoSuchEntity", "The Access Key with id %s cannot be found.", id)
		}
		if action == "DeleteAccessKey" {
			delete(s.keys, id)
			return nil, nil
		}
		switch st := form.Get("Status"); st {
		case "Active", "Inactive":
			k.Status = st
		default:
			return nil, sender(http.StatusBadRequest, "ValidationError", "1 validation error detected: Value at 'status' failed to satisfy enum value set: [Active, Inactive]")
		}
		return nil, nil
	case "TagUser":
		var tags []Tag
		for i := 1; form.Has(fmt.Sprintf("Tags.member.%d.Key", i)); i++ {
			t := Tag{form.Get(fmt.Sprintf("Tags.member.%d.Key", i)), form.Get(fmt.Sprintf("Tags.member.%d.Value", i))}
			if !tagKeyPattern.MatchString(t.Key) || !tagValuePattern.MatchString(t.Value) || strings.HasPrefix(strings.ToLower(t.Key), "aws:") {
				return nil, sender(http.StatusBadRequest, "InvalidInput", "The specified value for tag is not valid.")
			}
			tags = append(tags, t)
		}
		if len(tags) == 0 {
			return nil, sender(http.StatusBadRequest, "ValidationError", "1 validation error detected: Value null at 'tags' failed to satisfy constraint: Member must not be null")
		}
		next := slices.Clone(u.tags)
		for _, t := range tags {
			next = setTag(next, t)
		}
		if len(next) > MaxTagsPerUser {
			return nil, sender(http.StatusConflict, "LimitExceeded", "The number of tags has reached the maximum limit.")
		}
		u.tags = next
		return nil, nil
	case "UntagUser":
		for i := 1; form.Has(fmt.Sprintf("TagKeys.member.%d", i)); i++ {
			k := form.Get(fmt.Sprintf("TagKeys.member.%d", i))
			u.tags = slices.DeleteFunc(u.tags, func(t Tag) bool { return strings.EqualFold(t.Key, k) })
		}
		return nil, nil
	case "ListUserTags":
		page, next, aerr := paging(form, len(u.tags))
		if aerr != nil {
			return nil, aerr
		}
		out := listTags{Members: []tagMember{}}
		for _, t := range u.tags[page[0]:page[1]] {
			out.Members = append(out.Members, tagMember(t))
		}
		out.IsTruncated, out.Marker = next != "", next
		return out, nil
	}
	return nil, sender(http.StatusBadRequest, "InvalidAction", "Could not find operation %s", action)
}

// paging reads Marker and MaxItems (1-1000, default 100) for a list of n items: the page's bounds and
// the next marker ("" on the last page).
func paging(form url.Values, n int) ([2]int, string, *apiError) {
	maxItems := 100
	if v := form.Get("MaxItems"); v != "" {
		m, err := strconv.Atoi(v)
		if err != nil || m < 1 || m > 1000 {
			return [2]int{}, "", sender(http.StatusBadRequest, "ValidationError", "1 validation error detected: Value at 'maxItems' failed to satisfy constraint")
		}
		maxItems = m
	}
	start := 0
	if v := form.Get("Marker"); v != "" {
		m, err := strconv.Atoi(strings.TrimPrefix(v, "page-"))
		if err != nil || !strings.HasPrefix(v, "page-") || m < 0 || m > n {
			return [2]int{}, "", sender(http.StatusBadRequest, "InvalidInput", "Invalid Marker.")
		}
		start = m
	}
	end := min(start+maxItems, n)
	next := ""
	if end < n {
		next = "page-" + strconv.Itoa(end)
	}
	return [2]int{start, end}, next, nil
}

func setTag(tags []Tag, t Tag) []Tag {
	for i, old := range tags {
		if strings.EqualFold(old.Key, t.Key) {
			tags[i] = t
			return tags
		}
	}
	return append(tags, t)
}

func (s *Server) newKey(userName string) (*Key, *apiError) {
	u := s.users[strings.ToLower(userName)]
	if u == nil {
		return nil, sender(http.StatusNotFound, "NoSuchEntity", "The user with name %s cannot be found.", userName)
	}
	if len(s.keysOf(u.name)) >= MaxKeysPerUser {
		return nil, sender(http.StatusConflict, "LimitExceeded", "Cannot exceed quota for AccessKeysPerUser: %d", MaxKeysPerUser)
	}
	k := &Key{ID: "AKIA" + randomString(16, upperDigits), Secret: randomString(40, secretChars), User: u.name, Status: "Active",
		Created: s.now().UTC().Truncate(time.Second), unpropagated: s.propagation}
	s.keys[k.ID] = k
	s.created++
	return k, nil
}

const (
	upperDigits = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	secretChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
)

func randomString(n int, alphabet string) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
