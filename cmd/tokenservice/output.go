package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
)

// restJSON are the gateway's encoding options (pkg/server's JSONPb:
// camelCase names, fields at their default values included), so that --json
// prints what the REST API answers for the same call.
var restJSON = protojson.MarshalOptions{EmitDefaultValues: true}

// printJSON writes a response message as the REST API answers it, indented.
// A listing is the whole list as one page: the response message with every
// item and no next page token.
func printJSON(w io.Writer, m proto.Message) error {
	b, err := restJSON.Marshal(m)
	if err != nil {
		return err
	}
	var out bytes.Buffer
	if err := json.Indent(&out, b, "", "  "); err != nil {
		return err
	}
	out.WriteByte('\n')
	_, err = out.WriteTo(w)
	return err
}

// safe returns stored text (a note, a username, an ID, a server's message)
// fit for a terminal: every control or format character (ESC, CR, LF, TAB,
// NUL, BEL, bidirectional overrides, ...) and every byte that is not UTF-8
// is shown as a Go escape (\x1b, \r, \u202e), so what a server stored can
// neither send escape sequences to the terminal nor start a fake table row.
// Printable text, backslashes included, is left as it is.
func safe(s string) string {
	clean := true
	for _, r := range s {
		if r == utf8.RuneError || !shown(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case shown(r):
			b.WriteString(s[i : i+n])
		default:
			q := strconv.QuoteRuneToASCII(r) // '\x1b', '\n', '\u202e'
			b.WriteString(q[1 : len(q)-1])
		}
		i += n
	}
	return b.String()
}

// shown reports whether safe prints r as it is: a printable character, a
// space, or the zero-width joiner of an emoji sequence (the API accepts
// these in free text: domain.CheckText). Controls, bidirectional controls
// and the other format characters are escaped.
func shown(r rune) bool {
	return unicode.IsPrint(r) || unicode.Is(unicode.Zs, r) || r == '\u200d'
}

// safeAll is safe for each of a list, joined by sep.
func safeAll(list []string, sep string) string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = safe(s)
	}
	return strings.Join(out, sep)
}

func printTokens(w io.Writer, toks []*pb.Token) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNOTE\tCREATED\tEXPIRES\tLAST USED\tSCOPES")
	for _, t := range toks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", safe(t.GetId()), safe(t.GetNote()), when(t.GetCreateTime(), ""), when(t.GetExpireTime(), "never"),
			when(t.GetLastUsedTime(), "never"), safeAll(t.GetScopes(), ","))
	}
	return tw.Flush()
}

func printUsers(w io.Writer, users []*pb.User) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tUSERNAME\tKIND\tOWNER ID\tADMIN\tCREATED")
	for _, u := range users {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%s\n", safe(u.GetId()), safe(u.GetUsername()), kind(u.GetMachine()), safe(u.GetOwnerId()), u.GetAdmin(), when(u.GetCreateTime(), ""))
	}
	return tw.Flush()
}

func when(ts *timestamppb.Timestamp, unset string) string {
	if ts == nil {
		return unset
	}
	return ts.AsTime().Local().Format(time.RFC3339)
}

// allPages follows a listing's page tokens to its end.
func allPages[T any](page func(token string) ([]T, string, error)) ([]T, error) {
	var all []T
	for token := ""; ; {
		items, next, err := page(token)
		if err != nil {
			return nil, err
		}
		all = append(all, items...)
		if token = next; token == "" {
			return all, nil
		}
	}
}
