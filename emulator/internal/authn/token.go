package authn

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Errors returned by Issuer.Validate, matched with errors.Is. Their messages never contain the token.
var (
	// ErrMalformed: the token is not a JWT, or lacks a required claim (exp, oid, aud).
	ErrMalformed = errors.New("malformed access token")
	// ErrSignature: the token is not RS256, or was not signed by this Issuer's key (forged, from
	// another issuer, "alg": "none", HMAC…).
	ErrSignature = errors.New("invalid access token signature")
	// ErrExpired: the token is outside its validity period: expired (no leeway), or its nbf is more
	// than a minute in the future.
	ErrExpired = errors.New("access token expired")
	// ErrAudience: the token's aud is not one of the accepted audiences.
	ErrAudience = errors.New("access token audience not accepted")
)

// nbfLeeway tolerates clock skew for not-before; expiry has no leeway.
const nbfLeeway = time.Minute

// Principal is the identity an access token is issued to.
type Principal struct {
	ObjectID string // oid (and sub)
	ClientID string // appid / azp
	TenantID string // tid
	Name     string // friendly name, for logs (claim app_displayname)
}

// Issuer mints and validates the emulator's access tokens: JWTs signed with RS256 by an RSA key the
// emulator owns, shaped like Microsoft Entra ID v1.0 access tokens. It is safe for concurrent use.
type Issuer struct {
	key *rsa.PrivateKey
	kid string
}

// NewIssuer returns an Issuer signing with key; a nil key is replaced by a new RSA-2048 key.
// NewIssuer panics only if the system random source fails while generating that key.
func NewIssuer(key *rsa.PrivateKey) *Issuer {
	if key == nil {
		var err error
		if key, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(fmt.Sprintf("authn: generate token-signing key: %v", err))
		}
	}
	return &Issuer{key: key, kid: keyID(&key.PublicKey)}
}

// keyID is the key identifier placed in the token header: the base64url SHA-256 of the public key.
func keyID(pub *rsa.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(der)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// LoadOrCreateIssuer returns an Issuer whose key is kept in dir/token-key.pem: loaded if present,
// else generated (RSA-2048) and written atomically with mode 0600, creating dir (mode 0700) if
// needed. An empty dir means an in-memory key.
func LoadOrCreateIssuer(dir string) (*Issuer, error) {
	if dir == "" {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return nil, fmt.Errorf("generate token-signing key: %w", err)
		}
		return NewIssuer(key), nil
	}
	path := filepath.Join(dir, TokenKeyFile)
	ok, err := exists(path)
	if err != nil {
		return nil, err
	}
	if ok {
		b, err := readPEMBlock(path, "PRIVATE KEY", "RSA PRIVATE KEY")
		if err != nil {
			return nil, err
		}
		k, err := parsePrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		rk, isRSA := k.(*rsa.PrivateKey)
		if !isRSA {
			return nil, fmt.Errorf("%s: token-signing key must be RSA, found %T", path, k)
		}
		if rk.N.BitLen() < 2048 {
			return nil, fmt.Errorf("%s: token-signing key must have at least 2048 bits", path)
		}
		return NewIssuer(rk), nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("generate token-signing key: %w", err)
	}
	pemBytes, err := encodePrivateKey(key)
	if err != nil {
		return nil, err
	}
	if err := writeFileAtomic(path, pemBytes, 0o600); err != nil {
		return nil, fmt.Errorf("write token-signing key: %w", err)
	}
	return NewIssuer(key), nil
}

