package entraappcert

import (
	"bytes"
	"crypto/cipher"
	"crypto/des"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
)

// A PKCS #12 (RFC 7292) encoder for one RSA key and its certificate, without a password, as Key Vault
// stores a certificate's secret with content type application/x-pkcs12.
//
// golang.org/x/crypto/pkcs12 only decodes (and is frozen); the one encoder in Go is a module this
// repository does not use. The archive is written in the profile every consumer reads — Windows and
// .NET, OpenSSL 3 without its legacy provider, Java, and golang.org/x/crypto/pkcs12, which
// azidentity.ParseCertificates uses: the key in a pkcs8ShroudedKeyBag and the certificate in a certBag,
// each encrypted with pbeWithSHAAnd3-KeyTripleDES-CBC, both carrying the certificate's SHA-1 as
// localKeyId, and an HMAC-SHA1 integrity MAC (x/crypto reads neither PBES2 nor SHA-256 MACs). The
// empty password is encoded as the BMPString "" (two zero bytes), as RFC 7292 appendix B.1 says;
// readers that expect no bytes at all try that too. The encryption protects nothing without a
// password: Key Vault's access control protects the secret.

var (
	oidData               = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidEncryptedData      = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 6}
	oidShroudedKeyBag     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 10, 1, 2}
	oidCertBag            = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 10, 1, 3}
	oidX509Certificate    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 22, 1}
	oidPBEWithSHA3KeyTDES = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 1, 3}
	oidLocalKeyID         = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 21}
	oidSHA1               = asn1.ObjectIdentifier{1, 3, 14, 3, 2, 26}
	emptyBMPPassword      = []byte{0, 0}
)

const (
	pkcs12Iterations = 2048 // OpenSSL's default for both the PBE and the MAC
	pkcs12SaltLen    = 8
)

// explicit0 wraps DER in a [0] EXPLICIT tag (a ContentInfo's content, a SafeBag's value).
func explicit0(inner []byte) asn1.RawValue {
	return asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: inner}
}

type p12ContentInfo struct {
	ContentType asn1.ObjectIdentifier
	Content     asn1.RawValue // [0] EXPLICIT (explicit0)
}

type p12EncryptedData struct {
	Version              int
	EncryptedContentInfo p12EncryptedContentInfo
}

type p12EncryptedContentInfo struct {
	ContentType                asn1.ObjectIdentifier
	ContentEncryptionAlgorithm pkix.AlgorithmIdentifier
	EncryptedContent           []byte `asn1:"tag:0,optional"`
}

type p12SafeBag struct {
	ID         asn1.ObjectIdentifier
	Value      asn1.RawValue  // [0] EXPLICIT
	Attributes []p12Attribute `asn1:"set,optional"`
}

type p12Attribute struct {
	ID    asn1.ObjectIdentifier
	Value asn1.RawValue // SET OF
}

type p12CertBag struct {
	ID   asn1.ObjectIdentifier
	Data []byte `asn1:"tag:0,explicit"`
}

type p12EncryptedPrivateKeyInfo struct {
	Algorithm     pkix.AlgorithmIdentifier
	EncryptedData []byte
}

type p12PBEParams struct {
	Salt       []byte
	Iterations int
}

type p12MacData struct {
	Mac        p12DigestInfo
	MacSalt    []byte
	Iterations int `asn1:"optional,default:1"`
}

type p12DigestInfo struct {
	Algorithm pkix.AlgorithmIdentifier
	Digest    []byte
}

type p12PFX struct {
	Version  int
	AuthSafe p12ContentInfo
	MacData  p12MacData
}

