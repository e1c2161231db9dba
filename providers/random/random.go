// Package random is kvrotator's provider for generated secrets: values the application owns, such as
// signing keys and internal tokens, where nothing outside the vault has to change. Create draws a fresh
// value from crypto/rand; the new vault version is the whole rotation.
//
// The provider reads two tags (names are case-insensitive, as all tag names are):
//
//   - random-length: the number of characters, 16 to 4096; default 32.
//   - random-alphabet: the characters to draw from, one of the alphabets below; default alnum.
//
// The alphabets (names are case-insensitive):
//
//   - alnum: A-Z a-z 0-9.
//   - hex: 0-9 a-f.
//   - base64url: A-Z a-z 0-9 - _.
//   - ascii: printable ASCII 33..126 except the double quote, backslash and backtick.
//   - custom:<chars>: exactly the given characters, 2 to 128 of them, printable ASCII 33..126, no repeats.
//
// Any other tag whose name starts with "random-" is a configuration error, so a typo such as
// random-lenght is reported instead of silently falling back to a default.
//
// Every character is drawn uniformly from the alphabet: bytes from crypto/rand that would favour the
// first characters of the alphabet (the remainder above the largest multiple of its size) are rejected,
// not folded in with a modulo.
//
// A secret that rotates every 90 days to a 64-character URL-safe value carries these tags:
//
//	rotation-provider  = random
//	ValidityPeriodDays = 90
//	random-length      = 64
//	random-alphabet    = base64url
package random

import (
	"context"
	"crypto/rand"
	"errors"
	"io"

	"github.com/kvrotator/kvrotator/providers"
	"github.com/kvrotator/kvrotator/providers/registry"
)

// Name is the provider's name, the value of a secret's rotation-provider tag.
const Name = "random"

func init() {
	registry.Register(Name, func(registry.Env) (providers.Provider, error) { return New(), nil })
}

// Provider generates random secret values. It holds no mutable state and is safe for concurrent use.
type Provider struct {
	// rand is the source of random bytes; crypto/rand.Reader except in tests.
	rand io.Reader
}

// New returns a Provider that draws from crypto/rand.
func New() *Provider { return &Provider{rand: rand.Reader} }

// Shape is providers.ShapeGenerated: the value is generated and nothing outside the vault changes.
func (*Provider) Shape() providers.Shape { return providers.ShapeGenerated }

// Validate checks the random-length and random-alphabet tags and rejects any other random-* tag. Every
// problem is a *providers.ConfigError; when there are several, they are joined.
func (*Provider) Validate(p providers.Params) error {
	_, err := parseConfig(p)
	return err
}

// Create returns a new value of the configured length, drawn uniformly from the configured alphabet. The
// value always differs from req.Current. CredentialID is empty: a generated value has no identity outside
// the vault. Create is idempotent in the sense the engine needs: it creates nothing outside the vault, so a
// retry leaves nothing behind.
func (p *Provider) Create(ctx context.Context, req providers.Request) (providers.Credential, error) {
	cfg, err := parseConfig(req.Params)
	if err != nil {
		return providers.Credential{}, err
	}
	if err := ctx.Err(); err != nil {
		return providers.Credential{}, err
	}
	// A repeat of the current value is astronomically unlikely from a working generator; a second
	// repeat means the random source is broken, and retrying will not mend it.
	for range 2 {
		v, err := generate(p.rand, cfg.alphabet.chars, cfg.length)
		if err != nil {
			return providers.Credential{}, err
		}
		if v != req.Current.Reveal() {
			return providers.Credential{Value: providers.NewValue(v)}, nil
		}
	}
	return providers.Credential{}, providers.Permanent(errors.New(
		"random: the random source returned the current value twice; refusing to write it again"))
}

// Verify is a self-check: the value must have the configured length and consist only of characters of
// the configured alphabet. A generated value needs no other check; the vault write that follows is the
// real test. A value that fails is a permanent error, since checking again cannot change the outcome.
func (*Provider) Verify(_ context.Context, req providers.Request, cred providers.Credential) error {
	cfg, err := parseConfig(req.Params)
	if err != nil {
		return err
	}
	return cfg.check(cred.Value)
}

// References is empty: a generated value reaches nothing outside the secret.
func (*Provider) References(providers.Params) []providers.Reference { return nil }

// Provider must satisfy the contract.
var _ providers.Provider = (*Provider)(nil)
