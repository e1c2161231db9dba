package awsiam

import (
	"strings"
	"time"
)

// IAM access keys have no name or description of their own. The IAM console describes a key with a
// tag on its user whose key is the access key id (iam:TagUser, "Permissions required to manage access
// keys", IAM User Guide): kvrotator labels the keys it makes the same way, so that a person sees in the
// console which secret a key belongs to, and so that kvrotator can tell its own keys from anyone
// else's after a crash. The labels (user tag values; IAM allows letters, digits, spaces and _.:/=+-@):
//
//	kvrotator <vault>/<secret> created <idempotency key>   a key a rotation created
//	kvrotator <vault>/<secret> revoked <RFC 3339 time>     a replaced key kvrotator deactivated
//
// and, on the user, while a CreateAccessKey is in flight:
//
//	kvrotator-creating = <vault>/<secret> <idempotency key> <RFC 3339 time>
//
// A person who may tag the user may also delete its keys: the labels give nobody a power they lacked.

// IntentTag is the user tag kvrotator sets just before CreateAccessKey.
const IntentTag = "kvrotator-creating"

const markWord = "kvrotator"

// The states a label records.
const (
	stateCreated = "created"
	stateRevoked = "revoked"
)

// intentWindow bounds how long after (and, for clock skew, before) the intent a key it explains can
// have been created: CreateAccessKey is called right after the intent is tagged and within
// DefaultTimeout.
const (
	intentBefore = 2 * time.Minute
	intentAfter  = 10 * time.Minute
)

// owner is how labels name a secret: "<vault>/<secret>", lower-cased (Key Vault names are
// case-insensitive).
func owner(vault, secret string) string { return strings.ToLower(vault + "/" + secret) }

// mark is a parsed label.
type mark struct {
	owner  string
	state  string
	detail string // the idempotency key (created), the time (revoked)
}

func createdMark(owner, idem string) string {
	return markWord + " " + owner + " " + stateCreated + " " + idem
}

func revokedMark(owner string, at time.Time) string {
	return markWord + " " + owner + " " + stateRevoked + " " + at.UTC().Format(time.RFC3339)
}

// parseMark reads a label; false when v is not one (a person's description, or nothing).
func parseMark(v string) (mark, bool) {
	f := strings.Fields(v)
	if len(f) != 4 || f[0] != markWord || !strings.Contains(f[1], "/") || (f[2] != stateCreated && f[2] != stateRevoked) {
		return mark{}, false
	}
	return mark{owner: f[1], state: f[2], detail: f[3]}, true
}

func intentValue(owner, idem string, at time.Time) string {
	return owner + " " + idem + " " + at.UTC().Format(time.RFC3339)
}

// explains reports whether the intent tag value v says that this secret's rotation idem was creating
// a key when one created at `created` appeared.
func explains(v, owner, idem string, created time.Time) bool {
	f := strings.Fields(v)
	if len(f) != 3 || f[0] != owner || f[1] != idem {
		return false
	}
	at, err := time.Parse(time.RFC3339, f[2])
	return err == nil && !created.Before(at.Add(-intentBefore)) && !created.After(at.Add(intentAfter))
}
