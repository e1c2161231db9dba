package infra

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/kvrotator/kvrotator/config"
	"github.com/kvrotator/kvrotator/lock"
)

// The checks below read infra/azuredeploy.json as data and pin the properties that make the deployment
// safe. Each test names the protection it guards (README "Security model").

// builtInRoles are Azure's built-in role definition IDs as Microsoft documents them ("Azure built-in
// roles", learn.microsoft.com/azure/role-based-access-control/built-in-roles; the Key Vault ones also in
// "Provide access to Key Vault keys, certificates, and secrets with Azure RBAC"). The IDs are the same in
// every tenant. A template role ID that differs from this table is a typo granting something else, or
// nothing.
var builtInRoles = map[string]struct{ name, id string }{
	"storageBlobDataOwner":        {"Storage Blob Data Owner", "b7e6dc6d-f1e8-4753-8033-0f276bb0955b"},
	"storageBlobDataContributor":  {"Storage Blob Data Contributor", "ba92f5b4-2d11-453d-a403-e96b0029c9fe"},
	"storageTableDataContributor": {"Storage Table Data Contributor", "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3"},
	"keyVaultSecretsOfficer":      {"Key Vault Secrets Officer", "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"},
	"eventGridDataSender":         {"EventGrid Data Sender", "d5a91429-5739-47e2-a06b-3470a27159e7"},
	"monitoringMetricsPublisher":  {"Monitoring Metrics Publisher", "3913510d-42f4-4e42-8a64-420c390055eb"},
	"logAnalyticsReader":          {"Log Analytics Reader", "73c42c96-874c-492b-b04d-ab87d138a893"},
}

// Roles the template must not grant: broader than kvrotator needs (see README "Security model").
var forbiddenRoles = map[string]string{
	"8e3af657-a8ff-443c-a75c-2fe8c4bcb635": "Owner",
	"b24988ac-6180-42a0-ab88-20f7382dd24c": "Contributor",
	"18d7d88d-d35e-4fb5-a5c3-7773c20a72d9": "User Access Administrator",
	"00482a5a-887f-4fb3-b363-3b7fe8e74483": "Key Vault Administrator",
	"17d1049b-9a84-46fb-8f53-869881c3d3ab": "Storage Account Contributor (gives the account keys)",
	"974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor (blob triggers only)",
	"81a9662b-bebf-436f-a333-f67b29880f12": "Storage Account Key Operator Service Role",
}

// The custom role's data actions: exactly what kvrotator's Key Vault adapter calls.
var rotatorDataActions = []string{
	"Microsoft.KeyVault/vaults/secrets/getSecret/action",
	"Microsoft.KeyVault/vaults/secrets/setSecret/action",
	"Microsoft.KeyVault/vaults/secrets/readMetadata/action",
	"Microsoft.KeyVault/vaults/secrets/update/action",
}

type object = map[string]any

type template struct {
	raw       object
	params    map[string]object
	variables object
	resources []object
}

func loadTemplate(t *testing.T) template {
	t.Helper()
	var raw object
	readJSON(t, "azuredeploy.json", &raw)
	tp := template{raw: raw, params: map[string]object{}}
	for k, v := range asObject(t, raw["parameters"], "parameters") {
		tp.params[k] = asObject(t, v, "parameters."+k)
	}
	tp.variables = asObject(t, raw["variables"], "variables")
	for i, r := range asArray(t, raw["resources"], "resources") {
		tp.resources = append(tp.resources, asObject(t, r, "resources["+itoa(i)+"]"))
	}
	return tp
}

func readJSON(t *testing.T, name string, v any) {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if dec.More() {
		t.Fatalf("%s: trailing data after the JSON document", name)
	}
}

func asObject(t *testing.T, v any, what string) object {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s: want an object, got %T", what, v)
	}
	return m
}

func asArray(t *testing.T, v any, what string) []any {
	t.Helper()
	a, ok := v.([]any)
	if !ok {
		t.Fatalf("%s: want an array, got %T", what, v)
	}
	return a
}

func itoa(i int) string { return strconv.Itoa(i) }

// get walks a dotted path of object keys.
func get(v any, path string) any {
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// byType returns the resources of one type.
func (tp template) byType(typ string) []object {
	var out []object
	for _, r := range tp.resources {
		if strings.EqualFold(r["type"].(string), typ) {
			out = append(out, r)
		}
	}
	return out
}

func (tp template) one(t *testing.T, typ string) object {
	t.Helper()
	rs := tp.byType(typ)
	if len(rs) != 1 {
		t.Fatalf("want exactly one %s, got %d", typ, len(rs))
	}
	return rs[0]
}

// settings returns the app settings of a variable holding [{name, value}].
func (tp template) settings(t *testing.T, variable string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, s := range asArray(t, tp.variables[variable], "variables."+variable) {
		o := asObject(t, s, variable)
		name, _ := o["name"].(string)
		if _, dup := out[name]; dup {
			t.Errorf("%s: setting %s twice", variable, name)
		}
		out[name], _ = o["value"].(string)
	}
	return out
}

// siteSettingsExpr is the Function App's appSettings expression.
func (tp template) siteSettingsExpr(t *testing.T) string {
	t.Helper()
	site := tp.one(t, "Microsoft.Web/sites")
	s, ok := get(site, "properties.siteConfig.appSettings").(string)
	if !ok {
		t.Fatalf("site appSettings: want an expression, got %T", get(site, "properties.siteConfig.appSettings"))
	}
	return s
}

// allStrings calls fn for every string in v with its JSON path.
func allStrings(v any, path string, fn func(path, s string)) {
	switch x := v.(type) {
	case string:
		fn(path, x)
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fn(path+"."+k+" (key)", k)
			allStrings(x[k], path+"."+k, fn)
		}
	case []any:
		for i, e := range x {
			allStrings(e, path+"["+itoa(i)+"]", fn)
		}
	}
}

