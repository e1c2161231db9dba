package azstorage

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
)

// sharedKey signs requests with an account key: "Authorization: SharedKey <account>:<signature>", the
// HMAC-SHA256 of the string-to-sign of the Blob service (version 2009-09-19 and later), as documented in
// "Authorize with Shared Key" (learn.microsoft.com/rest/api/storageservices/authorize-with-shared-key).
type sharedKey struct {
	account string
	key     []byte
}

func newSharedKey(account, key string) (*sharedKey, error) {
	if account == "" {
		return nil, errors.New("azstorage: no account name for the account key")
	}
	b, err := base64.StdEncoding.DecodeString(key)
	if err != nil || len(b) == 0 {
		return nil, errors.New("azstorage: the account key is not base64")
	}
	return &sharedKey{account: account, key: b}, nil
}

// Do implements policy.Policy.
func (s *sharedKey) Do(req *policy.Request) (*http.Response, error) {
	raw := req.Raw()
	if raw.Header.Get("x-ms-date") == "" {
		raw.Header.Set("x-ms-date", time.Now().UTC().Format(http.TimeFormat))
	}
	mac := hmac.New(sha256.New, s.key)
	mac.Write([]byte(s.stringToSign(raw)))
	raw.Header.Set("Authorization", "SharedKey "+s.account+":"+base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	return req.Next()
}

// stringToSign is the Blob service's string-to-sign of a request.
func (s *sharedKey) stringToSign(r *http.Request) string {
	h := r.Header
	length := h.Get("Content-Length")
	if length == "0" {
		length = ""
	}
	var b strings.Builder
	for _, v := range []string{
		r.Method, h.Get("Content-Encoding"), h.Get("Content-Language"), length, h.Get("Content-MD5"),
		h.Get("Content-Type"), "" /* Date: x-ms-date is sent */, h.Get("If-Modified-Since"), h.Get("If-Match"),
		h.Get("If-None-Match"), h.Get("If-Unmodified-Since"), h.Get("Range"),
	} {
		b.WriteString(v)
		b.WriteByte('\n')
	}
	// Canonicalized headers: x-ms-* in lower case, sorted, "name:value\n". kvrotator's header names are
	// ASCII letters, digits and hyphens, for which Azure's collation is byte order.
	ms := map[string][]string{}
	var names []string
	for k, vs := range h {
		if lk := strings.ToLower(k); strings.HasPrefix(lk, "x-ms-") {
			if _, ok := ms[lk]; !ok {
				names = append(names, lk)
			}
			ms[lk] = append(ms[lk], vs...)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		b.WriteString(n)
		b.WriteByte(':')
		b.WriteString(strings.Join(ms[n], ","))
		b.WriteByte('\n')
	}
	// Canonicalized resource: /<account><path>, then each query parameter in lower case, sorted, with
	// its values sorted.
	b.WriteByte('/')
	b.WriteString(s.account)
	if p := r.URL.EscapedPath(); p != "" {
		b.WriteString(p)
	} else {
		b.WriteByte('/')
	}
	q, _ := url.ParseQuery(r.URL.RawQuery)
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		vs := q[k]
		sort.Strings(vs)
		b.WriteByte('\n')
		b.WriteString(strings.ToLower(k))
		b.WriteByte(':')
		b.WriteString(strings.Join(vs, ","))
	}
	return b.String()
}

// ErrConnectionString is wrapped by the errors of NewClientFromConnectionString. Its messages name what
// is missing or wrong, never a value of the string.
var ErrConnectionString = errors.New("not a usable storage connection string")

// NewClientFromConnectionString returns a client of the blob service a connection string names:
// AccountName with AccountKey (Shared Key), or SharedAccessSignature; the endpoint from BlobEndpoint,
// else https://<AccountName>.blob.<EndpointSuffix> (DefaultEndpointsProtocol, default https; suffix
// default core.windows.net). Keys are case-sensitive, as the Azure SDKs read them.
func NewClientFromConnectionString(cs string, o *azcore.ClientOptions) (*Client, error) {
	fields := map[string]string{}
	for part := range strings.SplitSeq(strings.TrimRight(strings.TrimSpace(cs), ";"), ";") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("%w: a part is not key=value", ErrConnectionString)
		}
		fields[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	protocol, suffix := "https", "core.windows.net"
	if v, ok := fields["DefaultEndpointsProtocol"]; ok {
		protocol = v
	}
	if v, ok := fields["EndpointSuffix"]; ok {
		suffix = v
	}
	account, hasAccount := fields["AccountName"]
	var serviceURL string
	if v, ok := fields["BlobEndpoint"]; ok {
		serviceURL = v
	} else if hasAccount {
		serviceURL = protocol + "://" + account + ".blob." + suffix
	} else {
		return nil, fmt.Errorf("%w: it needs AccountName or BlobEndpoint", ErrConnectionString)
	}
	if !strings.HasSuffix(serviceURL, "/") {
		serviceURL += "/" // as the Azure SDKs (and the portal) write it
	}
	if key, ok := fields["AccountKey"]; ok && hasAccount {
		sk, err := newSharedKey(account, key)
		if err != nil {
			return nil, fmt.Errorf("%w: AccountKey is not base64", ErrConnectionString)
		}
		c, err := newClient(serviceURL, "", sk, o)
		if err != nil {
			return nil, fmt.Errorf("%w: BlobEndpoint is not an http(s) URL", ErrConnectionString)
		}
		return c, nil
	}
	if sas, ok := fields["SharedAccessSignature"]; ok && sas != "" {
		c, err := newClient(serviceURL, sas, nil, o)
		if err != nil {
			return nil, fmt.Errorf("%w: BlobEndpoint is not an http(s) URL", ErrConnectionString)
		}
		return c, nil
	}
	return nil, fmt.Errorf("%w: it needs AccountName with AccountKey, or SharedAccessSignature", ErrConnectionString)
}
