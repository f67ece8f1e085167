// Package domain holds tokenservice's plain types (User, Token, Principal,
// SigningKey, scopes), its error kinds and the interfaces of the stores
// that keep them, and the rules on usernames, passwords and free text. It imports
// nothing of the transport or the database: the api package converts protos to
// and from these types, the store package converts database rows.
package domain
