package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/tokenservice/tokenservice/pkg/domain"
)

// KeySecretName is the server secret (domain.Keys.Secret, sealed by the
// key-encryption key when there is one) that seeds the checkpoints'
// Ed25519 key: every replica signs with the same key, and the key is not
// one that signs access tokens, so a checkpoint is never mistaken for one.
const KeySecretName = "audit_checkpoint_key"

// checkpointType is the checkpoints' JWS "typ" (RFC 7515 §4.1.9);
// anchorType the anchors' (where retention left the trail's start): the
// same statement of a sequence number and a chain hash, which must not be
// taken for the other.
const (
	checkpointType = "tokenservice-audit-checkpoint+jws"
	anchorType     = "tokenservice-audit-anchor+jws"
)

// Signer signs and verifies checkpoints.
type Signer struct {
	key ed25519.PrivateKey
	kid string
}

// NewSigner returns a signer from a 32-byte seed (the KeySecretName
// secret).
func NewSigner(seed []byte) (*Signer, error) {
	if len(seed) < ed25519.SeedSize {
		return nil, fmt.Errorf("audit checkpoint key: %d bytes, want %d", len(seed), ed25519.SeedSize)
	}
	key := ed25519.NewKeyFromSeed(seed[:ed25519.SeedSize])
	sum := sha256.Sum256(key.Public().(ed25519.PublicKey))
	return &Signer{key: key, kid: hex.EncodeToString(sum[:8])}, nil
}

// PublicKey returns the key that verifies the checkpoints, as a JWK.
func (s *Signer) PublicKey() jose.JSONWebKey {
	return jose.JSONWebKey{Key: s.key.Public(), KeyID: s.kid, Algorithm: string(jose.EdDSA), Use: "sig"}
}

// checkpointClaims is a checkpoint's signed payload.
type checkpointClaims struct {
	Seq       int64  `json:"seq"`
	ChainHash string `json:"chain_hash"` // hex
	Time      string `json:"time"`       // RFC 3339, UTC
}

// Sign returns the checkpoint of the chain at seq, whose chain hash is hash.
func (s *Signer) Sign(seq int64, hash []byte, at time.Time) (domain.AuditCheckpoint, error) {
	return s.sign(checkpointType, seq, hash, at)
}

// SignAnchor returns the statement that the trail starts at firstSeq,
// after the event whose chain hash is hash: what retention writes when it
// deletes the events before firstSeq.
func (s *Signer) SignAnchor(firstSeq int64, hash []byte, at time.Time) (string, error) {
	c, err := s.sign(anchorType, firstSeq, hash, at)
	return c.JWS, err
}

// OpenAnchor verifies an anchor's signature and returns the first
// sequence number and the chain hash before it that it states.
func (s *Signer) OpenAnchor(jws string) (int64, []byte, error) {
	c, err := s.open(anchorType, jws)
	return c.Seq, c.ChainHash, err
}

func (s *Signer) sign(typ string, seq int64, hash []byte, at time.Time) (domain.AuditCheckpoint, error) {
	at = at.UTC().Truncate(time.Microsecond)
	payload, err := json.Marshal(checkpointClaims{Seq: seq, ChainHash: hex.EncodeToString(hash), Time: at.Format(time.RFC3339Nano)})
	if err != nil {
		return domain.AuditCheckpoint{}, err
	}
	opts := (&jose.SignerOptions{}).WithType(jose.ContentType(typ)).WithHeader("kid", s.kid)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.EdDSA, Key: s.key}, opts)
	if err != nil {
		return domain.AuditCheckpoint{}, err
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return domain.AuditCheckpoint{}, err
	}
	compact, err := jws.CompactSerialize()
	if err != nil {
		return domain.AuditCheckpoint{}, err
	}
	return domain.AuditCheckpoint{Seq: seq, ChainHash: hash, Time: at, JWS: compact}, nil
}

// Open verifies a checkpoint's signature and returns what it states. A
// stored checkpoint's columns must say the same as its signed JWS.
func (s *Signer) Open(jws string) (domain.AuditCheckpoint, error) { return s.open(checkpointType, jws) }

func (s *Signer) open(typ, jws string) (domain.AuditCheckpoint, error) {
	parsed, err := jose.ParseSignedCompact(jws, []jose.SignatureAlgorithm{jose.EdDSA})
	if err != nil {
		return domain.AuditCheckpoint{}, fmt.Errorf("not a checkpoint: %w", err)
	}
	if len(parsed.Signatures) != 1 {
		return domain.AuditCheckpoint{}, fmt.Errorf("not a checkpoint: %d signatures", len(parsed.Signatures))
	}
	if got, _ := parsed.Signatures[0].Protected.ExtraHeaders[jose.HeaderType].(string); got != typ {
		return domain.AuditCheckpoint{}, fmt.Errorf("not a %s: type %q", typ, got)
	}
	payload, err := parsed.Verify(s.key.Public())
	if err != nil {
		return domain.AuditCheckpoint{}, fmt.Errorf("the checkpoint's signature does not verify with this trail's key (%s)", s.kid)
	}
	var c checkpointClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return domain.AuditCheckpoint{}, fmt.Errorf("not a checkpoint: %w", err)
	}
	hash, err := hex.DecodeString(c.ChainHash)
	if err != nil {
		return domain.AuditCheckpoint{}, fmt.Errorf("not a checkpoint: chain_hash: %w", err)
	}
	at, err := time.Parse(time.RFC3339Nano, c.Time)
	if err != nil {
		return domain.AuditCheckpoint{}, fmt.Errorf("not a checkpoint: time: %w", err)
	}
	return domain.AuditCheckpoint{Seq: c.Seq, ChainHash: hash, Time: at, JWS: jws}, nil
}

// sameCheckpoint reports whether a stored checkpoint's columns say what
// its signed statement does.
func sameCheckpoint(stored, signed domain.AuditCheckpoint) bool {
	return stored.Seq == signed.Seq && bytes.Equal(stored.ChainHash, signed.ChainHash) && stored.Time.Equal(signed.Time)
}
