package random

import (
	"errors"
	"strings"
	"testing"

	"github.com/kvrotator/kvrotator/providers"
)

// configErrors returns the ConfigErrors in err (one, or several joined) and fails if anything else is there.
func configErrors(t *testing.T, err error) []*providers.ConfigError {
	t.Helper()
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []*providers.ConfigError
		for _, e := range j.Unwrap() {
			out = append(out, configErrors(t, e)...)
		}
		return out
	}
	var ce *providers.ConfigError
	if !errors.As(err, &ce) {
		t.Fatalf("error %v (%T) is not a *providers.ConfigError", err, err)
	}
	return []*providers.ConfigError{ce}
}

func TestValidateAccepts(t *testing.T) {
	tests := []struct {
		name   string
		params providers.Params
	}{
		{"nil params", nil},
		{"no tags", providers.Params{}},
		{"only other providers' and engine tags", providers.Params{
			"rotation-provider": "random", "ValidityPeriodDays": "90", "CredentialId": "x", "randomness": "high",
		}},
		{"minimum length", providers.Params{TagLength: "16"}},
		{"maximum length", providers.Params{TagLength: "4096"}},
		{"length with spaces", providers.Params{TagLength: " 64 "}},
		{"empty length means default", providers.Params{TagLength: ""}},
		{"alnum", providers.Params{TagAlphabet: "alnum"}},
		{"hex", providers.Params{TagAlphabet: "hex"}},
		{"base64url", providers.Params{TagAlphabet: "base64url"}},
		{"ascii", providers.Params{TagAlphabet: "ascii"}},
		{"alphabet name in upper case", providers.Params{TagAlphabet: "HEX"}},
		{"alphabet name with spaces", providers.Params{TagAlphabet: " alnum "}},
		{"empty alphabet means default", providers.Params{TagAlphabet: ""}},
		{"custom two characters", providers.Params{TagAlphabet: "custom:01"}},
		{"custom prefix in any case", providers.Params{TagAlphabet: "Custom:xyz"}},
		{"custom with quote, backslash, backtick", providers.Params{TagAlphabet: "custom:\"\\`'"}},
		{"custom every printable character", providers.Params{TagAlphabet: "custom:" + printableExcept("")}},
		{"tag names in mixed case", providers.Params{"Random-Length": "64", "RANDOM-ALPHABET": "base64url"}},
		{"both tags", providers.Params{TagLength: "100", TagAlphabet: "custom:abc"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := New().Validate(tt.params); err != nil {
				t.Fatalf("Validate(%v) = %v, want nil", tt.params, err)
			}
		})
	}
}

