package azurekeys

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// A kind describes one ARM resource type whose keys the provider rotates: where its key actions live,
// what their bodies and responses look like, which slots pair up, how a new key is verified and what a
// connection string looks like. Everything else is shared (arm.go).
type kind struct {
	// resourceType is the full ARM type, e.g. Microsoft.ServiceBus/namespaces/queues/authorizationRules.
	resourceType string
	// title names the type for people: "Storage account".
	title string
	// family groups types with one key contract (the Service Bus rule types, the Event Grid types).
	family family
	// apiVersion is the default api-version of the key actions (tag azure-keys-api-version overrides it).
	apiVersion string
	// listAction and regenAction are the POST actions under the resource id.
	listAction, regenAction string
	// slots are the key slots in pairs: slots[2i] and slots[2i+1] alternate.
	slots []slot
	// regenRequest returns the path suffix (after regenAction, "" for none) and the JSON body (nil for
	// none) that regenerate s. keys is the current listKeys answer (App Configuration names its keys by
	// ids that only listKeys knows).
	regenRequest func(s slot, keys keySet) (suffix string, body any, err error)
	// parse reads a listKeys answer.
	parse func(body []byte) (keySet, string, error)
	// verify is the data-plane check, or verifyListKeys where none is cheap and read-only.
	verify verifyMethod
	// conn builds the connection-string form, nil when the type has none.
	conn connStringer
	// role is a built-in role that grants the key actions (with fewer rights than Contributor where one exists).
	role string
}

// family is a group of resource types that share a key contract.
type family string

const (
	famStorage    family = "storage"
	famCosmos     family = "cosmos"
	famCognitive  family = "cognitive"
	famServiceBus family = "servicebus"
	famEventHubs  family = "eventhubs"
	famEventGrid  family = "eventgrid"
	famRedis      family = "redis"
	famSearch     family = "search"
	famAppConfig  family = "appconfig"
)

// slot is one key of a resource.
type slot struct {
	// ID is what CredentialId holds for this slot, as written by the provider.
	ID string
	// wire is the slot's name in the regenerate request (keyName, keyKind, keyType, path segment).
	wire string
	// field is where listKeys returns the slot's value: a JSON field, or for list-shaped answers the
	// key's name.
	field string
	// connField is the JSON field holding the slot's ready-made connection string ("" for none).
	connField string
}

// key is one slot's state as listKeys reports it.
type key struct {
	Value string
	// Conn is the connection string the service itself returns for the slot (Service Bus, Event Hubs,
	// App Configuration), "" otherwise.
	Conn string
	// id is the service's own key id (App Configuration), "" otherwise.
	id string
}

// keySet maps slot IDs to keys.
type keySet map[string]key

// actions are the ARM permissions the provider needs on the resource.
func (k *kind) actions() []string {
	return []string{k.resourceType + "/" + k.listAction + "/action", k.resourceType + "/" + k.regenAction + "/action"}
}

// slotByName finds a slot by a CredentialId value, tolerating case, spaces, hyphens, underscores and a
// trailing "key" ("PrimaryKey", "primary", "Primary Read Only" and "primaryReadonly" all work).
func (k *kind) slotByName(name string) (slot, bool) {
	n := normSlot(name)
	if n == "" {
		return slot{}, false
	}
	for _, s := range k.slots {
		if normSlot(s.ID) == n {
			return s, true
		}
	}
	return slot{}, false
}

// partner is the other slot of s's pair.
func (k *kind) partner(s slot) slot {
	for i, t := range k.slots {
		if t.ID == s.ID {
			return k.slots[i^1]
		}
	}
	panic("azurekeys: slot " + s.ID + " is not a slot of " + k.resourceType)
}

func (k *kind) slotIDs() string {
	ids := make([]string, len(k.slots))
	for i, s := range k.slots {
		ids[i] = s.ID
	}
	if len(ids) == 2 {
		return ids[0] + " or " + ids[1]
	}
	return strings.Join(ids[:len(ids)-1], ", ") + " or " + ids[len(ids)-1]
}

func normSlot(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	s = strings.NewReplacer(" ", "", "-", "", "_", "").Replace(s)
	if t := strings.TrimSuffix(s, "key"); t != "" {
		s = t
	}
	return s
}