var roleRefRE = regexp.MustCompile(`variables\('roles'\)\.(\w+)`)

func TestRoleDefinitionIDsAreTheDocumentedBuiltIns(t *testing.T) {
	tp := loadTemplate(t)
	roles := asObject(t, tp.variables["roles"], "variables.roles")
	for key, id := range roles {
		want, ok := builtInRoles[key]
		switch {
		case !ok:
			t.Errorf("variables.roles.%s = %v: not in the documented built-in role table of this test", key, id)
		case id != want.id:
			t.Errorf("variables.roles.%s = %v, want %s (%s)", key, id, want.id, want.name)
		}
	}
	// No role ID anywhere else in the template: every grant goes through the checked table, or is
	// the custom role.
	guidRE := regexp.MustCompile(`[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}`)
	allStrings(tp.raw, "$", func(path, s string) {
		for _, g := range guidRE.FindAllString(s, -1) {
			if name, bad := forbiddenRoles[strings.ToLower(g)]; bad {
				t.Errorf("%s grants %s", path, name)
			}
			if !strings.HasPrefix(path, "$.variables.roles.") {
				t.Errorf("%s: literal GUID %s outside variables.roles", path, g)
			}
		}
	})
	if got := tp.variables["vaultRoleDefinitionId"]; got != "[if(variables('useCustomRole'), subscriptionResourceId('Microsoft.Authorization/roleDefinitions', variables('customRoleGuid')), subscriptionResourceId('Microsoft.Authorization/roleDefinitions', variables('roles').keyVaultSecretsOfficer))]" {
		t.Errorf("vaultRoleDefinitionId = %v: want the custom role, or Key Vault Secrets Officer", got)
	}
}

// scopeKinds are the only scopes a role assignment may have: resources the app uses, never the
// resource group or the subscription.
var scopeKinds = map[string]string{
	"[format('Microsoft.Storage/storageAccounts/{0}', variables('storageAccountName'))]":                                                                       "storage account",
	"[format('Microsoft.Storage/storageAccounts/{0}/blobServices/default/containers/{1}', variables('storageAccountName'), variables('deadLetterContainer'))]": "dead-letter container",
	"[format('Microsoft.KeyVault/vaults/{0}', variables('managedVaults')[copyIndex()])]":                                                                       "vault",
	"[format('Microsoft.EventGrid/topics/{0}', variables('outcomeTopicName'))]":                                                                                "outcome topic",
	"[format('Microsoft.Insights/components/{0}', variables('appInsightsName'))]":                                                                              "application insights",
	"[format('Microsoft.OperationalInsights/workspaces/{0}', variables('workspaceName'))]":                                                                     "log analytics workspace",
}

// allowedRoles says which role each kind of scope may carry.
var allowedRoles = map[string][]string{
	"storage account":         {"storageBlobDataOwner", "storageTableDataContributor"},
	"dead-letter container":   {"storageBlobDataContributor"},
	"vault":                   {"vault role"},
	"outcome topic":           {"eventGridDataSender"},
	"application insights":    {"monitoringMetricsPublisher"},
	"log analytics workspace": {"logAnalyticsReader"},
}

func TestRoleAssignmentsAreScopedToResourcesNeverGroupOrSubscription(t *testing.T) {
	tp := loadTemplate(t)
	assignments := tp.byType("Microsoft.Authorization/roleAssignments")
	if len(assignments) < 3 {
		t.Fatalf("want role assignments for storage and vaults, got %d", len(assignments))
	}
	seen := map[string]bool{}
	for _, ra := range assignments {
		name, _ := ra["name"].(string)
		scope, _ := ra["scope"].(string)
		kind, ok := scopeKinds[scope]
		if !ok {
			t.Errorf("role assignment %s: scope %q is not one of the app's resources (an assignment without scope applies to the whole resource group)", name, scope)
			continue
		}
		for _, k := range []string{"subscriptionId", "resourceGroup"} {
			if _, bad := ra[k]; bad {
				t.Errorf("role assignment %s: %s moves it out of this resource group", name, k)
			}
		}
		def, _ := get(ra, "properties.roleDefinitionId").(string)
		role := "vault role"
		if def != "[variables('vaultRoleDefinitionId')]" {
			m := roleRefRE.FindStringSubmatch(def)
			if m == nil || def != "[subscriptionResourceId('Microsoft.Authorization/roleDefinitions', variables('roles')."+m[1]+")]" {
				t.Errorf("role assignment %s: roleDefinitionId %q: want subscriptionResourceId of a variables('roles') entry", name, def)
				continue
			}
			role = m[1]
		}
		if !slices.Contains(allowedRoles[kind], role) {
			t.Errorf("role assignment %s: role %s on the %s; allowed there: %v", name, role, kind, allowedRoles[kind])
		}
		if get(ra, "properties.principalType") != "ServicePrincipal" {
			t.Errorf("role assignment %s: principalType %v, want ServicePrincipal (a managed identity)", name, get(ra, "properties.principalType"))
		}
		seen[kind+"/"+role] = true
	}
	for _, must := range []string{"storage account/storageBlobDataOwner", "vault/vault role", "dead-letter container/storageBlobDataContributor", "outcome topic/eventGridDataSender"} {
		if !seen[must] {
			t.Errorf("no role assignment %s", must)
		}
	}
}

