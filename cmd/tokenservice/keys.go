package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/tokenservice/tokenservice/pkg/app"
	"github.com/tokenservice/tokenservice/pkg/auth"
)

// keysCommand holds the server-side signing-key commands. Serve rotates on
// its own every --key-rotation-period; these rotate at once (say, after a
// suspected leak) and show where each key stands.
func keysCommand(e *env) *cobra.Command {
	var kekFile string
	var propagation, ttl, reload time.Duration
	cmd := group("keys", "Rotate and list the access tokens' signing keys, in the database", groupServer)
	cmd.Long = `Rotate and list the access tokens' signing keys, in the database, with serve's database
flags. A new key is published in the JWKS at once and signs after the propagation delay;
every replica takes it up within its --key-reload-interval, without a restart.`
	cfg := dbFlags(cmd.PersistentFlags())
	cmd.PersistentFlags().StringVar(&kekFile, "key-encryption-key-file", "", "serve's key-encryption key, if it has one: a new key is stored sealed under it")
	// serve's flags that say how long a key verifies after its successor
	// signs, so these commands call a key expired when serve does.
	cmd.PersistentFlags().DurationVar(&ttl, "access-token-ttl", 15*time.Minute, "serve's --access-token-ttl")
	cmd.PersistentFlags().DurationVar(&reload, "key-reload-interval", time.Minute, "serve's --key-reload-interval")
	fromEnv(cmd.PersistentFlags(), "key-encryption-key-file", "access-token-ttl", "key-reload-interval")
	keyRing := func(cmd *cobra.Command) (*auth.KeyRing, error) {
		var kek []byte
		if kekFile != "" {
			var err error
			if kek, err = readKEK(kekFile); err != nil {
				return nil, err
			}
		}
		_, ring, err := cmd.Context().Value(dbKey{}).(*app.Database).Keys(kek, auth.Rotation{
			PropagationDelay: propagation,
			VerifyFor:        auth.VerifyFor(ttl, reload),
		})
		return ring, err
	}

	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Add a signing key now: published at once, signing after the propagation delay",
		Args:  args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ring, err := keyRing(cmd)
			if err != nil {
				return err
			}
			now := time.Now().UTC()
			if _, err := ring.Rotate(cmd.Context(), now, true); err != nil {
				return err
			}
			fmt.Fprintf(e.stdout, "added signing key %s: published now, signing from %s\n",
				ring.Current().Newest(), now.Add(propagation).Format(time.RFC3339))
			return nil
		},
	}
	rotate.Flags().DurationVar(&propagation, "key-propagation-delay", 10*time.Minute, "how long the new key is published before it signs: at least serve's --jwks-max-age plus --key-reload-interval")
	fromEnv(rotate.Flags(), "key-propagation-delay")

	list := &cobra.Command{
		Use:   "list",
		Short: "List the signing keys: which signs, which are published, which wait to sign",
		Args:  args(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ring, err := keyRing(cmd)
			if err != nil {
				return err
			}
			if err := ring.Load(cmd.Context(), time.Now().UTC()); err != nil {
				return err
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "KID\tSTATE\tCREATED\tSIGNS FROM")
			for _, k := range ring.Current().Keys() {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", k.ID, k.State, k.CreateTime.Format(time.RFC3339), k.ActivateTime.Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	cmd.AddCommand(rotate, list)
	for _, sub := range cmd.Commands() {
		sub.RunE = withDatabase(cfg, false, sub.RunE)
	}
	return cmd
}
