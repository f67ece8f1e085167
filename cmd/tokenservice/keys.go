package main

import (
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tokenservice/tokenservice/pkg/app"
	"github.com/tokenservice/tokenservice/pkg/auth"
	"github.com/tokenservice/tokenservice/pkg/server"
)

// keysCommand holds the server-side signing-key commands. Serve rotates on
// its own every --key-rotation-period and deletes the keys no valid token
// needs; these rotate at once (say, after a suspected leak), show where each
// key stands and withdraw a key.
func keysCommand(e *env) *cobra.Command {
	cmd := group("keys", "Rotate, list, delete and reseal the access tokens' signing keys, in the database", groupServer)
	cmd.Long = `Rotate, list, delete and reseal the access tokens' signing keys, in the database, with
serve's database flags. Every replica takes a change up within its --key-reload-interval, without
a restart.`
	cfg := dbFlags(cmd.PersistentFlags())
	cmd.AddCommand(keysRotateCommand(e), keysListCommand(e), keysDeleteCommand(e), keysResealCommand(e))
	for _, sub := range cmd.Commands() {
		sub.RunE = withDatabase(cfg, sub.RunE)
	}
	return cmd
}

func databaseOf(cmd *cobra.Command) *app.Database {
	return cmd.Context().Value(dbKey{}).(*app.Database)
}

func keysRotateCommand(e *env) *cobra.Command {
	var kek *kekFiles
	var propagation, maxAge, reload time.Duration
	cmd := &cobra.Command{
		Use:   "rotate",
		Short: "Add a signing key now: published at once, signing after the propagation delay",
		Long: `Add a signing key now. It is published in every replica's JWKS within a reload
interval and signs after --key-propagation-delay; the key it replaces keeps verifying
the tokens it signed until they expire, then serve deletes it. The timing flags must
be serve's: the delay is checked against them as serve checks it.`,
		Args: args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkKeyTiming(propagation, maxAge, reload); err != nil {
				return err
			}
			current, old, err := kek.load()
			if err != nil {
				return err
			}
			// VerifyFor 0: this ring never deletes a key; serve, which knows
			// the tokens' lifetime, does.
			ring, err := databaseOf(cmd).KeyRing(current, old, auth.Rotation{PropagationDelay: propagation})
			if err != nil {
				return err
			}
			added, err := ring.Rotate(cmd.Context(), time.Now().UTC(), true)
			if err != nil {
				return err
			}
			if added == nil {
				return errors.New("another process added a key at the same moment: run tokenservice keys list")
			}
			fmt.Fprintf(e.stdout, "added signing key %s: published now, signing from %s\n",
				added.ID, added.ActivateTime.Format(time.RFC3339))
			return nil
		},
	}
	fs := cmd.Flags()
	kek = kekFlags(fs, "serve's key-encryption key, if it has one: the new key is stored sealed under it")
	fs.DurationVar(&propagation, "key-propagation-delay", app.DefaultKeyPropagationDelay, "how long the new key is published before it signs: at least --jwks-max-age plus --key-reload-interval")
	fs.DurationVar(&maxAge, "jwks-max-age", server.DefaultJWKSMaxAge, "serve's --jwks-max-age")
	fs.DurationVar(&reload, "key-reload-interval", time.Minute, "serve's --key-reload-interval")
	fromEnv(fs, "key-encryption-key-file", "old-key-encryption-key-file", "key-propagation-delay", "jwks-max-age", "key-reload-interval")
	return cmd
}

func keysListCommand(e *env) *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List the signing keys: which signs, which wait to sign, which verify the tokens they signed",
		Long: `List the signing keys and where each stands: pending (published, signing from its
SIGNS FROM time), signing, or published (replaced, verifying the tokens it signed until
serve deletes it). It reads no private key, so it needs no key-encryption key.`,
		Args: args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			states, err := databaseOf(cmd).KeyStates(cmd.Context(), time.Now().UTC())
			if err != nil {
				return err
			}
			if len(states) == 0 {
				fmt.Fprintln(e.stdout, "no signing keys yet: serve makes the first when it starts")
				return nil
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "KID\tSTATE\tCREATED\tSIGNS FROM")
			for _, k := range states {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", safe(k.ID), k.Status, k.CreateTime.Format(time.RFC3339), k.ActivateTime.Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
}

func keysDeleteCommand(e *env) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "delete KID",
		Short: "Withdraw a signing key: gone from every JWKS within a reload interval",
		Long: `Delete a signing key (a leaked one, say): every replica stops publishing it within its
--key-reload-interval, and gateways refuse the tokens it signed once their cached JWKS
expires. The key that signs is refused unless --force: rotate, wait until the new key
signs (tokenservice keys list), then delete the old one. Forced, the key that signed
before it signs again if it is still published, else the pending key signs at once,
before some gateways may have it.`,
		Args: args("KID"),
		RunE: func(cmd *cobra.Command, argv []string) error {
			err := databaseOf(cmd).DeleteSigningKey(cmd.Context(), argv[0], force)
			if errors.Is(err, auth.ErrSigningKeyInUse) {
				return fmt.Errorf("%w: run tokenservice keys rotate, and delete it once the new key signs (tokenservice keys list); "+
					"--force deletes it now (see tokenservice keys delete --help for which key then signs)", err)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "deleted signing key %s\n", argv[0])
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "delete the key even if it signs now")
	return cmd
}

func keysResealCommand(e *env) *cobra.Command {
	var kek *kekFiles
	cmd := &cobra.Command{
		Use:   "reseal",
		Short: "Seal every signing key and server secret under the key-encryption key, in one transaction",
		Long: `Seal every signing key and server secret under --key-encryption-key-file, in one
transaction: those stored in the clear (before serve had a key-encryption key), and
those sealed under --old-key-encryption-key-file (changing the key-encryption key).
If one value opens under neither, nothing changes.

To change the key-encryption key without downtime (README, "Sealing keys and changing
the key-encryption key"): let every replica read the new key, then seal under it, then
keys reseal, then drop the old one.`,
		Args: args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			current, old, err := kek.load()
			if err != nil {
				return err
			}
			if current == nil {
				return usageError(cmd, "--key-encryption-key-file is required: the key to seal under")
			}
			n, err := databaseOf(cmd).Reseal(cmd.Context(), current, old)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "sealed %d values under the key-encryption key\n", n)
			return nil
		},
	}
	kek = kekFlags(cmd.Flags(), "the key-encryption key to seal under: serve's from now on")
	fromEnv(cmd.Flags(), "key-encryption-key-file", "old-key-encryption-key-file")
	return cmd
}