// The slot sets. IDs are the spellings the Azure documentation and the rotation samples use.
var (
	storageSlots = []slot{{ID: "key1", wire: "key1", field: "key1"}, {ID: "key2", wire: "key2", field: "key2"}}
	cosmosSlots  = []slot{
		{ID: "primary", wire: "primary", field: "primaryMasterKey"},
		{ID: "secondary", wire: "secondary", field: "secondaryMasterKey"},
		{ID: "primaryReadonly", wire: "primaryReadonly", field: "primaryReadonlyMasterKey"},
		{ID: "secondaryReadonly", wire: "secondaryReadonly", field: "secondaryReadonlyMasterKey"},
	}
	cognitiveSlots = []slot{{ID: "Key1", wire: "Key1", field: "key1"}, {ID: "Key2", wire: "Key2", field: "key2"}}
	sasRuleSlots   = []slot{
		{ID: "PrimaryKey", wire: "PrimaryKey", field: "primaryKey", connField: "primaryConnectionString"},
		{ID: "SecondaryKey", wire: "SecondaryKey", field: "secondaryKey", connField: "secondaryConnectionString"},
	}
	eventGridSlots = []slot{{ID: "key1", wire: "key1", field: "key1"}, {ID: "key2", wire: "key2", field: "key2"}}
	redisSlots     = []slot{{ID: "Primary", wire: "Primary", field: "primaryKey"}, {ID: "Secondary", wire: "Secondary", field: "secondaryKey"}}
	searchSlots    = []slot{{ID: "primary", wire: "primary", field: "primaryKey"}, {ID: "secondary", wire: "secondary", field: "secondaryKey"}}
	appConfigSlots = []slot{
		{ID: "Primary", field: "Primary"}, {ID: "Secondary", field: "Secondary"},
		{ID: "Primary Read Only", field: "Primary Read Only"}, {ID: "Secondary Read Only", field: "Secondary Read Only"},
	}
)

// bodyField returns a regenRequest that sends {"<name>": "<slot's wire name>"}.
func bodyField(name string) func(slot, keySet) (string, any, error) {
	return func(s slot, _ keySet) (string, any, error) { return "", map[string]string{name: s.wire}, nil }
}

// kinds lists the supported resource types, keyed by lower-case type.
var kinds = func() map[string]*kind {
	m := map[string]*kind{}
	add := func(k *kind) { m[strings.ToLower(k.resourceType)] = k }
	add(&kind{
		resourceType: "Microsoft.Storage/storageAccounts", title: "Storage account", family: famStorage,
		apiVersion: "2024-01-01", listAction: "listKeys", regenAction: "regenerateKey",
		slots: storageSlots, regenRequest: bodyField("keyName"), parse: parseStorage,
		verify: verifyStorage, conn: connStorage, role: "Storage Account Key Operator Service Role",
	})
	add(&kind{
		resourceType: "Microsoft.DocumentDB/databaseAccounts", title: "Cosmos DB account", family: famCosmos,
		apiVersion: "2024-11-15", listAction: "listKeys", regenAction: "regenerateKey",
		slots: cosmosSlots, regenRequest: bodyField("keyKind"), parse: parseFields(cosmosSlots),
		verify: verifyCosmos, conn: connCosmos, role: "DocumentDB Account Contributor",
	})
	add(&kind{
		resourceType: "Microsoft.CognitiveServices/accounts", title: "Cognitive Services / Azure OpenAI account", family: famCognitive,
		apiVersion: "2024-10-01", listAction: "listKeys", regenAction: "regenerateKey",
		slots: cognitiveSlots, regenRequest: bodyField("keyName"), parse: parseFields(cognitiveSlots),
		verify: verifyListKeys, role: "Cognitive Services Contributor",
	})
	for _, t := range []string{"namespaces/authorizationRules", "namespaces/queues/authorizationRules", "namespaces/topics/authorizationRules"} {
		add(&kind{
			resourceType: "Microsoft.ServiceBus/" + t, title: "Service Bus authorization rule", family: famServiceBus,
			apiVersion: "2024-01-01", listAction: "listKeys", regenAction: "regenerateKeys",
			slots: sasRuleSlots, regenRequest: bodyField("keyType"), parse: parseFields(sasRuleSlots),
			verify: verifyListKeys, conn: connFromService, role: "Contributor",
		})
	}
	for _, t := range []string{"namespaces/authorizationRules", "namespaces/eventhubs/authorizationRules"} {
		add(&kind{
			resourceType: "Microsoft.EventHub/" + t, title: "Event Hubs authorization rule", family: famEventHubs,
			apiVersion: "2024-01-01", listAction: "listKeys", regenAction: "regenerateKeys",
			slots: sasRuleSlots, regenRequest: bodyField("keyType"), parse: parseFields(sasRuleSlots),
			verify: verifyListKeys, conn: connFromService, role: "Contributor",
		})
	}
	for _, t := range []string{"topics", "domains"} {
		add(&kind{
			resourceType: "Microsoft.EventGrid/" + t, title: "Event Grid " + strings.TrimSuffix(t, "s"), family: famEventGrid,
			apiVersion: "2025-02-15", listAction: "listKeys", regenAction: "regenerateKey",
			slots: eventGridSlots, regenRequest: bodyField("keyName"), parse: parseFields(eventGridSlots),
			verify: verifyListKeys, role: "EventGrid Contributor",
		})
	}
	add(&kind{
		resourceType: "Microsoft.Cache/redis", title: "Azure Cache for Redis", family: famRedis,
		apiVersion: "2024-11-01", listAction: "listKeys", regenAction: "regenerateKey",
		slots: redisSlots, regenRequest: bodyField("keyType"), parse: parseFields(redisSlots),
		verify: verifyListKeys, conn: connRedis, role: "Redis Cache Contributor",
	})
	add(&kind{
		resourceType: "Microsoft.Search/searchServices", title: "Azure AI Search service (admin keys)", family: famSearch,
		apiVersion: "2023-11-01", listAction: "listAdminKeys", regenAction: "regenerateAdminKey",
		slots: searchSlots, parse: parseFields(searchSlots), verify: verifySearch, role: "Search Service Contributor",
		// POST {id}/regenerateAdminKey/{keyKind}, no body.
		regenRequest: func(s slot, _ keySet) (string, any, error) { return s.wire, nil, nil },
	})
	add(&kind{
		resourceType: "Microsoft.AppConfiguration/configurationStores", title: "App Configuration store", family: famAppConfig,
		apiVersion: "2024-06-01", listAction: "listKeys", regenAction: "regenerateKey",
		slots: appConfigSlots, parse: parseAppConfig, verify: verifyListKeys, conn: connFromService,
		role: "Contributor",
		// App Configuration regenerates by the key's id, which listKeys reports next to its name.
		regenRequest: func(s slot, keys keySet) (string, any, error) {
			k, ok := keys[s.ID]
			if !ok || k.id == "" {
				return "", nil, fmt.Errorf("listKeys reported no key named %q", s.field)
			}
			return "", map[string]string{"id": k.id}, nil
		},
	})
	return m
}()

