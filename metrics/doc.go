// Package metrics sends counters and durations of rotation outcomes to Application Insights, where
// they land in the customMetrics table (AppMetrics in the Log Analytics workspace), without anyone
// scraping logs.
//
// # How, and why this way
//
// A Recorder aggregates outcomes in memory, one series per dimension set (kind, provider, trigger,
// class of a failure, and the vault when Options.Vaults allows it), and every Options.Interval
// (60 s) posts two pre-aggregated metric items per active series to the Application Insights
// ingestion API ("track"): POST {IngestionEndpoint}/v2.1/track with a JSON array of envelopes
//
//	{"name": "Microsoft.ApplicationInsights.Metric", "time": "<window start, RFC 3339 UTC>",
//	 "iKey": "<instrumentation key>", "tags": {"ai.cloud.role": "kvrotator", ...},
//	 "data": {"baseType": "MetricData", "baseData": {"ver": 2,
//	   "metrics": [{"name": "kvrotator.outcomes", "value": 3, "count": 3, "min": 1, "max": 1, "stdDev": 0}],
//	   "properties": {"kind": "rotated", "provider": "postgres", "trigger": "timer"}}}}
//
// The contract is Azure's published one (azure-rest-api-specs,
// specification/applicationinsights/data-plane/Monitor.Exporters/preview/v2.1/swagger.json): the
// answer is {"itemsReceived", "itemsAccepted", "errors": [{"index", "statusCode", "message"}]};
// 200 accepted all, 206 some (the errors name the others by index); only the first data point of
// an item is stored, hence one metric per envelope. The envelope shape is the one Microsoft's
// Azure Monitor OpenTelemetry exporter for Python sends for metrics (value = sum, count, min, max).
//
// The alternatives were weighed and dropped:
//   - An OpenTelemetry exporter for Go: Microsoft ships Azure Monitor exporters and distros for
//     .NET, Java, Node.js and Python only; microsoft/ApplicationInsights-Go says it is "NOT
//     currently maintained or supported by Microsoft", has no Microsoft Entra ID authentication
//     (this deployment disables local auth on the component), and the collector-contrib
//     azuremonitor exporter builds on it and needs a collector beside the app. OTLP straight to
//     Application Insights is not offered.
//   - The Functions host: a custom handler returns its invocation logs as plain strings, which the
//     host forwards as traces; the host's metric path (ILogger.LogMetric → customMetrics) is open to
//     in-process .NET code only. The host's OpenTelemetry mode (preview, Flex Consumption) exports
//     the host's own logs and traces; worker-side metrics need a language distro, and custom
//     handlers have none.
//
// So the client is written here, on azcore (already a dependency): its pipeline supplies the
// bearer-token policy (token cache and refresh, refusal to send a token over plain HTTP), request
// IDs and the User-Agent; the rest is this package's own: aggregation, batching, the
// retry/drop rules below.
//
// # Authentication
//
// With Options.Credential set (the app's managed identity, which the template makes a Monitoring
// Metrics Publisher on the component), each request carries "Authorization: Bearer <token>" for
// the audience https://monitor.azure.com (scope https://monitor.azure.com/.default), or the
// connection string's AADAudience in a sovereign cloud. Without it the instrumentation key alone
// authenticates, which a component with local auth disabled refuses (401/403).
// ParseAuthenticationString reads APPLICATIONINSIGHTS_AUTHENTICATION_STRING, the setting the
// template writes ("Authorization=AAD").
//
// # Never slowing a rotation
//
// Record, Observe and Publish take a mutex, update one aggregate and return: no I/O, nothing that
// waits on the network. Sending happens on a background goroutine (and in Flush and
// Close). A slow or dead endpoint only delays that goroutine; outcomes keep aggregating into the
// next window meanwhile. Memory is bounded: at most Options.MaxSeries (1,000) series per window;
// observations of further dimension sets are folded into one series marked overflow="true" and
// counted (Stats.Overflowed), so totals stay right.
//
// # Failures
//
// Following the Azure Monitor exporters: network errors, timeouts and 401, 403, 408, 429, 500, 502,
// 503, 504 are retried (401/403 too, because a role assignment takes minutes to reach ingestion),
// as are the items of a 206 answer whose own status is one of those; a Retry-After header is
// honoured. 400 (invalid), 402/439 (daily cap or quota: retrying within minutes cannot help), 404
// and anything else are final. A 307/308 moves the endpoint to the Location's host, as the
// exporters do. After Options.MaxAttempts attempts (4) items are dropped, counted (Stats.Dropped)
// and reported in one Warn record per batch; nothing is written to disk.
//
// # Dimensions and secrets
//
// A metric item carries only the instrumentation key, the cloud role and instance, the metric
// name, numbers, and these dimensions: kind (the engine's outcome kinds, anything else "other"),
// provider (Options.Providers when set, anything else "other"), trigger (event, timer, manual),
// class (failures only: transient, permanent) and vault (only with Options.Vaults; names outside it
// become "other"). Secret names, versions, reasons, errors, consumers and values never leave the
// process: reasons and errors can quote what a provider said, secret names are unbounded, and a
// failed outcome names whatever vault a request asked for, so only an allow-list keeps dimensions
// bounded and free of caller-chosen text. Per-secret detail stays in the logs and outcome events.
package metrics
