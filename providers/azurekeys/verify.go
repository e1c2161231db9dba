package azurekeys

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/kvrotator/kvrotator/internal/azstorage"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/internal/httpx"
	"github.com/kvrotator/kvrotator/providers/registry"
)

// verifyMethod is how a new key is checked.
type verifyMethod int

const (
	// verifyListKeys reads the slot back through Resource Manager and compares: proof that the slot
	// holds the value about to be written, though not that the data plane accepts it yet.
	verifyListKeys verifyMethod = iota
	// verifyStorage: Get Blob Service Properties (GET /?restype=service&comp=properties), Shared Key.
	verifyStorage
	// verifyCosmos: Get Database Account (GET /), master-key authorization.
	verifyCosmos
	// verifySearch: Get Service Statistics (GET /servicestats), api-key header.
	verifySearch
)

// The data-plane API versions of the verification calls.
const (
	cosmosDataVersion = "2018-12-31"
	searchDataVersion = "2024-07-01"
)

// verifyDataPlane makes the type's read-only data-plane call with the new key.
func (p *Provider) verifyDataPlane(ctx context.Context, env registry.Azure, c config, s slot, value string) error {
	dns, err := p.endpoints(env)
	if err != nil {
		return err
	}
	secret := value
	if c.format == FormatConnectionString {
		secret = connField(value, "AccountKey")
	}
	if secret == "" {
		return providers.Permanent(&Error{Op: "verify " + s.ID, Resource: c.id.String(), Reason: "the value holds no key to verify"})
	}
	c.known = append(c.known, secret)
	opts := p.clientOptions(env)
	switch c.verify {
	case verifyStorage:
		endpoint := "https://" + host(c, "blob."+dns.Storage) + "/"
		cl, err := azstorage.NewSharedKeyClient(endpoint, strings.ToLower(c.id.Name), secret, &opts)
		if err != nil {
			// Not base64 (the error never quotes the value).
			return providers.Permanent(&Error{Op: "verify " + s.ID, Resource: c.id.String(), Reason: "the key is not base64", Err: err})
		}
		err = cl.ServiceProperties(ctx)
		return dataPlaneError(err, c, s, "GET "+endpoint+"?restype=service&comp=properties")
	case verifyCosmos:
		endpoint := "https://" + host(c, dns.Cosmos) + ":443/"
		keyBytes, err := base64.StdEncoding.DecodeString(secret)
		if err != nil {
			return providers.Permanent(&Error{Op: "verify " + s.ID, Resource: c.id.String(), Reason: "the key is not base64"})
		}
		pl := runtime.NewPipeline(moduleName, moduleVersion, runtime.PipelineOptions{
			PerRetry: []policy.Policy{cosmosMasterKey{key: keyBytes}},
		}, &opts)
		return p.get(ctx, pl, endpoint, nil, c, s)
	case verifySearch:
		endpoint := "https://" + host(c, dns.Search) + "/servicestats?api-version=" + searchDataVersion
		pl := runtime.NewPipeline(moduleName, moduleVersion, runtime.PipelineOptions{}, &opts)
		return p.get(ctx, pl, endpoint, http.Header{"api-key": {secret}}, c, s)
	}
	return nil
}

// get makes a GET through pl and reports any non-2xx answer as a data-plane error.
func (p *Provider) get(ctx context.Context, pl runtime.Pipeline, endpoint string, h http.Header, c config, s slot) error {
	req, err := runtime.NewRequest(ctx, http.MethodGet, endpoint)
	if err != nil {
		return providers.Permanent(err)
	}
	for k, v := range h {
		req.Raw().Header[k] = v
	}
	req.Raw().Header.Set("Accept", "application/json")
	resp, err := pl.Do(req)
	if err == nil && (resp.StatusCode < 200 || resp.StatusCode > 299) {
		err = runtime.NewResponseError(resp)
	}
	return dataPlaneError(err, c, s, "GET "+strings.SplitN(endpoint, "?", 2)[0])
}

