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
//     dedicated port. The TLS certificate names every vault (NAME.localhost) besides *.localhost,
//     which some clients (Node.js) refuse.
//   - Authentication like Azure: a 401 challenge that azsecrets accepts with resource verification on,
//     JWT access tokens signed by the emulator and checked for signature, audience and expiry, issued by
//     an App Service managed-identity endpoint (IDENTITY_ENDPOINT / IDENTITY_HEADER) and by an OpenID
//     Connect token endpoint for client-certificate service principals; Azure RBAC roles per identity.
//     IDENTITY_HEADER is random for each run unless Config.IdentityHeader sets it (IdentityHeader).
//   - Event Grid delivery as a Key Vault system topic: SecretNewVersionCreated, SecretNearExpiry and
//     SecretExpired, driven by a vault clock that tests advance instead of waiting.
//   - Azure's rate limits (429 Throttled with Retry-After), added latency and scripted faults
//     (FaultRule, ParseFaultRule): an error status, a dropped connection before the call is applied
//     (drop=true), or the call applied and then its answer dropped (drop=after, the timeout after
//     commit that makes a retrying client write twice).
//   - An audit log and a Log Analytics query endpoint (below).
//   - Optional persistence in a data directory, written atomically.
//
// # Audit log
//
// Every data-plane request to a vault that gets an answer (successes and failures: 401, 403, 404, 429,
// scripted error statuses), and every call applied under a drop=after fault, is recorded as Key Vault's
// resource log records it in the AZKVAuditLogs table (AuditRecord): TimeGenerated (the vault clock, UTC),
// OperationName (SecretGet, SecretSet, SecretList, SecretListVersions, SecretUpdate, SecretDelete,
// SecretRecover, SecretPurge, SecretBackup, SecretRestore, SecretListDeleted, SecretGetDeleted), Id (the
// secret id with the version actually served, the latest resolved; the collection for lists),
// RequestUri, Identity ({"claim":{"http://schemas.microsoft.com/identity/claims/objectidentifier":oid,
// "appid":client id}} from the validated token; {} without one), CallerIpAddress, HttpStatusCode,
// ResultSignature, ResultType, _ResourceId (lower case), CorrelationId, ClientInfo, OperationVersion and
// DurationMs. Requests to a host that names no vault and connections dropped before the call are not
// recorded. The last Config.AuditLogSize records are kept (default 100,000); with a data directory they
// are appended to DATA/audit.jsonl and survive restarts. Server.AuditLog and GET /_emulator/audit
// return them.
//
// # Log Analytics query endpoint
//
// The shared listener serves the Log Analytics query API (version 2022-10-27) as the azlogs client
// calls it: POST /v1/workspaces/{workspaceId}/query with {"query":"…","timespan":"…"} (QueryWorkspace),
// and POST /v1/{vault resource id}/query (QueryResource, that vault's records only). Point azlogs at it
// with Cloud.Services[azlogs.ServiceName] = {Audience: LogsAudience, Endpoint: LogsEndpoint()}. The
// caller needs an emulator token for https://api.loganalytics.io (401 AuthenticationFailed with a
// Bearer challenge otherwise) and, if Config.LogReaders is set, must be one of them (403
// InsufficientAccessError). Config.Workspaces lists the workspaces (default DefaultWorkspaceID;
// WorkspaceID returns the first); others are 404 PathNotFoundError. Each workspace holds the records of
// every vault in the table AZKVAuditLogs. The timespan (ISO 8601: start/end, start/duration,
// duration/end, or a duration ending at the vault clock's now) keeps start <= TimeGenerated < end. The
// answer is {"tables":[{"name":"PrimaryResult","columns":[…],"rows":[…]}]}: datetimes as RFC 3339 UTC
// strings, int and long as numbers, dynamic values as their JSON text (as Log Analytics sends them).
// With "Prefer: include-statistics=true" statistics are added.
//
// Queries use a hand-written KQL subset (package internal/kql), enough for kvrotator's two queries
// ("who read this secret", "who read any secret of this vault"):
//
//	AZKVAuditLogs
//	| where OperationName == "SecretGet" and HttpStatusCode == 200 and _ResourceId endswith "/vaults/myvault"
//	| where Id contains "/secrets/db-password/" or Id endswith "/secrets/db-password"
//	| extend ObjectId = tostring(coalesce(Identity.claim.oid, Identity.claim["http://schemas.microsoft.com/identity/claims/objectidentifier"])), AppId = tostring(Identity.claim.appid)
//	| summarize LastRead = max(TimeGenerated), Reads = count() by ObjectId, AppId, CallerIpAddress, Id
//
// Supported: the table name, then | where (or filter), | extend NAME = EXPR, …, | project COLUMN or
// NAME = EXPR, …, | summarize [NAME =] count() | dcount(x) | max(x) | min(x), … [by COLUMN or
// NAME = EXPR, …], | take N, | limit N, | order by / sort by EXPR [asc|desc] [nulls first|last], ….
// Predicates combine and, or, not(…) and parentheses over ==, != (case-sensitive), =~, !~, contains,
// startswith, endswith, has (case-insensitive; !negated and _cs case-sensitive forms), in (…), !in (…),
// in~ (…), <, <=, >, >=, between (a .. b) and !between, on strings, ints, longs, reals, datetimes
// (datetime(2026-01-01T00:00:00Z), ago(1d) and now() on the vault clock, todatetime("…")) and
// timespans (1d, 2h, 30m, 10s, 100ms); + and - on datetimes, timespans and numbers. Functions:
// tostring, tolower, toupper, coalesce, isempty, isnotempty, isnull, isnotnull; dynamic members a.b and
// a["x"] (a missing member is null, and a comparison with null is not true). Queries may span lines
// and hold // comments. Anything else (join, union, let, distinct, render, parse_json, sum, bin…) is a
// 400 BadArgumentError whose message names the construct, with an inner SyntaxError (or SemanticError
// for unknown tables, columns and type mismatches).
//
// # Development endpoints
//
// The admin API (/_emulator/…: health, clock, faults, events, audit) and the managed-identity endpoint
// (/msi/token, on its plain-HTTP listener and on the shared one) need no token. They answer only
// requests whose Host is a loopback address, localhost, *.localhost or one of Config.TrustedHosts (a
// web page using DNS rebinding sends its own host name), from loopback callers or
// Config.TrustedClients; anything else gets 403 with a message naming the setting to change.
//
// Start one with New and Start, or with `kvrotator emulator`. HTTPClient returns an *http.Client that
// trusts the emulator's CA and resolves NAME.localhost to loopback, for azcore.ClientOptions.Transport.
package emulator