func TestCustomVaultRoleHasExactlyTheDataActionsKvrotatorUses(t *testing.T) {
	tp := loadTemplate(t)
	if d := get(tp.params["vaultRole"], "defaultValue"); d != "KvrotatorSecretRotator" {
		t.Errorf("vaultRole default = %v: the least-privilege custom role must be the default", d)
	}
	def := tp.one(t, "Microsoft.Authorization/roleDefinitions")
	perms := asArray(t, get(def, "properties.permissions"), "permissions")
	if len(perms) != 1 {
		t.Fatalf("custom role: want one permission block, got %d", len(perms))
	}
	p := asObject(t, perms[0], "permissions[0]")
	for _, k := range []string{"actions", "notActions", "notDataActions"} {
		if a, _ := p[k].([]any); len(a) != 0 {
			t.Errorf("custom role %s = %v, want none (no control-plane action)", k, a)
		}
	}
	if p["dataActions"] != "[variables('customRoleDataActions')]" {
		t.Fatalf("custom role dataActions = %v", p["dataActions"])
	}
	var got []string
	for _, a := range asArray(t, tp.variables["customRoleDataActions"], "customRoleDataActions") {
		got = append(got, a.(string))
	}
	if !slices.Equal(got, rotatorDataActions) {
		t.Errorf("custom role data actions = %v, want exactly %v", got, rotatorDataActions)
	}
	if s := get(def, "properties.assignableScopes"); len(s.([]any)) != 1 || s.([]any)[0] != "[resourceGroup().id]" {
		t.Errorf("custom role assignableScopes = %v, want [resourceGroup().id]", s)
	}
	if get(def, "properties.type") != "CustomRole" {
		t.Errorf("custom role type = %v", get(def, "properties.type"))
	}
}

// TestCustomRoleCoversTheKeyVaultAdapter reads keyvault/*.go: every azsecrets call kvrotator makes must
// be allowed by the custom role, and the role must not allow more than those calls need.
func TestCustomRoleCoversTheKeyVaultAdapter(t *testing.T) {
	actionOf := map[string]string{
		"GetSecret":                            "Microsoft.KeyVault/vaults/secrets/getSecret/action",
		"SetSecret":                            "Microsoft.KeyVault/vaults/secrets/setSecret/action",
		"UpdateSecretProperties":               "Microsoft.KeyVault/vaults/secrets/update/action",
		"NewListSecretPropertiesPager":         "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
		"NewListSecretPropertiesVersionsPager": "Microsoft.KeyVault/vaults/secrets/readMetadata/action",
	}
	files, err := filepath.Glob("../keyvault/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("keyvault sources: %v %v", files, err)
	}
	callRE := regexp.MustCompile(`\.client\.(\w+)\(`)
	used := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range callRE.FindAllStringSubmatch(string(b), -1) {
			a, ok := actionOf[m[1]]
			if !ok {
				t.Errorf("%s calls azsecrets %s: add its data action to the custom role (infra/azuredeploy.json, README) and to this test", f, m[1])
				continue
			}
			used[a] = true
		}
	}
	for _, a := range rotatorDataActions {
		if !used[a] {
			t.Errorf("the custom role grants %s but keyvault/ never needs it: remove it", a)
		}
	}
}

