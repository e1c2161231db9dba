package iamtest

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Signature Version 4, as AWS documents it ("Create a signed AWS API request", IAM User Guide): the
// server recomputes the signature of every request from the secret of the key it names and refuses
// a mismatch, as IAM and STS do. Only the Authorization-header form is accepted (the SDK never
// presigns these calls).

const sigV4Algorithm = "AWS4-HMAC-SHA256"

// MaxSkew is how far a request's X-Amz-Date may be from the server's clock (AWS: 15 minutes).
const MaxSkew = 15 * time.Minute

// Authorization is a parsed SigV4 Authorization header.
type Authorization struct {
	AccessKeyID   string
	Date          string // yyyymmdd, from the credential scope
	Region        string
	Service       string
	SignedHeaders []string
	Signature     string
}

// authError is an authentication failure, in AWS's words (the server answers with them).
type authError string

func (e authError) Error() string { return string(e) }

// errSignature is a signature that does not match (the wrong secret, a changed request).
var errSignature = authError("The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")

// ParseAuthorization reads "AWS4-HMAC-SHA256 Credential=AKID/20260102/us-east-1/iam/aws4_request,
// SignedHeaders=host;x-amz-date, Signature=<hex>".
func ParseAuthorization(h string) (Authorization, error) {
	var a Authorization
	rest, ok := strings.CutPrefix(h, sigV4Algorithm+" ")
	if !ok {
		return a, authError("Authorization header requires the AWS4-HMAC-SHA256 algorithm")
	}
	for part := range strings.SplitSeq(rest, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok {
			return a, authError("Authorization header is malformed")
		}
		switch k {
		case "Credential":
			f := strings.Split(v, "/")
			if len(f) != 5 || f[4] != "aws4_request" || f[0] == "" {
				return a, authError("Credential is malformed; expecting \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\"")
			}
			a.AccessKeyID, a.Date, a.Region, a.Service = f[0], f[1], f[2], f[3]
		case "SignedHeaders":
			a.SignedHeaders = strings.Split(v, ";")
		case "Signature":
			a.Signature = v
		}
	}
	if a.AccessKeyID == "" || len(a.SignedHeaders) == 0 || a.Signature == "" {
		return a, authError("Authorization header requires Credential, SignedHeaders and Signature")
	}
	if !sort.StringsAreSorted(a.SignedHeaders) || !contains(a.SignedHeaders, "host") || !contains(a.SignedHeaders, "x-amz-date") {
		return a, authError("SignedHeaders must be sorted and include host and x-amz-date")
	}
	return a, nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Verify checks the signature of r (whose body is body) made with secret, and that its date is within
// MaxSkew of now.
func (a Authorization) Verify(r *http.Request, body []byte, secret string, now time.Time) error {
	amzDate := r.Header.Get("X-Amz-Date")
	t, err := time.Parse("20060102T150405Z", amzDate)
	if err != nil || !strings.HasPrefix(amzDate, a.Date) {
		return authError("X-Amz-Date is missing, malformed or does not match the credential scope date")
	}
	if d := now.Sub(t); d > MaxSkew || d < -MaxSkew {
		return authError("Signature expired: " + amzDate + " is not within 15 minutes of the server's time")
	}
	payload := sha256.Sum256(body)
	payloadHash := hex.EncodeToString(payload[:])
	if h := r.Header.Get("X-Amz-Content-Sha256"); h != "" && h != payloadHash {
		return authError("The provided x-amz-content-sha256 header does not match what was computed.")
	}
	want := Sign(secret, a.Date, a.Region, a.Service, amzDate, CanonicalRequest(r, a.SignedHeaders, payloadHash))
	if !hmac.Equal([]byte(want), []byte(a.Signature)) {
		return errSignature
	}
	return nil
}

// CanonicalRequest is the SigV4 canonical request of r over the signed headers.
func CanonicalRequest(r *http.Request, signed []string, payloadHash string) string {
	var b strings.Builder
	b.WriteString(r.Method + "\n")
	path := r.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	b.WriteString(path + "\n")
	b.WriteString(canonicalQuery(r.URL.Query()) + "\n")
	for _, h := range signed {
		b.WriteString(h + ":" + headerValue(r, h) + "\n")
	}
	b.WriteString("\n" + strings.Join(signed, ";") + "\n" + payloadHash)
	return b.String()
}

// headerValue is a signed header's canonical value: values joined by commas, trimmed, inner runs of
// spaces collapsed. Go keeps Host and Content-Length out of r.Header.
func headerValue(r *http.Request, name string) string {
	var vals []string
	switch name {
	case "host":
		vals = []string{r.Host}
	case "content-length":
		vals = []string{strconv.FormatInt(r.ContentLength, 10)}
	default:
		vals = r.Header.Values(name)
	}
	for i, v := range vals {
		vals[i] = strings.Join(strings.Fields(v), " ")
	}
	return strings.Join(vals, ",")
}

// canonicalQuery sorts the parameters by name, then value, URI-encoding both (RFC 3986 unreserved
// characters kept).
func canonicalQuery(q url.Values) string {
	var pairs []string
	for k, vs := range q {
		for _, v := range vs {
			pairs = append(pairs, uriEncode(k)+"="+uriEncode(v))
		}
	}
	sort.Strings(pairs)
	return strings.Join(pairs, "&")
}

func uriEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
			continue
		}
		b.WriteString("%" + strings.ToUpper(hex.EncodeToString([]byte{c})))
	}
	return b.String()
}

// Sign is the hex signature of a canonical request.
func Sign(secret, date, region, service, amzDate, canonical string) string {
	sum := sha256.Sum256([]byte(canonical))
	scope := date + "/" + region + "/" + service + "/aws4_request"
	toSign := sigV4Algorithm + "\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(sum[:])
	k := hmacSHA256([]byte("AWS4"+secret), date)
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, service)
	k = hmacSHA256(k, "aws4_request")
	return hex.EncodeToString(hmacSHA256(k, toSign))
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}
