package infra

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The Defender workflow automation (parameter defenderWorkflowAutomation): Microsoft Defender for Cloud runs a
// Consumption Logic App for each Key Vault alert on this resource group, and the Logic App posts the alert, as
// its trigger delivers it (the PascalCase workflow-automation schema leaks.ParseDefender reads), to the
// DefenderAlert function. The shapes below follow Microsoft's own templates and references:
//
//   - The trigger: Azure/Microsoft-Defender-for-Cloud, "Workflow automation/Ask-Remove-MalwareBlob/azuredeploy.json"
//     (an ascalert Microsoft.Web/connections whose api.id is the location's managedApis/ascalert, and a trigger
//     of type ApiConnectionWebhook, path /Microsoft.Security/Alert/subscribe, body callback_url
//     "@{listCallbackUrl()}", host.connection.name "@parameters('$connections')['ascalert']['connectionId']");
//     the connector reference (learn.microsoft.com/connectors/ascalert) names the trigger "When a Microsoft
//     Defender for Cloud alert is created or triggered" and lists no connection parameters.
//   - The automation: the same repository's "Workflow automation/Configure Workflow Automation in scale via
//     policy/…/WorkflowAutomationForASCAlertsPolicy.json" (the source of the built-in policy "Deploy Workflow
//     Automation for Microsoft Defender for Cloud alerts"): eventSource Alerts, rules on the alert's flat
//     PascalCase fields (propertyJPath "AlertDisplayName", "Severity"; Assessments use "properties.…" because
//     their schema is the REST one), action LogicApp with uri = listCallbackUrl(<workflow>/triggers/<the
//     ascalert trigger>).value. Operators and property types: the AutomationTriggeringRule enums of
//     Microsoft.Security 2023-12-01-preview (Azure/bicep-types-az generated/security/…/types.md).
//   - The key in a SecureString workflow parameter, and secureData "inputs" on the action that sends it: "Secure
//     access and data in Azure Logic Apps" (MicrosoftDocs/azure-docs articles/logic-apps/
//     logic-apps-securing-a-logic-app.md): SecureString parameters "aren't returned with the resource
//     definition", but a parameter used in a request header "might be visible" in the run history unless the
//     action's inputs are secured.
//   - list functions inside an if(): ARM evaluates reference() and list*() of a conditional resource even when
//     the condition is false ("Conditional deployment in ARM templates", Runtime functions).

// defenderAPIVersions pins the API version of each Defender resource:
//   - Microsoft.Web/connections 2016-06-01: the only version the template reference and its change log list
//     (learn.microsoft.com/azure/templates/microsoft.web/change-log/connections); the one Microsoft's Defender
//     for Cloud workflow-automation templates use.
//   - Microsoft.Logic/workflows 2019-05-01: the newest non-preview version (bicep-types-az generated/logic:
//     2016-06-01, 2019-05-01; 2015-*, 2018-07-01 and 2026-04-01 are previews).
//   - Microsoft.Security/automations 2023-12-01-preview: the newest of the two versions there are, both
//     previews (template reference change log: 2019-01-01-preview, then 2023-12-01-preview, which only added
//     the AttackPaths event sources; bicep-types-az and the Pulumi azure-native provider default to it).
var defenderAPIVersions = map[string]string{
	"Microsoft.Web/connections":      "2016-06-01",
	"Microsoft.Logic/workflows":      "2019-05-01",
	"Microsoft.Security/automations": "2023-12-01-preview",
}

const (
	defenderCondition = "[variables('defenderAutomation')]"
	defenderAction    = "Post_the_alert_to_DefenderAlert"
	// The DefenderAlert function's own key (Web Apps - List Function Keys, POST …/functions/{name}/listkeys:
	// the function's keys by name, "default" the one Functions creates; the .default pattern is the one
	// published templates use), read with the site's API version: a key for that one function, not the host
	// key that opens every function-level endpoint (RotateSecret, ReportLeak…).
	defenderFunctionKeyExpr = "[if(variables('defenderAutomation'), listKeys(resourceId('Microsoft.Web/sites/functions', parameters('appName'), variables('defenderAlertFunction')), '2024-04-01').default, '')]"
	// The trigger's callback URL (Workflow Triggers - List Callback Url, Microsoft.Logic 2019-05-01: {"value": …}).
	defenderCallbackExpr = "[if(variables('defenderAutomation'), listCallbackUrl(resourceId('Microsoft.Logic/workflows/triggers', variables('defenderWorkflowName'), variables('defenderTriggerName')), '2019-05-01').value, '')]"
	defenderURLExpr      = "[format('https://{0}/api/{1}', reference(resourceId('Microsoft.Web/sites', parameters('appName')), '2024-04-01').defaultHostName, variables('defenderAlertFunction'))]"
)