func TestNoSecretInDefaultsSettingsOrOutputs(t *testing.T) {
	tp := loadTemplate(t)
	for name, p := range tp.params {
		typ := strings.ToLower(p["type"].(string))
		_, hasDefault := p["defaultValue"]
		if (typ == "securestring" || typ == "secureobject") && hasDefault {
			t.Errorf("secure parameter %s has a defaultValue", name)
		}
		if regexp.MustCompile(`(?i)(key|secret|password|pwd|token|connectionstring|sas)$`).MatchString(name) {
			t.Errorf("parameter %s looks like a credential: the template takes none", name)
		}
	}
	forbidden := regexp.MustCompile(`(?i)listkeys\(|listsecrets\(|listCallbackUrl\(|listAccountSas|listServiceSas|AccountKey=|SharedAccessKey|SharedAccessSignature|DefaultEndpointsProtocol=|[?&]sig=|[?&]code=|x-functions-key|primaryMasterKey|publishingPassword|listPublishingCredentials`)
	// Exactly two credentials are read, both by the Defender workflow automation (defenderWorkflowAutomation,
	// defender_test.go) and both into properties Azure keeps write-only: the DefenderAlert function's own key,
	// into the Logic App's SecureString parameter (not returned with the workflow), which one header of the
	// HTTP action uses; and the Logic App trigger's callback URL (it carries a signature), into the
	// automation's action uri ("it will not be included in any response"). At run time the trigger hands its
	// own callback URL (the workflow function listCallbackUrl()) to the ascalert connector it subscribes to.
	// Nothing else may read, embed or send a key: not an app setting, a default, an output or another resource.
	allowed := map[string]string{}
	for i, r := range tp.resources {
		switch r["type"] {
		case "Microsoft.Logic/workflows":
			allowed["$.resources["+itoa(i)+"].properties.parameters.functionKey.value"] = defenderFunctionKeyExpr
			allowed["$.resources["+itoa(i)+"].properties.definition.actions."+defenderAction+".inputs.headers.x-functions-key (key)"] = "x-functions-key"
			allowed["$.resources["+itoa(i)+"].properties.definition.triggers."+tp.variables["defenderTriggerName"].(string)+".inputs.body.callback_url"] = "@{listCallbackUrl()}"
		case "Microsoft.Security/automations":
			allowed["$.resources["+itoa(i)+"].properties.actions[0].uri"] = defenderCallbackExpr
		}
	}
	used := map[string]bool{}
	allStrings(tp.raw, "$", func(path, s string) {
		if !forbidden.MatchString(s) {
			return
		}
		if want, ok := allowed[path]; ok && s == want {
			used[path] = true
			return
		}
		t.Errorf("%s: %q reads, embeds or sends a key", path, s)
	})
	if len(used) != len(allowed) || len(allowed) != 4 {
		t.Errorf("want exactly the Defender function key, its header and the trigger callback URL, got %v of %v", used, allowed)
	}

	settings := map[string]string{}
	for _, v := range []string{"appSettingsCommon", "appSettingsDedicatedRuntime", "appSettingsEntraTelemetry"} {
		for k, val := range tp.settings(t, v) {
			settings[k] = val
		}
	}
	secretName := regexp.MustCompile(`(?i)(^|_)(KEY|SECRET|PASSWORD|PWD|SAS)(_|$)|CONNECTION_?STRING|^AzureWebJobsStorage$|WEBSITE_CONTENTAZUREFILECONNECTIONSTRING|AZURE_CLIENT_SECRET`)
	for name := range settings {
		if secretName.MatchString(name) {
			t.Errorf("app setting %s would hold a credential", name)
		}
	}
	// The settings the site builds inline: the App Insights connection string (its instrumentation key
	// is documented by Microsoft as not a secret, and ingestion needs Entra auth) and the topic endpoint.
	expr := tp.siteSettingsExpr(t)
	inline := regexp.MustCompile(`createObject\('name', '([^']+)'`).FindAllStringSubmatch(expr, -1)
	var names []string
	for _, m := range inline {
		names = append(names, m[1])
	}
	if !slices.Equal(names, []string{"APPLICATIONINSIGHTS_CONNECTION_STRING", config.EnvEventTopic, config.EnvLogWorkspace}) {
		t.Errorf("inline app settings = %v, want only APPLICATIONINSIGHTS_CONNECTION_STRING, %s and %s", names, config.EnvEventTopic, config.EnvLogWorkspace)
	}
	// The workspace id is the workspace's customerId (a GUID, not a key), set only with usage-aware revocation.
	if !strings.Contains(expr, "if(parameters('usageAwareRevocation'), createArray(createObject('name', 'KVROTATOR_LOG_WORKSPACE_ID', 'value', reference(resourceId('Microsoft.OperationalInsights/workspaces', variables('workspaceName')), '2023-09-01').customerId))") {
		t.Errorf("KVROTATOR_LOG_WORKSPACE_ID must be the template workspace's customerId, under usageAwareRevocation")
	}
	if !strings.Contains(expr, "'APPLICATIONINSIGHTS_CONNECTION_STRING', 'value', reference(resourceId('Microsoft.Insights/components', variables('appInsightsName')), '2020-02-02').ConnectionString)") {
		t.Errorf("APPLICATIONINSIGHTS_CONNECTION_STRING must come from the component's ConnectionString")
	}
	site := tp.one(t, "Microsoft.Web/sites")
	if c := get(site, "properties.siteConfig.connectionStrings"); c != nil {
		t.Errorf("site connectionStrings = %v, want none", c)
	}
	for name, o := range asObject(t, tp.raw["outputs"], "outputs") {
		if strings.Contains(strings.ToLower(name), "key") || strings.Contains(strings.ToLower(name), "secret") {
			t.Errorf("output %s looks like a credential", name)
		}
		// An output naming a Defender resource could be turned into a reader of the key or the callback URL.
		allStrings(o, "outputs."+name, func(path, s string) {
			if strings.Contains(s, "defender") || strings.Contains(s, "Microsoft.Logic") {
				t.Errorf("%s = %q: no output may reference the Defender Logic App or automation", path, s)
			}
		})
	}

	// Secure workflow parameters: a key handed to a Logic App is declared SecureString, has no default,
	// and the action that sends it hides its inputs from the run history (Logic Apps shows headers there
	// unless they are secured).
	for _, wf := range tp.byType("Microsoft.Logic/workflows") {
		defs := asObject(t, get(wf, "properties.definition.parameters"), "workflow definition parameters")
		for pname := range asObject(t, get(wf, "properties.parameters"), "workflow parameters") {
			d := asObject(t, defs[pname], "definition parameter "+pname)
			secure := strings.EqualFold(d["type"].(string), "SecureString")
			if pname == "functionKey" && !secure {
				t.Errorf("workflow parameter %s: type %v, want SecureString", pname, d["type"])
			}
			if _, has := d["defaultValue"]; secure && has {
				t.Errorf("workflow parameter %s: a SecureString with a defaultValue", pname)
			}
		}
	}
}

