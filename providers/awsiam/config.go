package awsiam

import (
	"errors"
	"regexp"
	"strings"
	"sync"

	"github.com/kvrotator/kvrotator/internal/kvnames"
	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/internal/httpx"
)

// The tags the provider reads. Names are case-insensitive.
const (
	// TagUser is the IAM user whose access key the secret holds (kind login).
	TagUser = "aws-iam-user"
	// TagAccount is the 12-digit AWS account the user and the admin key belong to (kind account).
	TagAccount = "aws-iam-account"
	// TagAdminSecret names another secret of the same vault whose value is the admin access key pair
	// (kind secret). It is the NAME of that secret, never the key.
	TagAdminSecret = "aws-iam-admin-secret"
	// TagPartition selects AWS's own endpoints: aws (default), aws-us-gov or aws-cn.
	TagPartition = "aws-iam-partition"
	// TagIAMURL overrides the IAM endpoint (kind url; AWS's own endpoint for the partition needs no
	// binding, any other URL does).
	TagIAMURL = "aws-iam-url"
	// TagSTSURL overrides the STS endpoint the new key is verified at (kind url, as TagIAMURL).
	TagSTSURL = "aws-iam-sts-url"
	// TagRevoke says what revocation does to the replaced key: deactivate (default; the key is deleted
	// by the next rotation, which needs its place) or delete (deactivate, then delete at once).
	TagRevoke = "aws-iam-revoke"
)

// The revocation modes (TagRevoke).
const (
	RevokeDeactivate = "deactivate"
	RevokeDelete     = "delete"
)

const tagPrefix = "aws-iam-"

// Partition is an AWS partition's endpoints: AWS's own, taken from the endpoint rules of
// aws-sdk-go-v2's service/iam and service/sts (the global IAM endpoint and its signing region; the
// regional STS endpoint of that region).
type Partition struct {
	Name   string // the ARN partition: aws, aws-us-gov, aws-cn
	Region string // the signing region of both endpoints
	IAMURL string
	STSURL string
}

// partitions are the partitions the provider knows. Others (the isolated and sovereign ones) are not
// offered: an unknown name is a configuration error.
var partitions = map[string]Partition{
	"aws":        {Name: "aws", Region: "us-east-1", IAMURL: "https://iam.amazonaws.com", STSURL: "https://sts.us-east-1.amazonaws.com"},
	"aws-us-gov": {Name: "aws-us-gov", Region: "us-gov-west-1", IAMURL: "https://iam.us-gov.amazonaws.com", STSURL: "https://sts.us-gov-west-1.amazonaws.com"},
	"aws-cn":     {Name: "aws-cn", Region: "cn-north-1", IAMURL: "https://iam.cn-north-1.amazonaws.com.cn", STSURL: "https://sts.cn-north-1.amazonaws.com.cn"},
}