// defenderResources returns the connection, the Logic App and the automation.
func defenderResources(t *testing.T, tp template) (conn, wf, auto object) {
	t.Helper()
	return tp.one(t, "Microsoft.Web/connections"), tp.one(t, "Microsoft.Logic/workflows"), tp.one(t, "Microsoft.Security/automations")
}

func TestDefenderAutomationIsOptInAndNeedsTheCode(t *testing.T) {
	tp := loadTemplate(t)
	p := tp.params["defenderWorkflowAutomation"]
	if p == nil || p["type"] != "bool" || p["defaultValue"] != false {
		t.Fatalf("defenderWorkflowAutomation = %v: want a bool parameter, default false", p)
	}
	// The function key is read from the deployed DefenderAlert function, so (like the Event Grid
	// subscriptions) the automation waits for the deployment that follows the zip deploy.
	if got := tp.variables["defenderAutomation"]; got != "[and(parameters('defenderWorkflowAutomation'), parameters('createEventSubscriptions'))]" {
		t.Errorf("defenderAutomation = %v: want defenderWorkflowAutomation and createEventSubscriptions", got)
	}
	desc := get(tp.params["createEventSubscriptions"], "metadata.description").(string)
	if !strings.Contains(desc, "defenderWorkflowAutomation") {
		t.Errorf("createEventSubscriptions' description does not say it also gates the Defender automation: %q", desc)
	}
	d := get(p, "metadata.description").(string)
	for _, want := range []string{"KV_", "SIMULATED_KV_", "DefenderAlert", "createEventSubscriptions", "Security Admin or Owner", "Logic App Contributor"} {
		if !strings.Contains(d, want) {
			t.Errorf("defenderWorkflowAutomation description lacks %q", want)
		}
	}

	n := 0
	for typ, version := range defenderAPIVersions {
		for _, r := range tp.byType(typ) {
			n++
			if r["condition"] != defenderCondition {
				t.Errorf("%s %v: condition %v, want %s (nothing without defenderWorkflowAutomation)", typ, r["name"], r["condition"], defenderCondition)
			}
			if r["apiVersion"] != version {
				t.Errorf("%s %v: apiVersion %v, want %s", typ, r["name"], r["apiVersion"], version)
			}
			if r["location"] != "[parameters('location')]" || r["tags"] != "[parameters('tags')]" {
				t.Errorf("%s: location %v, tags %v", typ, r["location"], r["tags"])
			}
			// The list functions of a resource whose condition is false are still evaluated: guard them.
			allStrings(r, typ, func(path, s string) {
				if isExpr(s) && regexp.MustCompile(`(?i)\blist\w*\(`).MatchString(s) && !strings.HasPrefix(s, "[if(variables('defenderAutomation'), list") {
					t.Errorf("%s: %q calls a list function outside if(variables('defenderAutomation'), …)", path, s)
				}
			})
		}
	}
	if n != 3 {
		t.Errorf("want one connection, one Logic App and one automation, got %d resources", n)
	}
	// Nothing else is conditional on it, and no other resource refers to the Defender variables.
	for _, r := range tp.resources {
		if _, ours := defenderAPIVersions[r["type"].(string)]; ours {
			continue
		}
		if r["condition"] == defenderCondition {
			t.Errorf("%s %v is created only with the Defender automation", r["type"], r["name"])
		}
		allStrings(r, r["type"].(string), func(path, s string) {
			if strings.Contains(s, "variables('defender") || strings.Contains(s, "parameters('defenderWorkflowAutomation')") {
				t.Errorf("%s: %q refers to the Defender automation", path, s)
			}
		})
	}
	// No role is granted for it: the Logic App carries the function's key, the automation calls the
	// trigger's callback URL; neither needs an identity.
	for _, ra := range tp.byType("Microsoft.Authorization/roleAssignments") {
		if s, _ := ra["scope"].(string); strings.Contains(s, "Logic") || strings.Contains(s, "Security") {
			t.Errorf("role assignment %v on %s", ra["name"], s)
		}
	}
}

