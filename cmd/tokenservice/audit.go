package main

import "github.com/spf13/cobra"

// auditCommand holds the audit trail's commands.
//
// (A stand-in until audit-ops' auditCommand, with the server-side verify
// and checkpoint, is merged: that one adds auditListCommand(e) in its
// place.)
func auditCommand(e *env) *cobra.Command {
	return group("audit", "Read the audit trail", groupServer, auditListCommand(e))
}
