package emulator

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
)

// backupMagic starts every backup blob, as ")AzureKeyVaultSecretBackupV1.microsoft.com" starts Azure's.
const backupMagic = "KVEMUSecretBackupV1"

// sealBackup encrypts a secret with all its versions into an opaque blob, base64url without padding as
// Key Vault returns it. Like Azure's, the blob can only be restored by the emulator that made it (or
// one sharing its data directory), and it does not reveal the values it carries.
func (s *Server) sealBackup(e *secretEntry) (string, error) {
	plain, err := json.Marshal(e)
	if err != nil {
		return "", err
	}
	gcm, err := newGCM(s.backupKey)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, gcm.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	out := append([]byte(backupMagic), nonce...)
	out = gcm.Seal(out, nonce, plain, []byte(backupMagic))
	return base64.RawURLEncoding.EncodeToString(out), nil
}

// openBackup reverses sealBackup. Padded base64url is accepted too.
func (s *Server) openBackup(blob string) (*secretEntry, error) {
	raw, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(blob, "="))
	if err != nil {
		return nil, err
	}
	if !bytes.HasPrefix(raw, []byte(backupMagic)) {
		return nil, errors.New("not an emulator backup")
	}
	raw = raw[len(backupMagic):]
	gcm, err := newGCM(s.backupKey)
	if err != nil {
		return nil, err
	}
	if len(raw) < gcm.NonceSize() {
		return nil, errors.New("backup too short")
	}
	plain, err := gcm.Open(nil, raw[:gcm.NonceSize()], raw[gcm.NonceSize():], []byte(backupMagic))
	if err != nil {
		return nil, err
	}
	var e secretEntry
	if err := json.Unmarshal(plain, &e); err != nil {
		return nil, err
	}
	if validateName(e.Name) != nil || len(e.Versions) == 0 {
		return nil, errors.New("backup content invalid")
	}
	return &e, nil
}

func newGCM(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}