func TestDefenderConnectionIsTheAscalertManagedAPI(t *testing.T) {
	tp := loadTemplate(t)
	conn, wf, _ := defenderResources(t, tp)
	if tp.variables["ascalertApiId"] != "[subscriptionResourceId('Microsoft.Web/locations/managedApis', parameters('location'), 'ascalert')]" {
		t.Errorf("ascalertApiId = %v: want the location's ascalert managed API", tp.variables["ascalertApiId"])
	}
	if conn["name"] != "[variables('defenderConnectionName')]" || get(conn, "properties.api.id") != "[variables('ascalertApiId')]" {
		t.Errorf("connection = %v", conn)
	}
	// The connector takes no connection parameters: nothing to authorize, no secret to pass.
	for _, k := range []string{"parameterValues", "nonSecretParameterValues", "customParameterValues"} {
		if v := get(conn, "properties."+k); v != nil {
			t.Errorf("connection properties.%s = %v: the ascalert connector takes none", k, v)
		}
	}
	ref := asObject(t, get(wf, "properties.parameters.$connections.value.ascalert"), "$connections.ascalert")
	want := map[string]any{
		"connectionId":   "[resourceId('Microsoft.Web/connections', variables('defenderConnectionName'))]",
		"connectionName": "[variables('defenderConnectionName')]",
		"id":             "[variables('ascalertApiId')]",
	}
	for k, v := range want {
		if ref[k] != v {
			t.Errorf("$connections.ascalert.%s = %v, want %v", k, ref[k], v)
		}
	}
	if len(ref) != len(want) {
		t.Errorf("$connections.ascalert = %v", ref)
	}
	if !slices.Contains(asArray(t, wf["dependsOn"], "workflow dependsOn"), any("[resourceId('Microsoft.Web/connections', variables('defenderConnectionName'))]")) {
		t.Errorf("the Logic App does not depend on its connection")
	}
}

func TestDefenderLogicAppTrigger(t *testing.T) {
	tp := loadTemplate(t)
	_, wf, _ := defenderResources(t, tp)
	if get(wf, "properties.state") != "Enabled" {
		t.Errorf("workflow state = %v", get(wf, "properties.state"))
	}
	def := asObject(t, get(wf, "properties.definition"), "definition")
	if def["$schema"] != "https://schema.management.azure.com/providers/Microsoft.Logic/schemas/2016-06-01/workflowdefinition.json#" {
		t.Errorf("definition $schema = %v", def["$schema"])
	}
	if d := get(def, "parameters.$connections"); get(d, "type") != "Object" {
		t.Errorf("definition parameter $connections = %v", d)
	}
	triggers := asObject(t, def["triggers"], "triggers")
	name := tp.variables["defenderTriggerName"].(string)
	if len(triggers) != 1 || triggers[name] == nil {
		t.Fatalf("triggers = %v, want exactly %s", triggers, name)
	}
	tr := triggers[name]
	for path, want := range map[string]any{
		"type":                        "ApiConnectionWebhook",
		"inputs.path":                 "/Microsoft.Security/Alert/subscribe",
		"inputs.body.callback_url":    "@{listCallbackUrl()}",
		"inputs.host.connection.name": "@parameters('$connections')['ascalert']['connectionId']",
	} {
		if got := get(tr, path); got != want {
			t.Errorf("trigger %s = %v, want %v", path, got, want)
		}
	}
}