// dataPlaneError classifies a failed verification. A new key that is refused (401, 403 with an
// authentication code) is transient: keys take a while to reach every front end, and the engine
// retries Verify through that delay. A resource that refuses keys altogether (shared-key or local
// authentication disabled, a firewall) is permanent, named, with the way out.
func dataPlaneError(err error, c config, s slot, call string) error {
	if err == nil {
		return nil
	}
	e := &Error{Op: "verify " + s.ID + " (" + call + ")", Resource: c.id.String()}
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.RawResponse == nil {
		e.Err, e.Reason = err, "no answer from the data plane (network rules or a private endpoint may keep kvrotator out; "+TagVerify+"="+VerifyListKeys+" checks through Resource Manager instead)"
		return e
	}
	e.Status, e.Code = re.StatusCode, sanitize(re.ErrorCode, 64, c.known...)
	e.Retry = retryAfter(re.RawResponse.Header, time.Now())
	if body, err := runtime.Payload(re.RawResponse); err == nil {
		if code, msg := errorBody(body, c.known...); code != "" || msg != "" {
			if e.Code == "" {
				e.Code = code
			}
			e.Message = msg
		}
	}
	lower := strings.ToLower(e.Code + " " + e.Message)
	switch {
	case strings.Contains(lower, "keybasedauthenticationnotpermitted"),
		strings.Contains(lower, "local authorization is disabled"),
		strings.Contains(lower, "local authentication"):
		e.Reason = "key authentication is disabled on the resource (Storage allowSharedKeyAccess=false, disableLocalAuth): a key rotated here cannot be used; stop rotating it or enable key access"
		return providers.Permanent(e)
	case strings.Contains(lower, "authorizationfailure"), strings.Contains(lower, "firewall"):
		e.Reason = "the resource's network rules refused kvrotator; allow its outbound addresses, or set " + TagVerify + "=" + VerifyListKeys
		return providers.Permanent(e)
	case e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden:
		e.Reason = "the new key was refused (it can take a while to reach every front end)"
		return e
	case e.Status == http.StatusNotFound:
		e.Reason = "the data-plane endpoint does not know the resource (is it in another cloud?)"
		return providers.Permanent(e)
	case httpx.Retryable(e.Status):
		e.Reason = "the data plane is unavailable; try again later"
		return e
	default:
		e.Reason = "unexpected answer"
		return providers.Permanent(e)
	}
}

// verifyByListKeys reads the slot back and compares it with the value about to be written.
func (p *Provider) verifyByListKeys(ctx context.Context, a *armClient, c config, s slot, value string) error {
	keys, err := a.listKeys(ctx, c)
	if err != nil {
		return err
	}
	k, ok := keys[s.ID]
	if !ok {
		return &Error{Op: "verify " + s.ID, Resource: c.id.String(), Reason: "listKeys reported no value for the slot"}
	}
	want, err := p.format(a.env, c, k)
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare([]byte(want), []byte(value)) != 1 {
		return &Error{Op: "verify " + s.ID, Resource: c.id.String(),
			Reason: "the slot no longer holds the new key (was it regenerated again elsewhere?)"}
	}
	return nil
}

// cosmosMasterKey signs a Cosmos DB data-plane request with a master key, once per try (x-ms-date
// is part of the signature): sig = base64(HMAC-SHA256(key, verb\nresourceType\nresourceLink\ndate\n\n)),
// all lower-case but the resource link; for the account itself resourceType and resourceLink are empty.
type cosmosMasterKey struct{ key []byte }

func (k cosmosMasterKey) Do(req *policy.Request) (*http.Response, error) {
	r := req.Raw()
	date := time.Now().UTC().Format(http.TimeFormat)
	resourceType, resourceLink := "", strings.Trim(r.URL.Path, "/")
	if resourceLink != "" {
		// Only the account read is used; anything else would need its own resource type.
		return nil, errors.New("azure-keys: cosmos verification signs only the account read")
	}
	mac := hmac.New(sha256.New, k.key)
	mac.Write([]byte(strings.ToLower(r.Method) + "\n" + resourceType + "\n" + resourceLink + "\n" + strings.ToLower(date) + "\n\n"))
	sig := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	r.Header.Set("x-ms-date", date)
	r.Header.Set("x-ms-version", cosmosDataVersion)
	r.Header.Set("Authorization", url.QueryEscape("type=master&ver=1.0&sig="+sig))
	return req.Next()
}
