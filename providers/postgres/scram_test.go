package postgres

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"strings"
	"testing"
)

// RFC 7677 section 3: user "user", password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==, 4096 iterations.
// A server holding the right StoredKey and ServerKey accepts the client's proof and answers with the
// server signature the RFC shows.
func TestSCRAMVerifierMatchesRFC7677(t *testing.T) {
	const (
		saltB64     = "W22ZaJ0SNY7soEsUEjb6gQ=="
		clientFirst = "n=user,r=rOprNGfwEbeRWgbNEkqO"
		serverFirst = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
		clientFinal = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
		proofB64    = "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
		serverSig   = "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
	)
	salt, _ := base64.StdEncoding.DecodeString(saltB64)
	v, err := scramVerifier("pencil", salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	head, keys, ok := strings.Cut(v, saltB64+"$")
	if !ok || head != "SCRAM-SHA-256$4096:" {
		t.Fatalf("verifier %q: want SCRAM-SHA-256$4096:<salt>$<StoredKey>:<ServerKey>", v)
	}
	storedB64, serverB64, ok := strings.Cut(keys, ":")
	if !ok {
		t.Fatalf("verifier %q has no StoredKey:ServerKey", v)
	}
	storedKey, err1 := base64.StdEncoding.DecodeString(storedB64)
	serverKey, err2 := base64.StdEncoding.DecodeString(serverB64)
	if err := errors.Join(err1, err2); err != nil || len(storedKey) != 32 || len(serverKey) != 32 {
		t.Fatalf("keys are not 32-byte base64: %v", err)
	}

	authMessage := clientFirst + "," + serverFirst + "," + clientFinal
	// The server's check of the client (RFC 5802 section 3): H(ClientProof XOR ClientSignature) == StoredKey.
	proof, _ := base64.StdEncoding.DecodeString(proofB64)
	clientSig := hmacSHA256(storedKey, []byte(authMessage))
	clientKey := make([]byte, len(proof))
	for i := range proof {
		clientKey[i] = proof[i] ^ clientSig[i]
	}
	if got := sha256.Sum256(clientKey); !bytes.Equal(got[:], storedKey) {
		t.Error("StoredKey does not accept the RFC's client proof")
	}
	// The server's own signature: HMAC(ServerKey, AuthMessage).
	if !hmac.Equal(hmacSHA256(serverKey, []byte(authMessage)), mustB64(t, serverSig)) {
		t.Error("ServerKey does not produce the RFC's server signature")
	}
}

func mustB64(t *testing.T, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestNewVerifierUsesAFreshSixteenByteSalt(t *testing.T) {
	a, err1 := newVerifier(cryptoRand(), "same password")
	b, err2 := newVerifier(cryptoRand(), "same password")
	if err := errors.Join(err1, err2); err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatal("two verifiers of one password are equal: the salt is not random")
	}
	salt := strings.Split(strings.TrimPrefix(a, "SCRAM-SHA-256$4096:"), "$")[0]
	if n := len(mustB64(t, salt)); n != 16 {
		t.Fatalf("salt is %d bytes, want 16", n)
	}
	if strings.Contains(a, "same password") {
		t.Fatal("the verifier contains the password")
	}
}

func TestGeneratePassword(t *testing.T) {
	seen := map[rune]bool{}
	for range 50 {
		pw, err := generatePassword(cryptoRand())
		if err != nil {
			t.Fatal(err)
		}
		if len(pw) != PasswordLength {
			t.Fatalf("length %d, want %d", len(pw), PasswordLength)
		}
		for _, r := range pw {
			if !strings.ContainsRune(passwordAlphabet, r) {
				t.Fatalf("character %q outside the alphabet", r)
			}
			seen[r] = true
		}
	}
	if len(seen) < len(passwordAlphabet)-2 {
		t.Errorf("2000 characters used only %d of %d letters and digits", len(seen), len(passwordAlphabet))
	}
}

func TestGeneratePasswordRejectsABrokenSource(t *testing.T) {
	if _, err := generatePassword(bytes.NewReader(nil)); err == nil {
		t.Error("an empty source gave a password")
	}
	if _, err := generatePassword(constant(0xff)); err == nil {
		t.Error("a source that only returns 0xff (always rejected) gave a password")
	}
}

type constant byte

func (c constant) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(c)
	}
	return len(p), nil
}

func cryptoRand() io.Reader { return rand.Reader }
