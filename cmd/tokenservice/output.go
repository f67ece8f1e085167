package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/tokenservice/tokenservice/gen/priv/tokenservice/v1alpha1"
)

// printJSON writes messages as the REST API does (camelCase fields): one
// object, or an array when list is set.
func printJSON[M proto.Message](w io.Writer, list bool, msgs ...M) error {
	raw := make([]json.RawMessage, len(msgs))
	for i, m := range msgs {
		b, err := protojson.Marshal(m)
		if err != nil {
			return err
		}
		raw[i] = b
	}
	var v any = raw
	if !list {
		v = raw[0]
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

func printTokens(w io.Writer, toks []*pb.Token) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNOTE\tCREATED\tEXPIRES\tLAST USED\tSCOPES")
	for _, t := range toks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.GetId(), t.GetNote(), when(t.GetCreateTime(), ""), when(t.GetExpireTime(), "never"),
			when(t.GetLastUsedTime(), "never"), strings.Join(t.GetScopes(), ","))
	}
	return tw.Flush()
}

func printUsers(w io.Writer, users []*pb.User) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tUSERNAME\tKIND\tOWNER ID\tADMIN\tCREATED")
	for _, u := range users {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%s\n", u.GetId(), u.GetUsername(), kind(u.GetMachine()), u.GetOwnerId(), u.GetAdmin(), when(u.GetCreateTime(), ""))
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
