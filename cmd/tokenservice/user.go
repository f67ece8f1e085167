package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/tokenservice/tokenservice/pkg/app"
	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/users"
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
	if !map[string]bool{"create": true, "list": true, "delete": true, "set-password": true}[sub] {
		fmt.Fprintf(stderr, "unknown user command %q\n\n%s", sub, usage)
		return errUsage
	}
	db, err := app.OpenDatabase(ctx, *dbCfg)
	if err != nil {
		return err
	}
	defer db.Close()
	svc, op := db.Users(), users.Operator()

	switch sub {
	case "create":
		in := users.NewUser{Username: name, Admin: *admin, Machine: *machine}
		if *machine {
			o, err := svc.GetByUsername(ctx, op, *owner)
			if err != nil {
				return fmt.Errorf("--owner %q: %w", *owner, err)
			}
			in.OwnerID = o.ID
		} else {
			if *owner != "" {
				return errors.New("--owner goes with --machine")
			}
			if in.Password, err = readPassword(stdin, stderr); err != nil {
				return err
			}
		}
		u, err := svc.Create(ctx, op, in)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "created user %s with id %s\n", u.Username, u.ID)
	case "list":
		var all []*domain.User
		for page := ""; ; {
			us, next, err := svc.List(ctx, op, users.ListInput{PageSize: users.MaxPageSize, PageToken: page})
			if err != nil {
				return err
			}
			all = append(all, us...)
			if page = next; page == "" {
				break
			}
		}
		byID := make(map[string]string, len(all))
		for _, u := range all {
			byID[u.ID] = u.Username
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tUSERNAME\tKIND\tOWNER\tADMIN\tCREATED")
		for _, u := range all {
			kind := "human"
			if u.IsMachine() {
				kind = "machine"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%s\n", u.ID, u.Username, kind, byID[u.OwnerID], u.Admin, u.CreateTime.Format(time.RFC3339))
		}
		return tw.Flush()
	case "delete":
		u, err := svc.GetByUsername(ctx, op, name)
		if err != nil {
			return err
		}
		if err := svc.Delete(ctx, op, u.ID); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deleted user %s, its machine users and their tokens\n", name)
	case "set-password":
		u, err := svc.GetByUsername(ctx, op, name)
		if err != nil {
			return err
		}
		if u.IsMachine() {
			return errors.New("machine users have no password: they authenticate with API tokens")
		}
		password, err := readPassword(stdin, stderr)
		if err != nil {
			return err
		}
		if err := svc.ChangePassword(ctx, op, users.PasswordChange{UserID: u.ID, NewPassword: password}); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "password set for %s\n", name)
	}
	return nil
}

// readPassword reads a password, never from a flag: from the terminal
// (asked twice, not echoed) or else the first line of stdin.
func readPassword(stdin io.Reader, stderr io.Writer) (string, error) {
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
	return password, domain.ValidatePassword(password)
}
