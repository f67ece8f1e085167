package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/tokenservice/tokenservice/pkg/auth"
	"github.com/tokenservice/tokenservice/pkg/domain"
)

func runUser(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) < 1 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	sub, rest := args[0], args[1:]
	fs := newFlagSet("user "+sub, "Administer users.", stderr)
	dbCfg := dbFlags(fs)
	admin := fs.Bool("admin", false, "create: the user is an administrator (may act for any user)")
	machine := fs.Bool("machine", false, "create: a machine user (no password), owned by --owner")
	owner := fs.String("owner", "", "create --machine: the owning human user's username")
	if err := parseFlags(fs, rest, getenv); err != nil {
		return err
	}
	name := fs.Arg(0)
	if (sub != "list" && fs.NArg() != 1) || (sub == "list" && fs.NArg() != 0) {
		fs.Usage()
		return errUsage
	}
	if sub != "list" {
		if err := domain.ValidateUsername(name); err != nil {
			return err
		}
	}
	st, err := openStore(ctx, *dbCfg)
	if err != nil {
		return err
	}
	defer st.Close()

	switch sub {
	case "create":
		u := &domain.User{Username: name, Admin: *admin, CreateTime: time.Now().UTC().Truncate(time.Microsecond)}
		if u.ID, err = auth.RandomID(rand.Reader); err != nil {
			return err
		}
		if *machine {
			o, err := st.UserByUsername(ctx, *owner)
			if err != nil {
				return fmt.Errorf("--owner %q: %w", *owner, err)
			}
			if o.IsMachine() {
				return fmt.Errorf("--owner %q is a machine user: owners are human users", *owner)
			}
			u.OwnerID = o.ID
		} else {
			if *owner != "" {
				return errors.New("--owner goes with --machine")
			}
			if u.PasswordHash, err = readAndHashPassword(stdin, stderr); err != nil {
				return err
			}
		}
		if err := st.CreateUser(ctx, u); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "created user %s with id %s\n", u.Username, u.ID)
	case "list":
		users, err := st.ListUsers(ctx)
		if err != nil {
			return err
		}
		byID := make(map[string]string, len(users))
		for _, u := range users {
			byID[u.ID] = u.Username
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tUSERNAME\tKIND\tOWNER\tADMIN\tCREATED")
		for _, u := range users {
			kind := "human"
			if u.IsMachine() {
				kind = "machine"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%s\n", u.ID, u.Username, kind, byID[u.OwnerID], u.Admin, u.CreateTime.Format(time.RFC3339))
		}
		return tw.Flush()
	case "delete":
		u, err := st.UserByUsername(ctx, name)
		if err != nil {
			return err
		}
		if err := st.DeleteUser(ctx, u.ID); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deleted user %s, its machine users and their tokens\n", name)
	case "set-password":
		u, err := st.UserByUsername(ctx, name)
		if err != nil {
			return err
		}
		if u.IsMachine() {
			return errors.New("machine users have no password: they authenticate with API tokens")
		}
		hash, err := readAndHashPassword(stdin, stderr)
		if err != nil {
			return err
		}
		if err := st.SetPasswordHash(ctx, u.ID, hash); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "password set for %s\n", name)
	default:
		fmt.Fprintf(stderr, "unknown user command %q\n\n%s", sub, usage)
		return errUsage
	}
	return nil
}

// readAndHashPassword reads a password, never from a flag: from the terminal
// (asked twice, not echoed) or else the first line of stdin.
func readAndHashPassword(stdin io.Reader, stderr io.Writer) (string, error) {
	var password string
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(stderr, "Password: ")
		p1, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", err
		}
		fmt.Fprint(stderr, "Again: ")
		p2, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", err
		}
		if string(p1) != string(p2) {
			return "", errors.New("the passwords differ")
		}
		password = string(p1)
	} else {
		line, err := bufio.NewReader(io.LimitReader(stdin, domain.MaxPasswordBytes+2)).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("reading the password from stdin: %w", err)
		}
		password = strings.TrimRight(line, "\r\n")
	}
	if err := domain.ValidatePassword(password); err != nil {
		return "", err
	}
	passwords, err := auth.NewPasswords(auth.OWASPParams, rand.Reader, 1)
	if err != nil {
		return "", err
	}
	return passwords.Hash(password)
}
