package awsiam

import (
	"bufio"
	"encoding/json"
	"strings"
)

// KeyPair is an access key: its id (public, named in errors and tags) and its secret access key
// (never shown).
type KeyPair struct {
	ID     string
	Secret string
}

// ContentType is the content type the secret's versions should carry: the value is a JSON document.
// The engine copies the current version's content type to the new one; set it on the first version.
const ContentType = "application/json"

// maxSecretBytes bounds a secret access key (AWS's are 40 characters).
const maxSecretBytes = 1024

// document is the value kvrotator writes: the JSON that the AWS CLI's and SDKs' credential_process
// reads ({"Version":1,"AccessKeyId":…,"SecretAccessKey":…}), which any other consumer can read as
// plain JSON too.
type document struct {
	Version         int    `json:"Version"`
	AccessKeyID     string `json:"AccessKeyId"`
	SecretAccessKey string `json:"SecretAccessKey"`
}

// Value is the vault value for k.
func (k KeyPair) Value() string {
	b, err := json.Marshal(document{Version: 1, AccessKeyID: k.ID, SecretAccessKey: k.Secret})
	if err != nil {
		panic(err) // strings only: cannot fail
	}
	return string(b)
}

// ParseKeyPair reads an access key from a value: the JSON document kvrotator writes
// ({"AccessKeyId":…,"SecretAccessKey":…}, "Version" 1 if present), or an AWS shared credentials file
// with one profile (aws_access_key_id = …, aws_secret_access_key = …). The string says why the value
// is not one, without quoting it.
func ParseKeyPair(value string) (KeyPair, string) {
	v := strings.TrimSpace(value)
	var k KeyPair
	switch {
	case v == "":
		return k, "it is empty"
	case strings.HasPrefix(v, "{"):
		var d struct {
			Version         *int    `json:"Version"`
			AccessKeyID     *string `json:"AccessKeyId"`
			SecretAccessKey *string `json:"SecretAccessKey"`
			SessionToken    *string `json:"SessionToken"`
		}
		if err := json.Unmarshal([]byte(v), &d); err != nil {
			return k, "it starts with { but is not a JSON object of strings"
		}
		switch {
		case d.Version != nil && *d.Version != 1:
			return k, "its Version is not 1"
		case d.SessionToken != nil && *d.SessionToken != "":
			return k, "it holds temporary credentials (a SessionToken); kvrotator rotates long-term access keys only"
		case d.AccessKeyID == nil || d.SecretAccessKey == nil:
			return k, "it lacks AccessKeyId or SecretAccessKey"
		}
		k = KeyPair{ID: strings.TrimSpace(*d.AccessKeyID), Secret: strings.TrimSpace(*d.SecretAccessKey)}
	default:
		var ok bool
		var why string
		if k, ok, why = parseCredentialsFile(v); !ok {
			return KeyPair{}, why
		}
	}
	switch {
	case !keyIDPattern().MatchString(k.ID):
		return KeyPair{}, "its AccessKeyId is not an access key id (16-128 letters, digits and _)"
	case k.Secret == "" || len(k.Secret) > maxSecretBytes || !printableNoSpace(k.Secret):
		return KeyPair{}, "its SecretAccessKey is empty, too long, or has spaces, control or non-ASCII characters"
	}
	return k, ""
}

// parseCredentialsFile reads an AWS shared credentials file holding one key: [profile] lines are
// allowed, but a second aws_access_key_id is refused (which profile is meant would be a guess).
func parseCredentialsFile(v string) (KeyPair, bool, string) {
	var k KeyPair
	ids, secrets := 0, 0
	sc := bufio.NewScanner(strings.NewReader(v))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";") || strings.HasPrefix(line, "[") {
			continue
		}
		name, val, ok := strings.Cut(line, "=")
		if !ok {
			return k, false, "it is neither a JSON document nor an AWS credentials file (key = value lines)"
		}
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "aws_access_key_id":
			k.ID, ids = strings.TrimSpace(val), ids+1
		case "aws_secret_access_key":
			k.Secret, secrets = strings.TrimSpace(val), secrets+1
		case "aws_session_token", "aws_security_token":
			return KeyPair{}, false, "it holds temporary credentials (a session token); kvrotator rotates long-term access keys only"
		}
	}
	switch {
	case sc.Err() != nil:
		return KeyPair{}, false, "it cannot be read as an AWS credentials file"
	case ids == 0 || secrets == 0:
		return KeyPair{}, false, "it lacks aws_access_key_id or aws_secret_access_key"
	case ids > 1 || secrets > 1:
		return KeyPair{}, false, "it holds more than one access key"
	}
	return k, true, ""
}

// printableNoSpace reports whether s is printable ASCII without spaces.
func printableNoSpace(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}