func TestIdentityBasedStorageAndSettingsTheCodeReads(t *testing.T) {
	tp := loadTemplate(t)
	s := tp.settings(t, "appSettingsCommon")
	want := map[string]string{
		lock.SettingAccountName:           "[variables('storageAccountName')]",
		"AzureWebJobsStorage__credential": "managedidentity",
		config.EnvVaults:                  "[join(variables('managedVaults'), ',')]",
		config.EnvSweepSchedule:           "[parameters('sweepSchedule')]",
		"KVROTATOR_CREDENTIAL":            "managed-identity",
		config.EnvLogLevel:                "[parameters('logLevel')]",
		config.EnvBindings:                "[parameters('bindings')]",
	}
	for k, v := range want {
		if s[k] != v {
			t.Errorf("app setting %s = %q, want %q", k, s[k], v)
		}
	}
	if got := tp.settings(t, "appSettingsEntraTelemetry")["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"]; got != "Authorization=AAD" {
		t.Errorf("APPLICATIONINSIGHTS_AUTHENTICATION_STRING = %q, want Authorization=AAD (system-assigned identity)", got)
	}
	site := tp.one(t, "Microsoft.Web/sites")
	if get(site, "identity.type") != "SystemAssigned" {
		t.Errorf("site identity = %v, want SystemAssigned", get(site, "identity.type"))
	}
	expr := tp.siteSettingsExpr(t)
	for _, part := range []string{"variables('appSettingsCommon')", "if(variables('isFlex'), createArray(), variables('appSettingsDedicatedRuntime'))", "if(parameters('appInsightsEntraAuth'), variables('appSettingsEntraTelemetry'), createArray())"} {
		if !strings.Contains(expr, part) {
			t.Errorf("site appSettings does not include %s", part)
		}
	}
	if get(site, "properties.functionAppConfig") != "[if(variables('isFlex'), variables('flexFunctionAppConfig'), null())]" {
		t.Errorf("functionAppConfig = %v", get(site, "properties.functionAppConfig"))
	}
	if get(tp.variables, "flexFunctionAppConfig.deployment.storage.authentication.type") != "SystemAssignedIdentity" {
		t.Errorf("Flex deployment storage must be reached with the managed identity")
	}
	if comp := tp.one(t, "Microsoft.Insights/components"); get(comp, "properties.DisableLocalAuth") != "[parameters('appInsightsEntraAuth')]" || get(tp.params["appInsightsEntraAuth"], "defaultValue") != true {
		t.Errorf("Application Insights must accept Entra-authenticated telemetry only, by default")
	}
}

func TestLinuxCustomHandler(t *testing.T) {
	tp := loadTemplate(t)
	site := tp.one(t, "Microsoft.Web/sites")
	if site["kind"] != "functionapp,linux" {
		t.Errorf("site kind = %v, want functionapp,linux", site["kind"])
	}
	plan := tp.one(t, "Microsoft.Web/serverfarms")
	if get(plan, "properties.reserved") != true {
		t.Errorf("plan reserved = %v, want true (Linux)", get(plan, "properties.reserved"))
	}
	rt := tp.settings(t, "appSettingsDedicatedRuntime")
	if !strings.EqualFold(rt["FUNCTIONS_WORKER_RUNTIME"], "custom") || rt["FUNCTIONS_EXTENSION_VERSION"] != "~4" {
		t.Errorf("Dedicated runtime settings = %v, want FUNCTIONS_WORKER_RUNTIME=Custom, FUNCTIONS_EXTENSION_VERSION=~4", rt)
	}
	// Flex Consumption declares the runtime in functionAppConfig and rejects FUNCTIONS_WORKER_RUNTIME.
	if get(tp.variables, "flexFunctionAppConfig.runtime.name") != "custom" {
		t.Errorf("Flex runtime = %v, want custom", get(tp.variables, "flexFunctionAppConfig.runtime"))
	}
	if _, bad := tp.settings(t, "appSettingsCommon")["FUNCTIONS_WORKER_RUNTIME"]; bad {
		t.Errorf("FUNCTIONS_WORKER_RUNTIME must not be a common setting: Flex Consumption rejects it")
	}
	allowed := asArray(t, tp.params["hostingPlan"]["allowedValues"], "hostingPlan.allowedValues")
	if !slices.Equal(allowed, []any{"FlexConsumption", "Dedicated"}) {
		t.Errorf("hostingPlan allowed = %v: Consumption (Y1) cannot zip-deploy with identity-based storage and Elastic Premium needs a storage key", allowed)
	}

	// The package the template runs: host.json starts the binary with "serve", and the function the
	// Event Grid subscription targets exists with an Event Grid trigger.
	var host struct {
		CustomHandler struct {
			Description struct {
				DefaultExecutablePath string   `json:"defaultExecutablePath"`
				Arguments             []string `json:"arguments"`
			} `json:"description"`
		} `json:"customHandler"`
	}
	readJSON(t, "../host.json", &host)
	if d := host.CustomHandler.Description; d.DefaultExecutablePath != "kvrotator" || !slices.Equal(d.Arguments, []string{"serve"}) {
		t.Errorf("host.json customHandler = %+v, want kvrotator serve", d)
	}
	fn := tp.variables["keyVaultEventsFunction"].(string)
	var fj struct {
		Bindings []struct{ Type, Direction string } `json:"bindings"`
	}
	readJSON(t, filepath.Join("..", fn, "function.json"), &fj)
	if len(fj.Bindings) == 0 || fj.Bindings[0].Type != "eventGridTrigger" {
		t.Errorf("%s/function.json bindings = %+v, want an eventGridTrigger", fn, fj.Bindings)
	}
}

