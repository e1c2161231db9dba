package emulator

import (
	"fmt"
	"strings"
)

// Role is an Azure built-in role for Key Vault data-plane access.
type Role string

// The built-in roles the emulator understands. Their data actions are those of the Azure built-in roles
// of the same name.
const (
	RoleReader         Role = "Key Vault Reader"          // list, read metadata; no values
	RoleSecretsUser    Role = "Key Vault Secrets User"    // read metadata and values
	RoleSecretsOfficer Role = "Key Vault Secrets Officer" // everything on secrets
	RoleAdministrator  Role = "Key Vault Administrator"   // everything
)

// Data actions, as Azure RBAC names them.
const (
	actReadMetadata = "Microsoft.KeyVault/vaults/secrets/readMetadata/action"
	actGetSecret    = "Microsoft.KeyVault/vaults/secrets/getSecret/action"
	actSetSecret    = "Microsoft.KeyVault/vaults/secrets/setSecret/action"
	actUpdate       = "Microsoft.KeyVault/vaults/secrets/update/action"
	actDelete       = "Microsoft.KeyVault/vaults/secrets/delete"
	actBackup       = "Microsoft.KeyVault/vaults/secrets/backup/action"
	actRestore      = "Microsoft.KeyVault/vaults/secrets/restore/action"
	actRecover      = "Microsoft.KeyVault/vaults/deletedSecrets/recover/action"
	actPurge        = "Microsoft.KeyVault/vaults/deletedSecrets/delete"
	actReadDeleted  = "Microsoft.KeyVault/vaults/deletedSecrets/read"
)

var roleActions = map[Role][]string{
	RoleReader:         {actReadMetadata, actReadDeleted},
	RoleSecretsUser:    {actReadMetadata, actGetSecret},
	RoleSecretsOfficer: {"*"},
	RoleAdministrator:  {"*"},
}

// opAction maps each operation (named as the azsecrets method) to the data action it needs.
var opAction = map[string]string{
	opSet:          actSetSecret,
	opGet:          actGetSecret,
	opUpdate:       actUpdate,
	opList:         actReadMetadata,
	opListVersions: actReadMetadata,
	opDelete:       actDelete,
	opGetDeleted:   actReadDeleted,
	opListDeleted:  actReadDeleted,
	opPurge:        actPurge,
	opRecover:      actRecover,
	opBackup:       actBackup,
	opRestore:      actRestore,
}

// ParseRole accepts a built-in role's display name or a short form: reader, secrets-user,
// secrets-officer, administrator (case-insensitive).
func ParseRole(s string) (Role, error) {
	n := strings.ToLower(strings.TrimSpace(s))
	n = strings.TrimPrefix(strings.ReplaceAll(strings.ReplaceAll(n, " ", "-"), "_", "-"), "key-vault-")
	switch n {
	case "reader":
		return RoleReader, nil
	case "secrets-user":
		return RoleSecretsUser, nil
	case "secrets-officer":
		return RoleSecretsOfficer, nil
	case "administrator", "admin":
		return RoleAdministrator, nil
	}
	return "", fmt.Errorf("unknown role %q (want reader, secrets-user, secrets-officer or administrator)", s)
}

// allowed reports whether the identity may perform action on vault.
func (id *IdentityConfig) allowed(vault, action string) bool {
	for _, ra := range id.Roles {
		if ra.Vault != "*" && !strings.EqualFold(ra.Vault, vault) {
			continue
		}
		for _, a := range roleActions[ra.Role] {
			if a == "*" || a == action {
				return true
			}
		}
	}
	return false
}
