package cache

import (
	"context"
	"slices"

	"github.com/tokenservice/tokenservice/pkg/domain"
)

var _ domain.FederatedCredentials = (*Cache)(nil)

// FederatedCredentialByID implements domain.FederatedCredentials: a
// federated access token used as a bearer costs no read while its
// credential is cached.
func (c *Cache) FederatedCredentialByID(ctx context.Context, id string) (*domain.FederatedCredential, error) {
	return get(c, FederatedCredentials, c.credentials, ctx, id, c.Store.FederatedCredentialByID,
		func(fc *domain.FederatedCredential) string { return fc.ID })
}

// FederatedCredentialsFor implements domain.FederatedCredentials. None
// found is not cached: a credential created on another replica is then
// found at once.
func (c *Cache) FederatedCredentialsFor(ctx context.Context, issuer, subject string) ([]*domain.FederatedCredential, error) {
	key := issuer + "\x00" + subject
	cs, err := get(c, FederatedCredentials, c.matches, ctx, key, func(ctx context.Context, _ string) (*[]domain.FederatedCredential, error) {
		found, err := c.Store.FederatedCredentialsFor(ctx, issuer, subject)
		if err != nil {
			return nil, err
		}
		if len(found) == 0 {
			return nil, errNoneFound
		}
		values := make([]domain.FederatedCredential, len(found))
		for i, fc := range found {
			values[i] = *fc
		}
		return &values, nil
	}, nil)
	if err == errNoneFound {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := make([]*domain.FederatedCredential, len(*cs))
	for i := range *cs {
		fc := (*cs)[i]
		fc.Audiences, fc.Scopes = slices.Clone(fc.Audiences), slices.Clone(fc.Scopes)
		out[i] = &fc
	}
	return out, nil
}

// errNoneFound tells get not to cache an empty answer.
var errNoneFound = domain.Errorf(domain.KindNotFound, "no federated credential")

// CreateFederatedCredential implements domain.FederatedCredentials: the
// new credential is matched here at once.
func (c *Cache) CreateFederatedCredential(ctx context.Context, fc *domain.FederatedCredential, max int, events ...*domain.AuditEvent) error {
	err := c.Store.CreateFederatedCredential(ctx, fc, max, events...)
	c.forget(func() { c.matches.Remove(fc.Issuer + "\x00" + fc.Subject) })
	return err
}

// DeleteFederatedCredential implements domain.FederatedCredentials: the
// credential and its access tokens stop working here at once.
func (c *Cache) DeleteFederatedCredential(ctx context.Context, id string, events ...*domain.AuditEvent) error {
	err := c.Store.DeleteFederatedCredential(ctx, id, events...)
	c.forget(func() { c.dropCredentials(func(fc *domain.FederatedCredential) bool { return fc.ID == id }) })
	return err
}

// dropCredentials drops the credentials gone says are gone, and every match
// that holds one.
func (c *Cache) dropCredentials(gone func(*domain.FederatedCredential) bool) {
	for _, key := range c.credentials.Keys() {
		if e, ok := c.credentials.Peek(key); ok && gone(&e.value) {
			c.credentials.Remove(key)
		}
	}
	for _, key := range c.matches.Keys() {
		if e, ok := c.matches.Peek(key); ok && slices.ContainsFunc(e.value, func(fc domain.FederatedCredential) bool { return gone(&fc) }) {
			c.matches.Remove(key)
		}
	}
}
