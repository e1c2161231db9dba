package random

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/kvrotator/kvrotator/providers"
)

// The tags the provider reads.
const (
	TagLength   = "random-length"   // number of characters
	TagAlphabet = "random-alphabet" // alnum, hex, base64url, ascii or custom:<chars>
)

// Length bounds, in characters. Every alphabet is single-byte ASCII, so characters are bytes.
const (
	DefaultLength = 32
	MinLength     = 16
	MaxLength     = 4096
)

// The alphabet names random-alphabet accepts, and the prefix of a custom alphabet.
const (
	AlphabetAlnum     = "alnum"     // A-Z a-z 0-9 (the default)
	AlphabetHex       = "hex"       // 0-9 a-f
	AlphabetBase64URL = "base64url" // A-Z a-z 0-9 - _
	AlphabetASCII     = "ascii"     // printable ASCII 33..126 except " \ `
	AlphabetCustom    = "custom:"   // followed by the characters themselves
)

// MaxCustomChars is the most characters a custom alphabet may list.
const MaxCustomChars = 128

const (
	tagPrefix = "random-"
	// vaultMaxValueBytes is Key Vault's limit on a secret value (25 KB).
	vaultMaxValueBytes = 25 * 1024
	// minPrintable and maxPrintable bound the characters an alphabet may hold: printable ASCII, no space.
	minPrintable = 33
	maxPrintable = 126
)

// The longest value must fit in a Key Vault secret; this fails to compile if it does not.
const _ = uint(vaultMaxValueBytes - MaxLength)

const (
	upper  = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	lower  = "abcdefghijklmnopqrstuvwxyz"
	digits = "0123456789"
)

var builtin = map[string]string{
	AlphabetAlnum:     upper + lower + digits,
	AlphabetHex:       digits + "abcdef",
	AlphabetBase64URL: upper + lower + digits + "-_",
	AlphabetASCII:     printableExcept(`"\` + "`"),
}

// printableExcept returns ASCII 33..126 in order, without the characters of omit.
func printableExcept(omit string) string {
	var b strings.Builder
	for c := byte(minPrintable); c <= maxPrintable; c++ {
		if strings.IndexByte(omit, c) < 0 {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// alphabet is a set of distinct single-byte characters.
type alphabet struct {
	chars  string
	member [256]bool
}

func newAlphabet(chars string) alphabet {
	a := alphabet{chars: chars}
	for i := range len(chars) {
		a.member[chars[i]] = true
	}
	return a
}

// config is the provider's settings for one secret.
type config struct {
	length   int
	alphabet alphabet
}

// parseConfig reads the provider's tags; every problem is a ConfigError, joined if there are several.
func parseConfig(p providers.Params) (config, error) {
	errs := p.CheckTags(Name, tagPrefix, TagLength, TagAlphabet)
	length, err := p.Int(TagLength, DefaultLength, MinLength, MaxLength)
	if err != nil {
		errs = append(errs, err)
	}
	alpha, err := parseAlphabet(p.Get(TagAlphabet))
	if err != nil {
		errs = append(errs, err)
	}
	if err := providers.JoinErrors(errs); err != nil {
		return config{}, err
	}
	return config{length: length, alphabet: alpha}, nil
}

// parseAlphabet reads a random-alphabet value. Names are case-insensitive; custom characters are not.
func parseAlphabet(raw string) (alphabet, error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return newAlphabet(builtin[AlphabetAlnum]), nil
	}
	if chars, ok := builtin[strings.ToLower(s)]; ok {
		return newAlphabet(chars), nil
	}
	if len(s) < len(AlphabetCustom) || !strings.EqualFold(s[:len(AlphabetCustom)], AlphabetCustom) {
		return alphabet{}, providers.ConfigErrorf(TagAlphabet, raw,
			"unknown alphabet; use %s, %s, %s, %s or %s<characters>",
			AlphabetAlnum, AlphabetHex, AlphabetBase64URL, AlphabetASCII, AlphabetCustom)
	}
	chars := s[len(AlphabetCustom):]
	bad := func(format string, args ...any) (alphabet, error) {
		return alphabet{}, providers.ConfigErrorf(TagAlphabet, raw, "custom alphabet: "+format, args...)
	}
	if n := utf8.RuneCountInString(chars); n > MaxCustomChars {
		return bad("has %d characters; at most %d", n, MaxCustomChars)
	}
	var seen [256]bool
	pos := 0
	for _, r := range chars {
		pos++
		if r < minPrintable || r > maxPrintable {
			return bad("character %q at position %d is not printable ASCII (%d..%d, no space)", r, pos, minPrintable, maxPrintable)
		}
		if seen[r] {
			return bad("character %q appears more than once", r)
		}
		seen[r] = true
	}
	if len(chars) < 2 {
		return bad("needs at least 2 distinct characters, has %d", len(chars))
	}
	return newAlphabet(chars), nil
}

// check reports whether v is a value this configuration could have produced. The error names lengths
// and positions, never characters of the value.
func (c config) check(v providers.Value) error {
	s := v.Reveal()
	if len(s) != c.length {
		return providers.Permanent(fmt.Errorf("random: the value has %d characters, want %d", len(s), c.length))
	}
	for i := range len(s) {
		if !c.alphabet.member[s[i]] {
			return providers.Permanent(fmt.Errorf("random: the value has a character outside the alphabet at position %d", i+1))
		}
	}
	return nil
}
