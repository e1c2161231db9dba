package events

import (
	"errors"
	"github.com/kvrotator/kvrotator/internal/kvnames"
)

// CheckVaultName returns nil if name is a valid Key Vault name (3–24 letters, digits and hyphens,
// starting with a letter, ending with a letter or digit, no consecutive hyphens), or an error that
// quotes the name (cut to 128 characters) and states the rule.
func CheckVaultName(name string) error {
	if kvnames.Vault(name) {
		return nil
	}
	return errors.New(quote(name) + ` is not a valid vault name (3-24 letters, digits and hyphens, starting with a letter, ending with a letter or digit, no "--")`)
}

// CheckSecretName returns nil if name is a valid Key Vault secret name (1–127 letters, digits and
// hyphens), or an error that quotes the name (cut to 128 characters) and states the rule.
func CheckSecretName(name string) error {
	if kvnames.Secret(name) {
		return nil
	}
	return errors.New(quote(name) + " is not a valid secret name (1-127 letters, digits and hyphens)")
}

// CheckVersion returns nil if version is a valid Key Vault object version (32 hexadecimal digits), or
// an error that quotes it (cut to 128 characters). The empty string, which callers may use for "the
// latest version", is not a version: callers that allow it test for it first.
func CheckVersion(version string) error {
	if kvnames.Version(version) {
		return nil
	}
	return errors.New(quote(version) + " is not a valid version (32 hexadecimal digits)")
}
