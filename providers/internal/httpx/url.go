package httpx

import (
	"errors"
	"net/url"
	"slices"
	"strings"
)

// URLProblem is the rule a base URL breaks; its Error text is the reason only, in the providers'
// common words, for the caller to put after the setting's name. A provider that explains a rule in its
// own words switches on the value.
type URLProblem int

// The rules ParseBaseURL checks, in the order it checks them.
const (
	URLNotURL      URLProblem = iota + 1 // url.Parse rejects it
	URLNotAbsolute                       // no scheme, or an opaque URL (https:host)
	URLPlainHTTP                         // http to a host that is not a loopback host
	URLScheme                            // neither https nor (allowed) http
	URLNoHost                            // no host name
	URLUserInfo                          // user[:password]@
	URLQuery                             // ?…, even an empty one
	URLFragment                          // #…, even an empty one
	URLPath                              // a "." or ".." segment, or an encoded "/", "\" or "."
)

func (p URLProblem) Error() string {
	switch p {
	case URLNotURL:
		return "not a URL"
	case URLNotAbsolute:
		return "not an absolute URL; use https://host[:port][/path]"
	case URLPlainHTTP:
		return "http is allowed only for 127.0.0.1, localhost and ::1; use https"
	case URLScheme:
		return "scheme must be https"
	case URLNoHost:
		return "no host"
	case URLUserInfo:
		return "must not contain user information"
	case URLQuery:
		return "must not contain a query"
	case URLFragment:
		return "must not contain a fragment"
	case URLPath:
		return `the path must not contain "." or ".." segments, a backslash or an encoded "/", "\" or "."`
	}
	return "not a valid base URL"
}

// cleanPath reports whether an escaped URL path has no dot segments, no backslash and no encoded
// slash, backslash or dot.
func cleanPath(p string) bool {
	lower := strings.ToLower(p)
	if strings.Contains(p, `\`) || strings.Contains(lower, "%2f") || strings.Contains(lower, "%5c") || strings.Contains(lower, "%2e") {
		return false
	}
	for seg := range strings.SplitSeq(p, "/") {
		if seg == "." || seg == ".." {
			return false
		}
	}
	return true
}

// loopbackHosts may be called over plain http when ParseBaseURL allows it: the request never leaves
// the machine.
var loopbackHosts = []string{"127.0.0.1", "localhost", "::1"}

// ParseBaseURL checks a base URL that a provider will append paths to and send a credential to: an
// absolute https URL with a host name and without user information, query or fragment; plain http
// only for 127.0.0.1, localhost and ::1, and only when loopbackHTTP is set. It returns the URL without
// a trailing slash, or the URLProblem it breaks first.
func ParseBaseURL(raw string, loopbackHTTP bool) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", URLNotURL
	}
	switch {
	case !u.IsAbs() || u.Opaque != "":
		return "", URLNotAbsolute
	case loopbackHTTP && u.Scheme == "http" && !slices.Contains(loopbackHosts, strings.ToLower(u.Hostname())):
		return "", URLPlainHTTP
	case u.Scheme != "https" && (!loopbackHTTP || u.Scheme != "http"):
		return "", URLScheme
	case u.Host == "" || u.Hostname() == "":
		return "", URLNoHost
	case u.User != nil:
		return "", URLUserInfo
	case u.RawQuery != "" || u.ForceQuery:
		return "", URLQuery
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return "", URLFragment
	case !cleanPath(u.EscapedPath()):
		// The server would normalise them to another path than the one the operator bound.
		return "", URLPath
	}
	return strings.TrimRight(u.String(), "/"), nil
}

// URLProblemOf is the URLProblem in err, or 0 when there is none.
func URLProblemOf(err error) URLProblem {
	var p URLProblem
	if errors.As(err, &p) {
		return p
	}
	return 0
}