func TestDefenderLogicAppPostsTheAlertToTheFunction(t *testing.T) {
	tp := loadTemplate(t)
	_, wf, _ := defenderResources(t, tp)
	actions := asObject(t, get(wf, "properties.definition.actions"), "actions")
	if len(actions) != 1 || actions[defenderAction] == nil {
		t.Fatalf("actions = %v, want exactly %s", actions, defenderAction)
	}
	a := actions[defenderAction]
	for path, want := range map[string]any{
		"type":                           "Http",
		"inputs.method":                  "POST",
		"inputs.uri":                     "@parameters('defenderAlertUrl')",
		"inputs.body":                    "@triggerBody()",
		"inputs.headers.x-functions-key": "@parameters('functionKey')",
		"inputs.headers.Content-Type":    "application/json",
	} {
		if got := get(a, path); got != want {
			t.Errorf("action %s = %v, want %v", path, got, want)
		}
	}
	if h := asObject(t, get(a, "inputs.headers"), "headers"); len(h) != 2 {
		t.Errorf("headers = %v, want Content-Type and x-functions-key only", h)
	}
	if get(a, "inputs.authentication") != nil || get(a, "inputs.queries") != nil {
		t.Errorf("the key goes in x-functions-key only (no authentication block, no code= query): %v", get(a, "inputs"))
	}
	if s := asArray(t, get(a, "runtimeConfiguration.secureData.properties"), "secureData"); !slices.Contains(s, any("inputs")) {
		t.Errorf("secureData = %v: the action's inputs (the key header) must be hidden from run history", s)
	}
	// The workflow's deployment-time parameters: the URL and the key, nothing else but the connection.
	wp := asObject(t, get(wf, "properties.parameters"), "workflow parameters")
	if len(wp) != 3 || get(wp, "defenderAlertUrl.value") != defenderURLExpr || get(wp, "functionKey.value") != defenderFunctionKeyExpr {
		t.Errorf("workflow parameters = %v", wp)
	}
	defs := asObject(t, get(wf, "properties.definition.parameters"), "definition parameters")
	if get(defs, "defenderAlertUrl.type") != "String" || get(defs, "functionKey.type") != "SecureString" || get(defs, "functionKey.defaultValue") != nil {
		t.Errorf("definition parameters = %v: want defenderAlertUrl String, functionKey SecureString without default", defs)
	}
	// The key and the URL come from the same site the template deploys, with its API version.
	site := tp.one(t, "Microsoft.Web/sites")
	if v := site["apiVersion"].(string); !strings.Contains(defenderFunctionKeyExpr, "'"+v+"'") || !strings.Contains(defenderURLExpr, "'"+v+"'") {
		t.Errorf("listKeys/reference use a different API version than the site (%s)", v)
	}
	if !slices.Contains(asArray(t, wf["dependsOn"], "workflow dependsOn"), any("[resourceId('Microsoft.Web/sites', parameters('appName'))]")) {
		t.Errorf("the Logic App does not depend on the Function App")
	}

	// The path exists: the DefenderAlert folder is an HTTP function taking POST at the default route, under
	// the default route prefix, and the custom handler serves that function name.
	fn := tp.variables["defenderAlertFunction"].(string)
	if fn != "DefenderAlert" {
		t.Errorf("defenderAlertFunction = %q", fn)
	}
	var fj struct {
		Bindings []struct {
			Type, Direction, AuthLevel, Route string
			Methods                           []string
		} `json:"bindings"`
	}
	readJSON(t, filepath.Join("..", fn, "function.json"), &fj)
	var trig int
	for _, b := range fj.Bindings {
		if b.Type != "httpTrigger" {
			continue
		}
		trig++
		if b.Direction != "in" || b.AuthLevel != "function" {
			t.Errorf("%s/function.json trigger: direction %q, authLevel %q, want in, function (the key the Logic App sends)", fn, b.Direction, b.AuthLevel)
		}
		if !slices.ContainsFunc(b.Methods, func(m string) bool { return strings.EqualFold(m, "POST") }) {
			t.Errorf("%s/function.json methods = %v: the Logic App POSTs", fn, b.Methods)
		}
		if b.Route != "" && b.Route != fn {
			t.Errorf("%s/function.json route = %q: the Logic App calls /api/%s", fn, b.Route, fn)
		}
	}
	if trig != 1 {
		t.Errorf("%s/function.json: %d httpTrigger bindings, want 1", fn, trig)
	}
	var host struct {
		Extensions struct {
			HTTP struct {
				RoutePrefix *string `json:"routePrefix"`
			} `json:"http"`
		} `json:"extensions"`
	}
	readJSON(t, "../host.json", &host)
	if p := host.Extensions.HTTP.RoutePrefix; p != nil && *p != "api" {
		t.Errorf("host.json routePrefix = %q: the Logic App calls /api/…", *p)
	}
	src, err := os.ReadFile("../handler/defender.go")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`const fnDefender = "` + regexp.QuoteMeta(fn) + `"`).Match(src) {
		t.Errorf("handler/defender.go does not serve a function named %s", fn)
	}
}