func TestSiteHardening(t *testing.T) {
	tp := loadTemplate(t)
	site := tp.one(t, "Microsoft.Web/sites")
	checks := map[string]any{
		"properties.httpsOnly":                true,
		"properties.siteConfig.minTlsVersion": "1.2",
		"properties.siteConfig.ftpsState":     "Disabled",
	}
	for path, want := range checks {
		if got := get(site, path); got != want {
			t.Errorf("site %s = %v, want %v", path, got, want)
		}
	}
	policies := tp.byType("Microsoft.Web/sites/basicPublishingCredentialsPolicies")
	got := map[string]bool{}
	for _, p := range policies {
		if get(p, "properties.allow") != false {
			t.Errorf("%v: allow = %v, want false (no publish profile)", p["name"], get(p, "properties.allow"))
		}
		got[p["name"].(string)] = true
	}
	if !got["[format('{0}/ftp', parameters('appName'))]"] || !got["[format('{0}/scm', parameters('appName'))]"] {
		t.Errorf("basic publishing credentials must be disabled for ftp and scm, got %v", got)
	}
}

func TestStorageAccountDefaults(t *testing.T) {
	tp := loadTemplate(t)
	sa := tp.one(t, "Microsoft.Storage/storageAccounts")
	for path, want := range map[string]any{
		"properties.allowSharedKeyAccess":         false,
		"properties.defaultToOAuthAuthentication": true,
		"properties.allowBlobPublicAccess":        false,
		"properties.minimumTlsVersion":            "TLS1_2",
		"properties.supportsHttpsTrafficOnly":     true,
		"properties.allowCrossTenantReplication":  false,
	} {
		if got := get(sa, path); got != want {
			t.Errorf("storage %s = %v, want %v", path, got, want)
		}
	}
	for _, c := range tp.byType("Microsoft.Storage/storageAccounts/blobServices/containers") {
		if get(c, "properties.publicAccess") != "None" {
			t.Errorf("container %v: publicAccess = %v, want None", c["name"], get(c, "properties.publicAccess"))
		}
	}
}