func TestValidateRejects(t *testing.T) {
	tests := []struct {
		name    string
		params  providers.Params
		wantTag string // the tag the (first) ConfigError names
		reason  string // a substring of its reason
	}{
		{"length below minimum", providers.Params{TagLength: "15"}, TagLength, "between 16 and 4096"},
		{"length zero", providers.Params{TagLength: "0"}, TagLength, "between 16 and 4096"},
		{"negative length", providers.Params{TagLength: "-32"}, TagLength, "between 16 and 4096"},
		{"length above maximum", providers.Params{TagLength: "4097"}, TagLength, "between 16 and 4096"},
		{"length not a number", providers.Params{TagLength: "long"}, TagLength, "not a whole number"},
		{"length with a fraction", providers.Params{TagLength: "32.5"}, TagLength, "not a whole number"},
		{"length with a unit", providers.Params{TagLength: "32 chars"}, TagLength, "not a whole number"},
		{"length in mixed-case tag", providers.Params{"Random-Length": "8"}, TagLength, "between 16 and 4096"},
		{"unknown alphabet", providers.Params{TagAlphabet: "base64"}, TagAlphabet, "unknown alphabet"},
		{"alphabet with a typo", providers.Params{TagAlphabet: "alphanum"}, TagAlphabet, "unknown alphabet"},
		{"custom without characters", providers.Params{TagAlphabet: "custom:"}, TagAlphabet, "at least 2 distinct characters, has 0"},
		{"custom one character", providers.Params{TagAlphabet: "custom:a"}, TagAlphabet, "at least 2 distinct characters, has 1"},
		{"custom duplicate", providers.Params{TagAlphabet: "custom:abca"}, TagAlphabet, `'a' appears more than once`},
		{"custom only duplicates", providers.Params{TagAlphabet: "custom:aa"}, TagAlphabet, "appears more than once"},
		{"custom with a space", providers.Params{TagAlphabet: "custom:ab c"}, TagAlphabet, `' ' at position 3 is not printable ASCII`},
		{"custom with a tab", providers.Params{TagAlphabet: "custom:ab\tc"}, TagAlphabet, "not printable ASCII"},
		{"custom non-ASCII", providers.Params{TagAlphabet: "custom:abé"}, TagAlphabet, `'é' at position 3 is not printable ASCII`},
		{"custom control character", providers.Params{TagAlphabet: "custom:ab\x7f"}, TagAlphabet, "not printable ASCII"},
		{"custom too long", providers.Params{TagAlphabet: "custom:" + strings.Repeat("ab", 65)}, TagAlphabet, "has 130 characters; at most 128"},
		{"typo in length tag", providers.Params{"random-lenght": "64"}, "random-lenght", "unknown tag"},
		{"encoding is not a tag", providers.Params{"random-encoding": "base64"}, "random-encoding", "unknown tag"},
		{"unknown tag in mixed case", providers.Params{"Random-Charset": "hex"}, "Random-Charset", "unknown tag"},
		{"bare prefix", providers.Params{"random-": "x"}, "random-", "unknown tag"},
		{"same tag in two cases", providers.Params{"random-length": "32", "Random-Length": "64"}, TagLength, "set 2 times"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := New().Validate(tt.params)
			if err == nil {
				t.Fatalf("Validate(%v) = nil, want an error", tt.params)
			}
			if !providers.IsPermanent(err) {
				t.Errorf("error %v is not permanent", err)
			}
			ce := configErrors(t, err)[0]
			if ce.Tag != tt.wantTag {
				t.Errorf("error names tag %q, want %q (%v)", ce.Tag, tt.wantTag, err)
			}
			if !strings.Contains(ce.Reason, tt.reason) {
				t.Errorf("reason %q does not contain %q", ce.Reason, tt.reason)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	err := New().Validate(providers.Params{
		"random-lenght": "64", TagLength: "8", TagAlphabet: "custom:x", "random-encoding": "hex",
	})
	var tags []string
	for _, ce := range configErrors(t, err) {
		tags = append(tags, ce.Tag)
	}
	want := []string{"random-encoding", "random-lenght", TagLength, TagAlphabet}
	if strings.Join(tags, ",") != strings.Join(want, ",") {
		t.Errorf("errors name tags %v, want %v", tags, want)
	}
}

func TestBuiltinAlphabets(t *testing.T) {
	tests := []struct {
		name string
		size int
		has  string
		lack string
	}{
		{AlphabetAlnum, 62, "AZaz09", "-_+/="},
		{AlphabetHex, 16, "09af", "AFg"},
		{AlphabetBase64URL, 64, "AZaz09-_", "+/="},
		{AlphabetASCII, 91, "!'~AZaz09-_+/=#$%&()*,.:;<>?@[]^{|}", "\"\\` \t\x7f"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			chars := builtin[tt.name]
			if len(chars) != tt.size {
				t.Errorf("%d characters, want %d", len(chars), tt.size)
			}
			for _, c := range tt.has {
				if !strings.ContainsRune(chars, c) {
					t.Errorf("lacks %q", c)
				}
			}
			for _, c := range tt.lack {
				if strings.ContainsRune(chars, c) {
					t.Errorf("contains %q", c)
				}
			}
			a, err := parseAlphabet(tt.name)
			if err != nil {
				t.Fatal(err)
			}
			if a.chars != chars {
				t.Errorf("parseAlphabet(%q) = %q", tt.name, a.chars)
			}
			seen := map[rune]bool{}
			for _, c := range chars {
				if seen[c] {
					t.Errorf("%q appears twice", c)
				}
				seen[c] = true
			}
		})
	}
}

func TestMaxLengthFitsInAVaultSecret(t *testing.T) {
	// Every alphabet is single-byte, so the longest value is MaxLength bytes.
	if MaxLength > vaultMaxValueBytes {
		t.Fatalf("MaxLength %d exceeds Key Vault's %d-byte value limit", MaxLength, vaultMaxValueBytes)
	}
}

func FuzzValidate(f *testing.F) {
	for _, s := range []string{"alnum", "hex", "custom:ab", "custom:", "custom:aa", "custom:é", "ASCII", ""} {
		f.Add("32", s)
	}
	f.Add("16", "base64url")
	f.Add("-1", "custom:\x00\x01")
	f.Fuzz(func(t *testing.T, length, alpha string) {
		params := providers.Params{TagLength: length, TagAlphabet: alpha}
		p := New()
		if err := p.Validate(params); err != nil {
			configErrors(t, err)
			return
		}
		req := providers.Request{Params: params}
		cred, err := p.Create(t.Context(), req)
		if err != nil {
			t.Fatalf("Validate accepted %v but Create failed: %v", params, err)
		}
		if err := p.Verify(t.Context(), req, cred); err != nil {
			t.Fatalf("Verify rejected what Create made for %v: %v", params, err)
		}
	})
}