func TestDefenderFunctionKeyIsNeverALiteral(t *testing.T) {
	tp := loadTemplate(t)
	_, wf, auto := defenderResources(t, tp)
	// A function key is a long run of base64url text (letters of both cases and digits); nothing in these
	// resources may look like one (the trigger's name is letters and underscores only).
	keyLike := regexp.MustCompile(`[A-Za-z0-9_\-]{30,}={0,2}`)
	for _, r := range []object{wf, auto} {
		allStrings(r, r["type"].(string), func(path, s string) {
			for _, m := range keyLike.FindAllString(s, -1) {
				if strings.ContainsAny(m, "0123456789") && strings.ToLower(m) != m && strings.ToUpper(m) != m {
					t.Errorf("%s: %q looks like a literal key", path, m)
				}
			}
			if strings.Contains(strings.ToLower(s), "code=") {
				t.Errorf("%s: %q puts a key in a URL", path, s)
			}
		})
	}
	// The key reaches the workflow only through its SecureString parameter, used only in the header.
	n := 0
	allStrings(get(wf, "properties.definition"), "definition", func(path, s string) {
		if strings.Contains(s, "parameters('functionKey')") {
			n++
			if path != "definition.actions."+defenderAction+".inputs.headers.x-functions-key" {
				t.Errorf("%s uses the function key", path)
			}
		}
	})
	if n != 1 {
		t.Errorf("the function key is used %d times in the workflow, want once (the header)", n)
	}
}

// keyVaultAlertTypes are the Defender for Key Vault alert types (MicrosoftDocs alerts-azure-key-vault.md,
// /work/shared/reference/wave2-contracts.md §6); Defender's sample alerts carry the SIMULATED_ prefix.
var keyVaultAlertTypes = []string{
	"KV_SuspiciousIPAccess", "KV_TORAccess", "KV_OperationVolumeAnomaly", "KV_PutGetAnomaly", "KV_ListGetAnomaly",
	"KV_AccountVolumeAccessDeniedAnomaly", "KV_UserAccessDeniedAnomaly", "KV_AppAnomaly", "KV_OperationPatternAnomaly",
	"KV_UserAnomaly", "KV_UserAppAnomaly", "KV_AccountVolumeAnomaly", "KV_SuspiciousIPAccessDenied", "KV_UnusualAccessSuspiciousIP",
}

// ruleMatches evaluates one AutomationTriggeringRule on a string property the way the API documents it: "A
// case-insensitive comparison will be applied for String PropertyType".
func ruleMatches(t *testing.T, op, got, expected string) bool {
	t.Helper()
	g, e := strings.ToLower(got), strings.ToLower(expected)
	switch op {
	case "Equals":
		return g == e
	case "NotEquals":
		return g != e
	case "StartsWith":
		return strings.HasPrefix(g, e)
	case "EndsWith":
		return strings.HasSuffix(g, e)
	case "Contains":
		return strings.Contains(g, e)
	}
	t.Errorf("operator %s on a string", op)
	return false
}

