// Package keyvault is kvrotator's Azure Key Vault adapter: a rotation.Vault implemented with the real
// azsecrets client, and the construction of the credential that client authenticates with.
//
// # Vault
//
// New binds one vault (https://NAME.vault.azure.net, or the emulator's https://NAME.localhost:PORT)
// to a credential. Construction is cheap and makes no network call; the first request meets Key
// Vault's 401 challenge, which the SDK answers by fetching a token for the resource the vault names
// (challenge-resource verification stays on). Requests go over HTTPS only and are retried by azcore
// on 408, 429 (honouring Retry-After) and 5xx, three times by default.
//
// List reads the latest version's properties of every secret one page (25 secrets) at a time and never
// GETs a secret per item; certificate-backed secrets (managed == true) are skipped.
//
// # Errors
//
// Every error is an *Error naming the operation, the vault and the secret, with the HTTP status and
// the Key Vault error code, e.g.
//
//	keyvault: get secret "db-password" in vault "myvault": 403 Forbidden (ForbiddenByRbac)
//
// The message never contains a response body or a secret value; the SDK's error stays reachable
// through errors.As (for *azcore.ResponseError) and Unwrap. Failures are classified for the engine:
//
//   - 404 (SecretNotFound) matches rotation.ErrNotFound with errors.Is (and is permanent); 403
//     SecretDisabled matches rotation.ErrDisabled;
//   - 408, 429, 5xx (vocab.TransientStatus, the one rule), transport failures and cancelled contexts
//     are transient (returned unwrapped);
//   - every other HTTP status (400, 401, 403, 409, …), authentication refusals by the identity
//     endpoint (4xx), missing credentials and client misconfiguration (a challenge resource that
//     does not match the vault) are vocab.Permanent.
//
// # Credentials
//
// NewCredential builds the credential from a CredentialConfig (usually CredentialConfigFromEnv):
//
//   - managed identity, in Azure (App Service / Functions set IDENTITY_ENDPOINT; user-assigned when
//     AZURE_CLIENT_ID is set);
//   - a service principal with a client certificate, on premises (AZURE_TENANT_ID, AZURE_CLIENT_ID,
//     AZURE_CLIENT_CERTIFICATE_PATH, optional AZURE_CLIENT_CERTIFICATE_PASSWORD and
//     AZURE_AUTHORITY_HOST);
//   - DefaultAzureCredential, for development (Azure CLI and friends).
//
// "auto" (the default, KVROTATOR_CREDENTIAL unset) picks the first that the environment supports, in
// that order. Construction reads the certificate file but makes no network call: tokens are fetched
// when the first vault request needs one.
//
// Client secrets are deliberately not supported, in any mode (and DefaultAzureCredential is refused
// while AZURE_CLIENT_SECRET or AZURE_PASSWORD is set, since it would silently use them). A rotator
// that authenticates with a client secret holds a long-lived shared secret that is itself
// unrotated, readable from app settings and easily leaked: exactly the problem kvrotator exists to
// solve. A managed identity has no secret at all, and a certificate's private key can be kept
// non-exportable in the machine's store and proves possession without ever being sent.
package keyvault
