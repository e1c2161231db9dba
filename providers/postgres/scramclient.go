package postgres

import (
	"bytes"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"hash"
	"slices"
	"strconv"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// The SASL mechanisms the client speaks.
const (
	scramMechanism     = "SCRAM-SHA-256"
	scramPlusMechanism = "SCRAM-SHA-256-PLUS"
)

// maxSCRAMIterations bounds the iteration count a server may ask for, so that a hostile server cannot
// make the client spend unbounded CPU in PBKDF2 (PostgreSQL's default is 4096).
const maxSCRAMIterations = 10_000_000

// scramClient is the client side of one SCRAM-SHA-256 exchange (RFC 5802, RFC 7677), with
// tls-server-end-point channel binding (RFC 5929) when cbData is set.
type scramClient struct {
	password    string
	gs2Header   string // "n,," without TLS, "y,," with TLS but no binding, "p=tls-server-end-point,," with it
	cbData      []byte
	clientNonce string
	firstBare   string
	salted      []byte
	authMessage []byte
}

// scramError is a server that broke the SCRAM exchange (a nonce, salt, iteration count or signature
// it should not have sent). A server that really holds the login's verifier never does: retrying
// would only hand a possible impostor more client proofs, so it is permanent (errors.go, classify).
type scramError struct{ reason string }

func (e *scramError) Error() string { return "SCRAM: " + e.reason }

// newSCRAMClient starts an exchange for password; tlsUsed and cbData (the server certificate's
// tls-server-end-point hash, nil when the server offers no binding) choose the GS2 header.
func newSCRAMClient(password string, tlsUsed bool, cbData []byte) (*scramClient, error) {
	nonce := make([]byte, 18)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	sc := &scramClient{password: saslprep(password), gs2Header: "n,,", cbData: cbData,
		clientNonce: base64.RawStdEncoding.EncodeToString(nonce)}
	switch {
	case cbData != nil:
		sc.gs2Header = "p=tls-server-end-point,,"
	case tlsUsed:
		sc.gs2Header = "y,,"
	}
	return sc, nil
}

func (sc *scramClient) mechanism() string {
	if sc.cbData != nil {
		return scramPlusMechanism
	}
	return scramMechanism
}

// clientFirst is the client-first-message. The user name is empty: PostgreSQL takes it from the
// startup message.
func (sc *scramClient) clientFirst() []byte {
	sc.firstBare = "n=,r=" + sc.clientNonce
	return []byte(sc.gs2Header + sc.firstBare)
}

// clientFinal reads the server-first-message (r=nonce,s=salt,i=iterations) and returns the
// client-final-message with the proof.
func (sc *scramClient) clientFinal(serverFirst []byte) ([]byte, error) {
	attrs := bytes.Split(serverFirst, []byte(","))
	if len(attrs) < 3 || !bytes.HasPrefix(attrs[0], []byte("r=")) || !bytes.HasPrefix(attrs[1], []byte("s=")) ||
		!bytes.HasPrefix(attrs[2], []byte("i=")) {
		return nil, &scramError{"a malformed server-first-message"}
	}
	nonce := string(attrs[0][2:])
	if len(nonce) <= len(sc.clientNonce) || nonce[:len(sc.clientNonce)] != sc.clientNonce {
		return nil, &scramError{"the server's nonce does not extend the client's"}
	}
	salt, err := base64.StdEncoding.DecodeString(string(attrs[1][2:]))
	if err != nil || len(salt) == 0 {
		return nil, &scramError{"a malformed salt"}
	}
	iterations, err := strconv.Atoi(string(attrs[2][2:]))
	if err != nil || iterations < 1 || iterations > maxSCRAMIterations {
		return nil, &scramError{fmt.Sprintf("iteration count %q refused", attrs[2][2:])}
	}
	sc.salted, err = pbkdf2.Key(sha256.New, sc.password, salt, iterations, sha256.Size)
	if err != nil {
		return nil, err
	}
	withoutProof := "c=" + base64.StdEncoding.EncodeToString(append([]byte(sc.gs2Header), sc.cbData...)) + ",r=" + nonce
	sc.authMessage = []byte(sc.firstBare + "," + string(serverFirst) + "," + withoutProof)
	clientKey, storedKey, _ := scramKeys(sc.salted)
	proof := hmacSHA256(storedKey, sc.authMessage)
	for i := range proof {
		proof[i] ^= clientKey[i]
	}
	return []byte(withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof)), nil
}

