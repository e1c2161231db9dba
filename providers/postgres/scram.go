package postgres

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
)

// SCRAM-SHA-256 parameters of the verifiers the provider writes: PostgreSQL's defaults
// (scram_iterations = 4096 and a 16-byte salt).
const (
	scramIterations = 4096
	scramSaltBytes  = 16
)

// scramVerifier is what PostgreSQL stores for a SCRAM-SHA-256 password (RFC 5802, RFC 7677):
//
//	SCRAM-SHA-256$<iterations>:<base64 salt>$<base64 StoredKey>:<base64 ServerKey>
//
// SaltedPassword = PBKDF2-HMAC-SHA-256(password, salt, iterations); ClientKey = HMAC(SaltedPassword,
// "Client Key"); StoredKey = SHA-256(ClientKey); ServerKey = HMAC(SaltedPassword, "Server Key").
// ALTER ROLE … PASSWORD '<verifier>' stores it as it is, so the password itself never reaches the
// server. The password must need no SASLprep normalisation (the generated ones are ASCII letters and
// digits, which SASLprep leaves alone).
func scramVerifier(password string, salt []byte, iterations int) (string, error) {
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		return "", err
	}
	_, storedKey, serverKey := scramKeys(salted)
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iterations, b64(salt), b64(storedKey), b64(serverKey)), nil
}

// scramKeys derives ClientKey, StoredKey and ServerKey from SaltedPassword (RFC 5802 section 3).
func scramKeys(salted []byte) (clientKey, storedKey, serverKey []byte) {
	clientKey = hmacSHA256(salted, []byte("Client Key"))
	stored := sha256.Sum256(clientKey)
	return clientKey, stored[:], hmacSHA256(salted, []byte("Server Key"))
}

func hmacSHA256(key, msg []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(msg)
	return m.Sum(nil)
}

// passwordAlphabet is what generated passwords are drawn from: letters and digits need no quoting in
// connection strings, URLs or shells, and no SASLprep normalisation.
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

// newVerifier makes a fresh salt and the verifier for password.
func newVerifier(r io.Reader, password string) (string, error) {
	salt := make([]byte, scramSaltBytes)
	if _, err := io.ReadFull(r, salt); err != nil {
		return "", fmt.Errorf("random source: %w", err)
	}
	v, err := scramVerifier(password, salt, scramIterations)
	if err != nil {
		return "", errors.New("computing the SCRAM verifier failed")
	}
	return v, nil
}
