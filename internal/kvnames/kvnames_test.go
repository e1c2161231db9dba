package kvnames

import (
	"regexp"
	"strings"
	"testing"
)

// The functions must agree with the documented rules, written here as the regular expressions they
// replace.
var (
	vaultRE   = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$`)
	secretRE  = regexp.MustCompile(`^[0-9a-zA-Z-]{1,127}$`)
	versionRE = regexp.MustCompile(`^[0-9a-fA-F]{32}$`)
)

func TestAgainstTheRules(t *testing.T) {
	cases := []string{"", "a", "ab", "abc", "a-b", "a--b", "-ab", "ab-", "1ab", "myvault", "My-Vault-01",
		strings.Repeat("a", 24), strings.Repeat("a", 25), "a_b", "a.b", "a b", "é-vault", "Zz9",
		strings.Repeat("x", 127), strings.Repeat("x", 128), "0123456789abcdef0123456789ABCDEF",
		"0123456789abcdef0123456789abcdeg", "0123456789abcdef0123456789abcde", "@", "[", "`", "{", "/", ":"}
	for _, s := range cases {
		if got, want := Vault(s), vaultRE.MatchString(s) && !strings.Contains(s, "--"); got != want {
			t.Errorf("Vault(%q) = %v, want %v", s, got, want)
		}
		if got, want := Secret(s), secretRE.MatchString(s); got != want {
			t.Errorf("Secret(%q) = %v, want %v", s, got, want)
		}
		if got, want := Version(s), versionRE.MatchString(s); got != want {
			t.Errorf("Version(%q) = %v, want %v", s, got, want)
		}
	}
}

func FuzzAgainstTheRules(f *testing.F) {
	for _, s := range []string{"myvault", "a--b", "0123456789abcdef0123456789abcdef", "x_y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if Vault(s) != (vaultRE.MatchString(s) && !strings.Contains(s, "--")) || Secret(s) != secretRE.MatchString(s) || Version(s) != versionRE.MatchString(s) {
			t.Fatalf("disagreement on %q", s)
		}
	})
}