// kindNames lists the supported resource types, sorted, for error messages and documentation.
func kindNames() []string {
	names := make([]string, 0, len(kinds))
	for _, k := range kinds {
		names = append(names, k.resourceType)
	}
	sort.Strings(names)
	return names
}

// parseFields reads an answer that holds each slot's value in a top-level field:
// {"primaryKey": "…", "secondaryKey": "…", "primaryConnectionString": "…", …}.
func parseFields(slots []slot) func([]byte) (keySet, string, error) {
	return func(body []byte) (keySet, string, error) {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(body, &m); err != nil {
			return nil, "", errNotJSON
		}
		ks := keySet{}
		for _, s := range slots {
			k := key{Value: jsonString(m, s.field)}
			if s.connField != "" {
				k.Conn = jsonString(m, s.connField)
			}
			if k.Value != "" {
				ks[s.ID] = k
			}
		}
		return ks, "", nil
	}
}

// parseStorage reads {"keys":[{"keyName":"key1","value":"…","permissions":"FULL"},…]}.
func parseStorage(body []byte) (keySet, string, error) {
	var r struct {
		Keys []struct {
			KeyName string `json:"keyName"`
			Value   string `json:"value"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, "", errNotJSON
	}
	ks := keySet{}
	for _, k := range r.Keys {
		for _, s := range storageSlots {
			if strings.EqualFold(k.KeyName, s.field) && k.Value != "" {
				ks[s.ID] = key{Value: k.Value}
			}
		}
	}
	return ks, "", nil
}

// parseAppConfig reads one page of {"value":[{"id","name","value","connectionString","readOnly"}],"nextLink"}.
func parseAppConfig(body []byte) (keySet, string, error) {
	var r struct {
		Value []struct {
			ID               string `json:"id"`
			Name             string `json:"name"`
			Value            string `json:"value"`
			ConnectionString string `json:"connectionString"`
		} `json:"value"`
		NextLink string `json:"nextLink"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, "", errNotJSON
	}
	ks := keySet{}
	for _, k := range r.Value {
		for _, s := range appConfigSlots {
			if strings.EqualFold(k.Name, s.field) && k.Value != "" {
				ks[s.ID] = key{Value: k.Value, Conn: k.ConnectionString, id: k.ID}
			}
		}
	}
	return ks, r.NextLink, nil
}

func jsonString(m map[string]json.RawMessage, field string) string {
	raw, ok := m[field]
	if !ok {
		for k, v := range m {
			if strings.EqualFold(k, field) {
				raw, ok = v, true
				break
			}
		}
	}
	var s string
	if ok {
		// A non-string is treated as absent; the caller reports the slot as missing.
		_ = json.Unmarshal(raw, &s)
	}
	return s
}
