// Package domain holds tokenservice's plain types (User, Token, AccessToken),
// its error kinds and the interfaces of the stores that keep them. It imports
// nothing of the transport or the database: the api package converts protos to
// and from these types, the store package converts database rows.
package domain
