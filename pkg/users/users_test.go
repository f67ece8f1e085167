package users

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/tokenservice/tokenservice/pkg/domain"
)

// goneOwner is a domain.Users whose one human user was deleted between
// the checks and the write: it is still read, and the write of a machine
// user it owns finds no owner row (the store answers not found).
type goneOwner struct {
	domain.Users
	owner *domain.User
}

func (g goneOwner) UserByID(context.Context, string) (*domain.User, error) { return g.owner, nil }

func (goneOwner) CreateUser(context.Context, *domain.User, int, ...*domain.AuditEvent) error {
	return domain.Errorf(domain.KindNotFound, "user not found")
}

// A machine user created for an owner deleted meanwhile (on another
// replica, or while the caller's credential sat in a cache) is refused as
// the request deserves, never with a not-found CreateUser does not
// declare: the caller itself gone is an unknown credential (401); an owner
// an admin named, gone, is a bad owner_id (400).
func TestCreateForAnOwnerDeletedMeanwhile(t *testing.T) {
	alice := &domain.User{ID: "alice00000000000", Username: "alice"}
	root := &domain.User{ID: "root000000000000", Username: "root", Admin: true}
	svc := New(Config{}, Deps{Users: goneOwner{owner: alice}, Passwords: cheapPasswords(t), Clock: time.Now, Rand: rand.Reader})
	ctx := context.Background()

	_, err := svc.Create(ctx, &domain.Principal{User: alice, AllScopes: true}, CreateInput{Username: "alices-bot", Machine: true})
	if err != domain.ErrUnauthenticated {
		t.Errorf("the deleted caller's own machine user: %v, want unauthenticated", err)
	}
	_, err = svc.Create(ctx, &domain.Principal{User: root, AllScopes: true}, CreateInput{Username: "roots-bot", Machine: true, OwnerID: alice.ID})
	if fields := domain.FieldsOf(err); domain.KindOf(err) != domain.KindInvalid || len(fields) != 1 || fields[0].Field != "owner_id" {
		t.Errorf("an admin naming the deleted owner: %v, want invalid owner_id", err)
	}
}