var (
	// userNamePattern is IAM's user name rule: 1-64 of letters, digits and _+=,.@-.
	userNamePattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[\w+=,.@-]{1,64}$`) })
	// accountPattern is an AWS account id.
	accountPattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[0-9]{12}$`) })
	// keyIDPattern is IAM's access key id rule ([\w]+, 16-128 characters). It becomes the CredentialId
	// tag and a user tag's key; it excludes "/" and "+", so a secret access key put in CredentialId by
	// mistake is (almost always) not taken for an id, nor quoted.
	keyIDPattern = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^\w{16,128}$`) })
)

// Partitions returns (a copy of) the partitions the provider knows, by name.
func Partitions() map[string]Partition {
	out := make(map[string]Partition, len(partitions))
	for k, v := range partitions {
		out[k] = v
	}
	return out
}

// config is the provider's settings for one secret.
type config struct {
	user        string
	account     string
	adminSecret string
	partition   Partition
	iamURL      string // without a trailing slash
	stsURL      string
	revoke      string
}

// userARN is the user's ARN (for messages and the README's policy), without its path.
func (c config) userARN() string {
	return "arn:" + c.partition.Name + ":iam::" + c.account + ":user/" + c.user
}

// parseConfig reads the provider's tags; every problem is a ConfigError, joined if there are several.
func parseConfig(p providers.Params) (config, error) {
	errs := p.CheckTags(Name, tagPrefix, TagUser, TagAccount, TagAdminSecret, TagPartition, TagIAMURL, TagSTSURL, TagRevoke)
	var c config

	c.user = strings.TrimSpace(p.Get(TagUser))
	switch {
	case c.user == "":
		errs = append(errs, providers.ConfigErrorf(TagUser, "", "missing: set it to the name of the IAM user whose access key the secret holds"))
	case !userNamePattern().MatchString(c.user):
		errs = append(errs, providers.ConfigErrorf(TagUser, quoteShort(c.user), "not an IAM user name (1-64 letters, digits and _+=,.@-; no path)"))
	}

	c.account = strings.TrimSpace(p.Get(TagAccount))
	switch {
	case c.account == "":
		errs = append(errs, providers.ConfigErrorf(TagAccount, "", "missing: set it to the 12-digit id of the AWS account the user belongs to"))
	case !accountPattern().MatchString(c.account):
		errs = append(errs, providers.ConfigErrorf(TagAccount, quoteShort(c.account), "not an AWS account id (12 digits)"))
	}

	c.adminSecret = strings.TrimSpace(p.Get(TagAdminSecret))
	switch {
	case c.adminSecret == "":
		errs = append(errs, providers.ConfigErrorf(TagAdminSecret, "",
			"missing: set it to the name of the secret, in the same vault, that holds the access key kvrotator manages the user's keys with"))
	case !kvnames.Secret(c.adminSecret):
		// Not repeated: someone may have put the key itself in the tag.
		errs = append(errs, providers.ConfigErrorf(TagAdminSecret, "",
			"not a Key Vault secret name (1-127 letters, digits and hyphens); the tag names the secret, it never holds the key"))
	}

	name := strings.ToLower(strings.TrimSpace(p.Get(TagPartition)))
	if name == "" {
		name = "aws"
	}
	part, ok := partitions[name]
	if !ok {
		errs = append(errs, providers.ConfigErrorf(TagPartition, quoteShort(name), "must be aws, aws-us-gov or aws-cn"))
	}
	c.partition = part

	c.iamURL, c.stsURL = part.IAMURL, part.STSURL
	for _, u := range []struct {
		tag string
		dst *string
	}{{TagIAMURL, &c.iamURL}, {TagSTSURL, &c.stsURL}} {
		raw := strings.TrimSpace(p.Get(u.tag))
		if raw == "" {
			continue
		}
		base, err := parseBaseURL(raw)
		if err != nil {
			shown := raw
			if strings.Contains(raw, "@") {
				shown = "(not shown: it may contain user information)"
			}
			errs = append(errs, providers.ConfigErrorf(u.tag, shown, "%s", err))
		}
		*u.dst = base
	}

	c.revoke = strings.ToLower(strings.TrimSpace(p.Get(TagRevoke)))
	switch c.revoke {
	case "":
		c.revoke = RevokeDeactivate
	case RevokeDeactivate, RevokeDelete:
	default:
		errs = append(errs, providers.ConfigErrorf(TagRevoke, quoteShort(c.revoke), "must be %s (the default) or %s", RevokeDeactivate, RevokeDelete))
	}

	if err := providers.JoinErrors(errs); err != nil {
		return config{}, err
	}
	return c, nil
}

// parseBaseURL checks an endpoint (httpx.ParseBaseURL: https; http only for 127.0.0.1, localhost and
// ::1, for tests; no user information, query or fragment) and returns it without a trailing slash. A
// path is refused: the Query protocol posts to "/" of the endpoint.
func parseBaseURL(raw string) (string, error) {
	base, err := httpx.ParseBaseURL(raw, true)
	switch httpx.URLProblemOf(err) {
	case 0:
	case httpx.URLNotAbsolute:
		return "", errors.New("not an absolute URL; use https://host[:port]")
	case httpx.URLPlainHTTP:
		return "", errors.New("http is allowed only for 127.0.0.1, localhost and ::1 (tests); use https")
	case httpx.URLUserInfo:
		return "", errors.New("must not contain user information; the admin key signs the calls")
	default:
		return "", err
	}
	if i := strings.Index(base, "://"); strings.Contains(base[i+3:], "/") {
		return "", errors.New("must not contain a path: the AWS Query API is served at the endpoint's root (https://host[:port])")
	}
	return base, nil
}

// quoteShort cuts s to 64 characters (tags hold configuration, but keep errors short).
func quoteShort(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return s
}
