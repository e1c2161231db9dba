// Package emulator is a local Azure Key Vault (secrets) that the real Azure SDK clients talk to
// unchanged, the way Azurite serves Azure Storage. kvrotator's tests, its demo and its users run
// against it.
//
// What it serves, on one HTTPS listener (and optional per-vault listeners):
//
//   - The Key Vault secrets REST API, wire-exact: set, get (latest, by version, trailing-slash form),
//     update, list and list versions (pages of 25 with an absolute nextLink), soft delete, get and list
//     deleted, recover, purge, backup and restore; Key Vault's validation limits and error bodies.
//   - Several vaults, told apart by the first label of the host (https://NAME.localhost:PORT) or by a
//     dedicated port.
//   - Authentication like Azure: a 401 challenge that azsecrets accepts with resource verification on,
//     JWT access tokens signed by the emulator and checked for signature, audience and expiry, issued by
//     an App Service managed-identity endpoint (IDENTITY_ENDPOINT / IDENTITY_HEADER) and by an OpenID
//     Connect token endpoint for client-certificate service principals; Azure RBAC roles per identity.
//   - Event Grid delivery as a Key Vault system topic: SecretNewVersionCreated, SecretNearExpiry and
//     SecretExpired, driven by a vault clock that tests advance instead of waiting.
//   - Azure's rate limits (429 Throttled with Retry-After), added latency and scripted faults.
//   - Optional persistence in a data directory, written atomically.
//
// Start one with New and Start, or with `kvrotator emulator`. HTTPClient returns an *http.Client that
// trusts the emulator's CA and resolves NAME.localhost to loopback, for azcore.ClientOptions.Transport.
package emulator