func TestNewVaultIsHardened(t *testing.T) {
	tp := loadTemplate(t)
	kv := tp.one(t, "Microsoft.KeyVault/vaults")
	for path, want := range map[string]any{
		"properties.enableRbacAuthorization":      true,
		"properties.enableSoftDelete":             true,
		"properties.enablePurgeProtection":        true,
		"properties.enabledForDeployment":         false,
		"properties.enabledForTemplateDeployment": false,
		"properties.enabledForDiskEncryption":     false,
		"properties.networkAcls.defaultAction":    "Deny",
		"properties.networkAcls.bypass":           "None",
		"properties.publicNetworkAccess":          "[if(variables('usePrivateEndpoint'), 'Disabled', 'Enabled')]",
	} {
		if got := get(kv, path); got != want {
			t.Errorf("vault %s = %v, want %v", path, got, want)
		}
	}
	if d := get(tp.params["vaultNetworkMode"], "defaultValue"); d != "PrivateEndpoint" {
		t.Errorf("vaultNetworkMode default = %v, want PrivateEndpoint", d)
	}
	if d, _ := get(tp.params["vaultSoftDeleteRetentionDays"], "defaultValue").(float64); d != 90 {
		t.Errorf("soft-delete retention default = %v, want 90 days", d)
	}
	pe := tp.one(t, "Microsoft.Network/privateEndpoints")
	conns := asArray(t, get(pe, "properties.privateLinkServiceConnections"), "privateLinkServiceConnections")
	if g := get(conns[0], "properties.groupIds"); len(g.([]any)) != 1 || g.([]any)[0] != "vault" {
		t.Errorf("private endpoint groupIds = %v, want [vault]", g)
	}
	if z := tp.one(t, "Microsoft.Network/privateDnsZones"); z["name"] != "[variables('privateDnsZoneName')]" || tp.variables["privateDnsZoneName"] != "privatelink.vaultcore.azure.net" {
		t.Errorf("private DNS zone = %v / %v", z["name"], tp.variables["privateDnsZoneName"])
	}
	site := tp.one(t, "Microsoft.Web/sites")
	if get(site, "properties.virtualNetworkSubnetId") != "[if(variables('vnetEnabled'), variables('integrationSubnetId'), null())]" ||
		tp.variables["vnetEnabled"] != "[or(parameters('enableVnetIntegration'), variables('createVault'))]" {
		t.Errorf("the Function App must be VNet-integrated whenever the template creates a (network-restricted) vault")
	}
	diags := tp.byType("Microsoft.Insights/diagnosticSettings")
	if len(diags) != 2 {
		t.Fatalf("want two diagnostic settings (the new vault's, the existing vaults'), got %d", len(diags))
	}
	diag, existing := diags[0], diags[1]
	if existing["condition"] != "[parameters('usageAwareRevocation')]" || existing["scope"] != "[format('Microsoft.KeyVault/vaults/{0}', parameters('vaultNames')[copyIndex()])]" ||
		get(existing, "copy.count") != "[length(parameters('vaultNames'))]" || get(existing, "properties.workspaceId") != get(diag, "properties.workspaceId") {
		t.Errorf("existing vaults' audit logs: %v", existing)
	}
	if l := asArray(t, get(existing, "properties.logs"), "logs"); get(l[0], "category") != "AuditEvent" || get(l[0], "enabled") != true {
		t.Errorf("existing vaults' audit logs = %v, want AuditEvent", l)
	}
	if get(tp.params["usageAwareRevocation"], "defaultValue") != true {
		t.Error("usageAwareRevocation should be on by default")
	}
	if diag["scope"] != "[format('Microsoft.KeyVault/vaults/{0}', variables('newVaultResourceName'))]" || get(diag, "properties.workspaceId") == nil {
		t.Errorf("vault diagnostics: scope %v, workspace %v", diag["scope"], get(diag, "properties.workspaceId"))
	}
	logs := asArray(t, get(diag, "properties.logs"), "logs")
	if get(logs[0], "categoryGroup") != "allLogs" || get(logs[0], "enabled") != true {
		t.Errorf("vault diagnostics logs = %v, want allLogs (AuditEvent)", logs)
	}

	// Defender for Key Vault: a documented switch, off by default (subscription-wide and billed).
	if d := get(tp.params["enableDefenderForKeyVault"], "defaultValue"); d != false {
		t.Errorf("enableDefenderForKeyVault default = %v", d)
	}
	var pricing object
	for _, d := range tp.byType("Microsoft.Resources/deployments") {
		for _, r := range asArray(t, get(d, "properties.template.resources"), "nested resources") {
			if get(r, "type") == "Microsoft.Security/pricings" {
				pricing = r.(map[string]any)
				if d["condition"] != "[parameters('enableDefenderForKeyVault')]" {
					t.Errorf("Defender deployment condition = %v", d["condition"])
				}
			}
		}
	}
	if pricing == nil || pricing["name"] != "KeyVaults" || get(pricing, "properties.pricingTier") != "Standard" {
		t.Errorf("Defender for Key Vault pricing = %v", pricing)
	}
}

