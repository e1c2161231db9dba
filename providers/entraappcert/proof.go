package entraappcert

import (
	"crypto/sha1"
	"encoding/base64"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// ProofAudience is the proof of possession's aud as Graph's addKey and removeKey pages and the "roll
// keys" how-to document it (Azure AD Graph's application id). One revision of the how-to says
// 00000003-0000-0000-c000-000000000000 (Microsoft Graph's) instead; WithProofAudience changes it.
const ProofAudience = "00000002-0000-0000-c000-000000000000"

// proofLifetime is exp − nbf: Graph wants "nbf + 10 mins".
const proofLifetime = 10 * time.Minute

// proofBackdate is how far before now a proof's nbf is, for a clock slightly ahead of Entra ID's;
// the proof then stays usable for proofLifetime − proofBackdate.
const proofBackdate = time.Minute

// proof is the proof of possession addKey and removeKey require, as Graph documents it: a JWT signed
// (RS256) with the private key of a currently valid certificate of the application — s — with the
// claims aud, iss (the application's object id, not its client id), nbf and exp = nbf + 10 minutes,
// and, in its header, x5t (the base64url SHA-1 thumbprint of the signing certificate) and kid (the
// same thumbprint in hex), as Microsoft's C# sample (X509SigningCredentials) writes them. JWT
// segments are base64url without "=" padding, which Graph requires (Authentication_MissingOrMalformed
// otherwise).
func proof(s signer, objectID, audience string, now time.Time) (string, error) {
	nbf := now.Add(-proofBackdate).Truncate(time.Second)
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"aud": audience,
		"iss": objectID,
		"nbf": nbf.Unix(),
		"exp": nbf.Add(proofLifetime).Unix(),
	})
	sum := sha1.Sum(s.cert.Raw)
	tok.Header["x5t"] = base64.RawURLEncoding.EncodeToString(sum[:])
	tok.Header["kid"] = thumbprint(s.cert)
	return tok.SignedString(s.key)
}
