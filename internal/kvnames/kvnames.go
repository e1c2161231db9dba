// Package kvnames holds Azure Key Vault's naming rules in one place, as plain functions: every part
// of kvrotator that accepts a vault name, secret name or version (the emulator, event decoding, the
// vault adapter, configuration, providers that name other secrets) checks them the same way. They
// are loops rather than regular expressions on purpose: a `{1,127}` repetition compiles to a large
// program at package initialisation, which the handler would pay at every cold start.
package kvnames

// Vault reports whether name is a valid Key Vault name: 3–24 letters, digits and hyphens, starting
// with a letter, ending with a letter or digit, no consecutive hyphens.
func Vault(name string) bool {
	if len(name) < 3 || len(name) > 24 || !isLetter(name[0]) || name[len(name)-1] == '-' {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !isLetter(c) && !isDigit(c) && c != '-' {
			return false
		}
		if c == '-' && i > 0 && name[i-1] == '-' {
			return false
		}
	}
	return true
}

// Secret reports whether name is a valid secret name: 1–127 letters, digits and hyphens.
func Secret(name string) bool {
	if len(name) < 1 || len(name) > 127 {
		return false
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; !isLetter(c) && !isDigit(c) && c != '-' {
			return false
		}
	}
	return true
}

// Version reports whether v is a version id as Key Vault generates them: 32 hexadecimal digits.
func Version(v string) bool {
	if len(v) != 32 {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; !isDigit(c) && (c|0x20 < 'a' || c|0x20 > 'f') {
			return false
		}
	}
	return true
}

func isLetter(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }
func isDigit(c byte) bool  { return c >= '0' && c <= '9' }
