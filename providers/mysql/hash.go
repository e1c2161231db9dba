package mysql

import (
	"crypto/sha1"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	"filippo.io/edwards25519"
)

// passwordAlphabet is what generated passwords are drawn from: letters and digits need no quoting in SQL
// literals, URLs, DSNs or shells.
const passwordAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// PasswordLength is the length of generated passwords: 40 characters of 62 is about 238 bits.
const PasswordLength = 40

// generatePassword draws PasswordLength characters uniformly from passwordAlphabet: bytes at or above
// the largest multiple of the alphabet's size are rejected, not folded in with a modulo.
func generatePassword(r io.Reader) (string, error) {
	const n = len(passwordAlphabet)
	const limit = 256 - 256%n
	out := make([]byte, 0, PasswordLength)
	buf := make([]byte, 2*PasswordLength)
	for round := 0; len(out) < PasswordLength; round++ {
		if round == 100 {
			return "", errors.New("random source: it keeps returning the same bytes")
		}
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", fmt.Errorf("random source: %w", err)
		}
		for _, b := range buf {
			if int(b) < limit && len(out) < PasswordLength {
				out = append(out, passwordAlphabet[int(b)%n])
			}
		}
	}
	return string(out), nil
}

// nativeHash is what mysql_native_password stores for password, on MySQL and MariaDB alike: "*" and the
// upper-case hex of SHA1(SHA1(password)), 41 characters. ALTER USER … IDENTIFIED VIA
// mysql_native_password USING '<hash>' (MariaDB) or IDENTIFIED WITH mysql_native_password AS '<hash>'
// (MySQL) stores it as it is, so the password itself never reaches the server.
func nativeHash(password string) string {
	stage1 := sha1.Sum([]byte(password))
	stage2 := sha1.Sum(stage1[:])
	return "*" + strings.ToUpper(hex.EncodeToString(stage2[:]))
}

// ed25519Hash is what MariaDB's ed25519 plugin stores for password: the Ed25519 public key whose secret
// scalar is the clamped first half of SHA-512(password), base64 without padding (43 characters). It is
// the key the driver's client_ed25519 signs with (go-sql-driver/mysql auth.go, authEd25519; MariaDB
// plugin/auth_ed25519/ref10/sign.c). ALTER USER … IDENTIFIED VIA ed25519 USING '<hash>' stores it as it
// is.
func ed25519Hash(password string) (string, error) {
	h := sha512.Sum512([]byte(password))
	s, err := edwards25519.NewScalar().SetBytesWithClamping(h[:32])
	if err != nil {
		return "", err
	}
	a := (&edwards25519.Point{}).ScalarBaseMult(s)
	return base64.RawStdEncoding.EncodeToString(a.Bytes()), nil
}