// Issue mints an access token for p with the given audience, valid from now for lifetime (a
// negative lifetime yields an already expired token, for tests). Claims: aud, iss
// "https://sts.windows.net/<tid>/", iat, nbf, exp, oid, sub (= oid), appid, azp, tid, ver "1.0", idtyp "app",
// app_displayname (when p.Name is set); the header carries kid. It returns the token and its expiry
// (exp, whole seconds).
func (i *Issuer) Issue(p Principal, audience string, lifetime time.Duration, now time.Time) (token string, expires time.Time, err error) {
	if audience == "" {
		return "", time.Time{}, errors.New("issue token: empty audience")
	}
	if p.ObjectID == "" {
		return "", time.Time{}, errors.New("issue token: principal has no object id")
	}
	iat := now.Unix()
	exp := now.Add(lifetime).Unix()
	claims := jwt.MapClaims{
		"aud":   audience,
		"iss":   "https://sts.windows.net/" + p.TenantID + "/",
		"iat":   iat,
		"nbf":   iat,
		"exp":   exp,
		"oid":   p.ObjectID,
		"sub":   p.ObjectID,
		"appid": p.ClientID,
		"azp":   p.ClientID,
		"tid":   p.TenantID,
		"ver":   "1.0",
		"idtyp": "app",
	}
	if p.Name != "" {
		claims["app_displayname"] = p.Name
	}
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	t.Header["kid"] = i.kid
	signed, err := t.SignedString(i.key)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign token: %w", err)
	}
	return signed, time.Unix(exp, 0), nil
}

// tokenClaims is what Validate reads from a token.
type tokenClaims struct {
	jwt.RegisteredClaims
	OID         string `json:"oid"`
	AppID       string `json:"appid"`
	AZP         string `json:"azp"`
	TID         string `json:"tid"`
	DisplayName string `json:"app_displayname"`
}

// Validate checks token at time now and returns its principal. It requires alg RS256 and a signature
// by this Issuer's key (ErrSignature), exp after now with no leeway (ErrExpired), nbf not more than a
// minute after now (ErrExpired), and aud equal, ignoring case and a trailing "/", to one of audiences
// (ErrAudience). Anything unparsable, or a token without exp, oid or aud, is ErrMalformed. Error
// messages never include the token.
func (i *Issuer) Validate(token string, audiences []string, now time.Time) (Principal, error) {
	var c tokenClaims
	parser := jwt.NewParser(jwt.WithValidMethods([]string{jwt.SigningMethodRS256.Alg()}), jwt.WithoutClaimsValidation())
	_, err := parser.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		return &i.key.PublicKey, nil
	})
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrTokenMalformed):
		return Principal{}, fmt.Errorf("%w: not a well-formed JWT", ErrMalformed)
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return Principal{}, fmt.Errorf("%w: not an RS256 signature by this emulator's token key", ErrSignature)
	default:
		return Principal{}, fmt.Errorf("%w: cannot parse the token", ErrMalformed)
	}
	switch {
	case c.ExpiresAt == nil:
		return Principal{}, fmt.Errorf("%w: no exp claim", ErrMalformed)
	case c.OID == "":
		return Principal{}, fmt.Errorf("%w: no oid claim", ErrMalformed)
	case len(c.Audience) == 0:
		return Principal{}, fmt.Errorf("%w: no aud claim", ErrMalformed)
	}
	if !now.Before(c.ExpiresAt.Time) {
		return Principal{}, fmt.Errorf("%w: expired at %s", ErrExpired, c.ExpiresAt.UTC().Format(time.RFC3339))
	}
	if c.NotBefore != nil && now.Add(nbfLeeway).Before(c.NotBefore.Time) {
		return Principal{}, fmt.Errorf("%w: not valid before %s", ErrExpired, c.NotBefore.UTC().Format(time.RFC3339))
	}
	if !audienceMatches(c.Audience, audiences) {
		return Principal{}, fmt.Errorf("%w: token audience %q, accepted %q", ErrAudience, strings.Join(c.Audience, " "), audiences)
	}
	p := Principal{ObjectID: c.OID, ClientID: c.AppID, TenantID: c.TID, Name: c.DisplayName}
	if p.ClientID == "" {
		p.ClientID = c.AZP
	}
	return p, nil
}

// audienceMatches reports whether one of have equals one of want, ignoring case and a trailing "/".
func audienceMatches(have, want []string) bool {
	for _, h := range have {
		h = strings.TrimSuffix(h, "/")
		for _, w := range want {
			if w != "" && strings.EqualFold(h, strings.TrimSuffix(w, "/")) {
				return true
			}
		}
	}
	return false
}