func TestEventSubscriptionsFilterRetryAndDeadLetter(t *testing.T) {
	tp := loadTemplate(t)
	topic := tp.one(t, "Microsoft.EventGrid/systemTopics")
	if get(topic, "properties.topicType") != "Microsoft.KeyVault.vaults" || get(topic, "identity.type") != "SystemAssigned" {
		t.Errorf("system topic = %v", topic["properties"])
	}
	sub := tp.one(t, "Microsoft.EventGrid/systemTopics/eventSubscriptions")
	if get(sub, "properties.filter.includedEventTypes") != "[variables('rotationEventTypes')]" {
		t.Fatalf("includedEventTypes = %v", get(sub, "properties.filter.includedEventTypes"))
	}
	types := asArray(t, tp.variables["rotationEventTypes"], "rotationEventTypes")
	if !slices.Equal(types, []any{"Microsoft.KeyVault.SecretNearExpiry", "Microsoft.KeyVault.SecretExpired"}) {
		t.Errorf("event types = %v, want exactly SecretNearExpiry and SecretExpired (never SecretNewVersionCreated)", types)
	}
	filter := asObject(t, get(sub, "properties.filter"), "filter")
	for k := range filter {
		if k != "includedEventTypes" && k != "enableAdvancedFilteringOnArrays" {
			t.Errorf("filter.%s: the subscription filters on event types only", k)
		}
	}
	if get(sub, "properties.destination.endpointType") != "AzureFunction" ||
		get(sub, "properties.destination.properties.resourceId") != "[format('{0}/functions/{1}', resourceId('Microsoft.Web/sites', parameters('appName')), variables('keyVaultEventsFunction'))]" ||
		tp.variables["keyVaultEventsFunction"] != "KeyVaultEvents" {
		t.Errorf("destination = %v, want the KeyVaultEvents function (azureFunction endpoint)", get(sub, "properties.destination"))
	}
	if n := get(sub, "properties.destination.properties.maxEventsPerBatch"); n != float64(1) {
		t.Errorf("maxEventsPerBatch = %v, want 1", n)
	}
	retry := asObject(t, get(sub, "properties.retryPolicy"), "retryPolicy")
	for key, param := range map[string]string{"maxDeliveryAttempts": "eventMaxDeliveryAttempts", "eventTimeToLiveInMinutes": "eventTimeToLiveInMinutes"} {
		if retry[key] != "[parameters('"+param+"')]" {
			t.Errorf("retryPolicy.%s = %v", key, retry[key])
		}
		p := tp.params[param]
		def, lo, hi := p["defaultValue"].(float64), p["minValue"].(float64), p["maxValue"].(float64)
		if lo < 1 || def < lo || def > hi {
			t.Errorf("%s: default %v outside [%v, %v]", param, def, lo, hi)
		}
	}
	if hi := tp.params["eventMaxDeliveryAttempts"]["maxValue"]; hi != float64(30) {
		t.Errorf("eventMaxDeliveryAttempts max = %v (Event Grid allows 1-30)", hi)
	}
	if hi := tp.params["eventTimeToLiveInMinutes"]["maxValue"]; hi != float64(1440) {
		t.Errorf("eventTimeToLiveInMinutes max = %v (Event Grid allows 1-1440)", hi)
	}
	dl := get(sub, "properties.deadLetterWithResourceIdentity")
	if get(dl, "identity.type") != "SystemAssigned" ||
		get(dl, "deadLetterDestination.endpointType") != "StorageBlob" ||
		get(dl, "deadLetterDestination.properties.blobContainerName") != "[variables('deadLetterContainer')]" ||
		get(dl, "deadLetterDestination.properties.resourceId") != "[resourceId('Microsoft.Storage/storageAccounts', variables('storageAccountName'))]" {
		t.Errorf("dead-letter = %v, want the storage container, written with the topic's identity (shared keys are off)", dl)
	}
	if get(sub, "properties.eventDeliverySchema") != "EventGridSchema" {
		t.Errorf("eventDeliverySchema = %v", get(sub, "properties.eventDeliverySchema"))
	}
}

func TestOutcomeTopicAcceptsEntraOnly(t *testing.T) {
	tp := loadTemplate(t)
	topic := tp.one(t, "Microsoft.EventGrid/topics")
	if topic["condition"] != "[parameters('createOutcomeTopic')]" || get(topic, "properties.disableLocalAuth") != true {
		t.Errorf("outcome topic: condition %v, disableLocalAuth %v", topic["condition"], get(topic, "properties.disableLocalAuth"))
	}
	if !strings.Contains(tp.siteSettingsExpr(t), "createObject('name', '"+config.EnvEventTopic+"', 'value', reference(resourceId('Microsoft.EventGrid/topics', variables('outcomeTopicName')), '2022-06-15').endpoint)") {
		t.Errorf("%s must be the topic's endpoint", config.EnvEventTopic)
	}
}

func TestOutputs(t *testing.T) {
	tp := loadTemplate(t)
	out := asObject(t, tp.raw["outputs"], "outputs")
	if get(out, "functionAppName.value") != "[parameters('appName')]" {
		t.Errorf("functionAppName output = %v", get(out, "functionAppName.value"))
	}
	if get(out, "principalId.value") != "[reference(resourceId('Microsoft.Web/sites', parameters('appName')), '2024-04-01', 'Full').identity.principalId]" {
		t.Errorf("principalId output = %v", get(out, "principalId.value"))
	}
}

func TestParametersExampleMatchesTemplate(t *testing.T) {
	tp := loadTemplate(t)
	var ex struct {
		Schema         string            `json:"$schema"`
		ContentVersion string            `json:"contentVersion"`
		Parameters     map[string]object `json:"parameters"`
	}
	readJSON(t, "azuredeploy.parameters.example.json", &ex)
	if ex.Schema != "https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#" || ex.ContentVersion == "" {
		t.Errorf("parameters file header: %q %q", ex.Schema, ex.ContentVersion)
	}
	jsonType := map[string]string{"string": "string", "securestring": "string", "int": "float64", "bool": "bool", "array": "[]interface {}", "object": "map[string]interface {}"}
	for name, v := range ex.Parameters {
		p, ok := tp.params[name]
		if !ok {
			t.Errorf("parameters example sets %s, which the template does not declare", name)
			continue
		}
		val, ok := v["value"]
		if !ok {
			t.Errorf("parameters example %s: no value (Key Vault references are not used: nothing here is secret)", name)
			continue
		}
		want := jsonType[strings.ToLower(p["type"].(string))]
		if got := typeName(val); got != want {
			t.Errorf("parameters example %s: %s, want %s", name, got, want)
		}
		if allowed, ok := p["allowedValues"].([]any); ok && !slices.Contains(allowed, val) {
			t.Errorf("parameters example %s = %v, not in %v", name, val, allowed)
		}
	}
}

func typeName(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case float64:
		return "float64"
	case bool:
		return "bool"
	case []any:
		return "[]interface {}"
	case map[string]any:
		return "map[string]interface {}"
	}
	return "null"
}
