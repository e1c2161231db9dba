// Package authn provides the Key Vault emulator's TLS and identity pieces: everything the real Azure
// SDK for Go (azsecrets, azidentity, MSAL) needs to authenticate against a local emulator exactly as it
// would against Azure.
//
// TLS: CA is a local certificate authority (ECDSA P-256) that signs the emulator's server certificate
// (ServerTLSConfig, with SANs for 127.0.0.1, ::1, localhost and *.localhost). LoadOrCreateCA keeps it in
// a directory across runs; its PEM is what clients trust, through SSL_CERT_FILE or an *http.Client from
// NewClient, which also sends NAME.localhost to the loopback interface (Go does not resolve *.localhost
// on Linux).
//
// Tokens: Issuer mints and validates RS256 JWT access tokens shaped like Microsoft Entra ID v1 tokens
// (aud, iss, oid, appid, tid…). Validate reports failures with the sentinel errors ErrMalformed,
// ErrSignature, ErrExpired and ErrAudience and never echoes the token.
//
// Identity endpoints: Endpoints.Handler serves the two ways the SDK obtains tokens for a local vault:
// the App Service managed-identity protocol (IDENTITY_ENDPOINT / IDENTITY_HEADER, used by
// ManagedIdentityCredential and DefaultAzureCredential) and a minimal Entra ID authority (OpenID
// configuration, instance discovery, v2.0 token endpoint) for ClientCertificateCredential service
// principals, which must set DisableInstanceDiscovery.
//
// Challenge: WWWAuthenticate and ChallengeResource build the 401 challenge a Key Vault client accepts
// with resource verification left on.
package authn