func TestDefenderAutomationFiltersKeyVaultAlerts(t *testing.T) {
	tp := loadTemplate(t)
	_, _, auto := defenderResources(t, tp)
	if get(auto, "properties.isEnabled") != true {
		t.Errorf("automation isEnabled = %v", get(auto, "properties.isEnabled"))
	}
	scopes := asArray(t, get(auto, "properties.scopes"), "scopes")
	if len(scopes) != 1 || get(scopes[0], "scopePath") != "[resourceGroup().id]" {
		t.Errorf("scopes = %v, want this resource group only", scopes)
	}
	sources := asArray(t, get(auto, "properties.sources"), "sources")
	if len(sources) != 1 || get(sources[0], "eventSource") != "Alerts" {
		t.Fatalf("sources = %v, want Alerts only", sources)
	}
	operators := []string{"Contains", "EndsWith", "Equals", "GreaterThan", "GreaterThanOrEqualTo", "LesserThan", "LesserThanOrEqualTo", "NotEquals", "StartsWith"}
	ruleSets := asArray(t, get(sources[0], "ruleSets"), "ruleSets")
	if len(ruleSets) == 0 {
		t.Fatal("no rule sets: every alert of the resource group would run the Logic App")
	}
	// matches: rule sets are OR'ed, the rules of a set AND'ed.
	matches := func(alertType string) bool {
		for _, rs := range ruleSets {
			all := true
			for _, r := range asArray(t, get(rs, "rules"), "rules") {
				ro := asObject(t, r, "rule")
				if ro["propertyJPath"] != "AlertType" || ro["propertyType"] != "String" || !slices.Contains(operators, ro["operator"].(string)) {
					t.Fatalf("rule %v: want a String rule on AlertType (the workflow-automation alert schema) with a documented operator", ro)
				}
				all = all && ruleMatches(t, ro["operator"].(string), alertType, ro["expectedValue"].(string))
			}
			if all {
				return true
			}
		}
		return false
	}
	for _, typ := range keyVaultAlertTypes {
		for _, at := range []string{typ, "SIMULATED_" + typ} {
			if !matches(at) {
				t.Errorf("alert type %s does not run the Logic App", at)
			}
		}
	}
	for _, at := range []string{"Storage.Blob_MalwareHashReputation", "SIMULATED_Storage.Blob_TorAnomaly", "K8S_PrivilegedContainer", "VM_SuspectDownload", "ARM_AnomalousOperation.CredentialAccess", "SQL.DB_BruteForce", "AppServices_KvTokenTheft", "SIMULATED_VM_KV_Lookalike"} {
		if matches(at) {
			t.Errorf("alert type %s (not Key Vault) runs the Logic App", at)
		}
	}

	actions := asArray(t, get(auto, "properties.actions"), "actions")
	if len(actions) != 1 {
		t.Fatalf("automation actions = %v, want the Logic App only", actions)
	}
	for path, want := range map[string]any{
		"actionType":         "LogicApp",
		"logicAppResourceId": "[resourceId('Microsoft.Logic/workflows', variables('defenderWorkflowName'))]",
		"uri":                defenderCallbackExpr,
	} {
		if got := get(actions[0], path); got != want {
			t.Errorf("automation action %s = %v, want %v", path, got, want)
		}
	}
	// The callback is the Logic App's one trigger, the ascalert webhook.
	_, wf, _ := defenderResources(t, tp)
	if wf["name"] != "[variables('defenderWorkflowName')]" {
		t.Errorf("workflow name = %v", wf["name"])
	}
	if _, ok := asObject(t, get(wf, "properties.definition.triggers"), "triggers")[tp.variables["defenderTriggerName"].(string)]; !ok {
		t.Errorf("the automation calls trigger %v, which the Logic App does not have", tp.variables["defenderTriggerName"])
	}
	if deps := asArray(t, auto["dependsOn"], "automation dependsOn"); !slices.Contains(deps, any("[resourceId('Microsoft.Logic/workflows', variables('defenderWorkflowName'))]")) {
		t.Errorf("automation dependsOn = %v, want the Logic App", deps)
	}
}

func TestDefenderNamesDeriveFromTheApp(t *testing.T) {
	tp := loadTemplate(t)
	seen := map[string]bool{}
	for _, v := range []string{"defenderConnectionName", "defenderWorkflowName", "defenderAutomationName"} {
		m := regexp.MustCompile(`^\[format\('\{0\}-([a-z-]+)', parameters\('appName'\)\)\]$`).FindStringSubmatch(tp.variables[v].(string))
		if m == nil {
			t.Errorf("%s = %v: want format('{0}-<what>', parameters('appName'))", v, tp.variables[v])
			continue
		}
		if seen[m[1]] {
			t.Errorf("%s repeats the suffix %s", v, m[1])
		}
		seen[m[1]] = true
	}
	// Automation names: 1-260 alphanumerics, underscores and hyphens (template reference); appName is a
	// host name (letters, digits, hyphens, at most 32), so the longest is well within.
	if !regexp.MustCompile(`^[A-Za-z0-9_-]+$`).MatchString(strings.NewReplacer("[format('{0}-", "x-", "', parameters('appName'))]", "").Replace(tp.variables["defenderAutomationName"].(string))) {
		t.Errorf("defenderAutomationName %v has characters an automation name cannot", tp.variables["defenderAutomationName"])
	}
	if !regexp.MustCompile(`^[A-Za-z_]+$`).MatchString(tp.variables["defenderTriggerName"].(string)) {
		t.Errorf("defenderTriggerName = %v", tp.variables["defenderTriggerName"])
	}
}