// encodePKCS12 returns the DER of a password-less PKCS #12 archive holding key and cert.
func encodePKCS12(key *rsa.PrivateKey, cert *x509.Certificate) ([]byte, error) {
	localKeyID := sha1.Sum(cert.Raw)
	idSet, err := asn1.Marshal(localKeyID[:])
	if err != nil {
		return nil, err
	}
	attrs := []p12Attribute{{ID: oidLocalKeyID, Value: asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagSet, IsCompound: true, Bytes: idSet}}}

	// The certificate, in an encrypted safe.
	certBag, err := asn1.Marshal(p12CertBag{ID: oidX509Certificate, Data: cert.Raw})
	if err != nil {
		return nil, err
	}
	certSafe, err := asn1.Marshal([]p12SafeBag{{ID: oidCertBag, Value: explicit0(certBag), Attributes: attrs}})
	if err != nil {
		return nil, err
	}
	certAlg, certCiphertext, err := pbeEncrypt(certSafe)
	if err != nil {
		return nil, err
	}
	encData, err := asn1.Marshal(p12EncryptedData{Version: 0, EncryptedContentInfo: p12EncryptedContentInfo{
		ContentType: oidData, ContentEncryptionAlgorithm: certAlg, EncryptedContent: certCiphertext}})
	if err != nil {
		return nil, err
	}

	// The key, shrouded, in a plain data safe.
	p8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	keyAlg, keyCiphertext, err := pbeEncrypt(p8)
	if err != nil {
		return nil, err
	}
	shrouded, err := asn1.Marshal(p12EncryptedPrivateKeyInfo{Algorithm: keyAlg, EncryptedData: keyCiphertext})
	if err != nil {
		return nil, err
	}
	keySafe, err := asn1.Marshal([]p12SafeBag{{ID: oidShroudedKeyBag, Value: explicit0(shrouded), Attributes: attrs}})
	if err != nil {
		return nil, err
	}
	keySafeOctets, err := asn1.Marshal(keySafe)
	if err != nil {
		return nil, err
	}

	authSafe, err := asn1.Marshal([]p12ContentInfo{
		{ContentType: oidEncryptedData, Content: explicit0(encData)},
		{ContentType: oidData, Content: explicit0(keySafeOctets)},
	})
	if err != nil {
		return nil, err
	}
	authSafeOctets, err := asn1.Marshal(authSafe)
	if err != nil {
		return nil, err
	}

	macSalt, err := randomBytes(pkcs12SaltLen)
	if err != nil {
		return nil, err
	}
	mac := hmac.New(sha1.New, pkcs12KDF(emptyBMPPassword, macSalt, 3, pkcs12Iterations, sha1.Size))
	mac.Write(authSafe)
	return asn1.Marshal(p12PFX{
		Version:  3,
		AuthSafe: p12ContentInfo{ContentType: oidData, Content: explicit0(authSafeOctets)},
		MacData: p12MacData{
			Mac:     p12DigestInfo{Algorithm: pkix.AlgorithmIdentifier{Algorithm: oidSHA1, Parameters: asn1.NullRawValue}, Digest: mac.Sum(nil)},
			MacSalt: macSalt, Iterations: pkcs12Iterations,
		},
	})
}

// pbeEncrypt encrypts plaintext with pbeWithSHAAnd3-KeyTripleDES-CBC under the empty password, with a
// fresh salt, and returns the algorithm identifier with its parameters.
func pbeEncrypt(plaintext []byte) (pkix.AlgorithmIdentifier, []byte, error) {
	salt, err := randomBytes(pkcs12SaltLen)
	if err != nil {
		return pkix.AlgorithmIdentifier{}, nil, err
	}
	params, err := asn1.Marshal(p12PBEParams{Salt: salt, Iterations: pkcs12Iterations})
	if err != nil {
		return pkix.AlgorithmIdentifier{}, nil, err
	}
	block, err := des.NewTripleDESCipher(pkcs12KDF(emptyBMPPassword, salt, 1, pkcs12Iterations, 24))
	if err != nil {
		return pkix.AlgorithmIdentifier{}, nil, err
	}
	iv := pkcs12KDF(emptyBMPPassword, salt, 2, pkcs12Iterations, block.BlockSize())
	pad := block.BlockSize() - len(plaintext)%block.BlockSize()
	data := append(bytes.Clone(plaintext), bytes.Repeat([]byte{byte(pad)}, pad)...)
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(data, data)
	return pkix.AlgorithmIdentifier{Algorithm: oidPBEWithSHA3KeyTDES, Parameters: asn1.RawValue{FullBytes: params}}, data, nil
}

// pkcs12KDF is RFC 7292 appendix B.2's key derivation with SHA-1 (u = 20, v = 64): id 1 makes a
// key, 2 an IV, 3 a MAC key. password is the BMPString with its two terminating zero bytes.
func pkcs12KDF(password, salt []byte, id byte, iterations, size int) []byte {
	const v = 64
	fill := func(b []byte) []byte {
		if len(b) == 0 {
			return nil
		}
		out := make([]byte, v*((len(b)+v-1)/v))
		for i := range out {
			out[i] = b[i%len(b)]
		}
		return out
	}
	d := bytes.Repeat([]byte{id}, v)
	in := append(fill(salt), fill(password)...)
	var out []byte
	for {
		h := sha1.New()
		h.Write(d)
		h.Write(in)
		a := h.Sum(nil)
		for range iterations - 1 {
			sum := sha1.Sum(a)
			a = sum[:]
		}
		out = append(out, a...)
		if len(out) >= size {
			return out[:size]
		}
		// I_j = (I_j + B + 1) mod 2^(8v) for every v-byte block of I, B being A repeated to v bytes.
		b := fill(a)
		for j := 0; j < len(in); j += v {
			carry := 1
			for k := v - 1; k >= 0; k-- {
				sum := int(in[j+k]) + int(b[k]) + carry
				in[j+k], carry = byte(sum), sum>>8
			}
		}
	}
}

func randomBytes(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("reading random bytes: %w", err)
	}
	return b, nil
}