// checkServerFinal checks the server-final-message's signature: only a server that holds the
// verifier can compute it.
func (sc *scramClient) checkServerFinal(serverFinal []byte) error {
	if e, ok := bytes.CutPrefix(serverFinal, []byte("e=")); ok {
		return &scramError{fmt.Sprintf("the server reported %q", e)}
	}
	v, ok := bytes.CutPrefix(serverFinal, []byte("v="))
	if !ok {
		return &scramError{"a malformed server-final-message"}
	}
	if i := bytes.IndexByte(v, ','); i >= 0 {
		v = v[:i]
	}
	_, _, serverKey := scramKeys(sc.salted)
	want := base64.StdEncoding.EncodeToString(hmacSHA256(serverKey, sc.authMessage))
	if !hmac.Equal(v, []byte(want)) {
		return &scramError{"the server's signature is wrong (it does not hold the password's verifier)"}
	}
	return nil
}

// tlsServerEndPoint is the tls-server-end-point channel binding data (RFC 5929 section 4.1): the hash
// of the server's certificate with its signature's hash, SHA-256 for MD5 and SHA-1.
func tlsServerEndPoint(state tls.ConnectionState) ([]byte, error) {
	if len(state.PeerCertificates) == 0 {
		return nil, errors.New("no server certificate")
	}
	cert := state.PeerCertificates[0]
	var h hash.Hash
	switch cert.SignatureAlgorithm {
	case x509.MD5WithRSA, x509.SHA1WithRSA, x509.ECDSAWithSHA1, x509.SHA256WithRSA, x509.SHA256WithRSAPSS, x509.ECDSAWithSHA256:
		h = sha256.New()
	case x509.SHA384WithRSA, x509.SHA384WithRSAPSS, x509.ECDSAWithSHA384:
		h = sha512.New384()
	case x509.SHA512WithRSA, x509.SHA512WithRSAPSS, x509.ECDSAWithSHA512:
		h = sha512.New()
	default:
		return nil, fmt.Errorf("no tls-server-end-point hash for %v", cert.SignatureAlgorithm)
	}
	h.Write(cert.Raw)
	return h.Sum(nil), nil
}

// saslprep prepares a password for SCRAM as PostgreSQL does (src/common/saslprep.c, RFC 4013): an
// ASCII password as it is; otherwise non-ASCII spaces become SPACE, characters "commonly mapped to
// nothing" go, the result is NFKC-normalised, and it is used only if it holds no prohibited or (in
// Unicode 3.2) unassigned character and passes the bidirectional check. Otherwise, as PostgreSQL
// does when it stores the password, the raw password is used.
func saslprep(password string) string {
	ascii := true
	for i := 0; i < len(password); i++ {
		ascii = ascii && password[i] < utf8.RuneSelf
	}
	if ascii || !utf8.ValidString(password) {
		return password
	}
	mapped := make([]rune, 0, len(password))
	for _, r := range password {
		switch {
		case inTable(saslprepNonASCIISpace, r):
			mapped = append(mapped, ' ')
		case inTable(saslprepMappedToNothing, r):
		default:
			mapped = append(mapped, r)
		}
	}
	out := []rune(norm.NFKC.String(string(mapped)))
	if len(out) == 0 {
		return password
	}
	randAL, l := false, false
	for _, r := range out {
		if inTable(saslprepProhibited, r) || inTable(saslprepUnassigned, r) {
			return password
		}
		randAL = randAL || inTable(saslprepRandAL, r)
		l = l || inTable(saslprepL, r)
	}
	if randAL && (l || !inTable(saslprepRandAL, out[0]) || !inTable(saslprepRandAL, out[len(out)-1])) {
		return password
	}
	return string(out)
}

// inTable reports whether r is in a table of sorted first-last pairs.
func inTable(table []rune, r rune) bool {
	i, found := slices.BinarySearch(table, r)
	return found || i%2 == 1
}
