package messagebird

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// SignatureHeader carries the webhook JWT.
const SignatureHeader = "MessageBird-Signature-JWT"

// Issuer is the required iss claim.
const Issuer = "MessageBird"

// ClockSkew is the leeway on nbf, iat and exp (what MessageBird's own SDK allows).
const ClockSkew = time.Second

// allowedAlgs are the HMAC algorithms MessageBird's SDK accepts; everything else (none, RS*,
// ES*, PS*, EdDSA) is refused before any key is used.
var allowedAlgs = []string{"HS256", "HS384", "HS512"}

// Which check a webhook signature failed. VerifyJWT's errors satisfy errors.Is with exactly
// one of these (and also carry the underlying jwt error, when there is one).
var (
	ErrNoSignature    = errors.New("MessageBird-Signature-JWT header is missing")
	ErrNoSigningKey   = errors.New("signing key is empty")
	ErrMalformed      = errors.New("token is malformed")
	ErrAlgorithm      = errors.New("signing algorithm is not HS256, HS384 or HS512")
	ErrSignature      = errors.New("signature does not match the signing key")
	ErrIssuer         = errors.New("iss is not MessageBird")
	ErrExpired        = errors.New("token is expired")
	ErrNotYetValid    = errors.New("token is not valid yet (nbf or iat in the future)")
	ErrMissingExpiry  = errors.New("exp claim is missing")
	ErrMissingJTI     = errors.New("jti claim is missing or empty")
	ErrURLHash        = errors.New("url_hash does not match the public webhook URL")
	ErrPayloadHash    = errors.New("payload_hash does not match the body")
	ErrPayloadPresent = errors.New("payload_hash is absent but the body is not empty")
	ErrPayloadMissing = errors.New("payload_hash is present but the body is empty")
)

// VerifyError is a rejected webhook signature. Check is one of the Err* values above.
type VerifyError struct {
	Check error
	Err   error // the jwt library's error, if any
}

func (e *VerifyError) Error() string {
	if e.Err != nil {
		return "messagebird webhook signature: " + e.Check.Error() + ": " + e.Err.Error()
	}
	return "messagebird webhook signature: " + e.Check.Error()
}

// Unwrap lets errors.Is match both the check and the underlying error.
func (e *VerifyError) Unwrap() []error {
	if e.Err != nil {
		return []error{e.Check, e.Err}
	}
	return []error{e.Check}
}

// Claims are the verified claims of a webhook JWT. Use JTI (with ExpiresAt as the record's
// TTL) as the replay guard.
type Claims struct {
	Issuer      string
	JTI         string
	IssuedAt    time.Time // zero when absent
	NotBefore   time.Time // zero when absent
	ExpiresAt   time.Time
	URLHash     string
	PayloadHash string // empty for an empty body
}

type jwtClaims struct {
	jwt.RegisteredClaims
	URLHash     string `json:"url_hash"`
	PayloadHash string `json:"payload_hash,omitempty"`
}

// Hash is lowercase hex SHA-256, as in url_hash and payload_hash.
func Hash(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// VerifyJWT checks a MessageBird-Signature-JWT header value:
//   - the algorithm is HS256, HS384 or HS512 and the signature matches signingKey;
//   - iss is "MessageBird", exp is present, nbf/iat/exp hold at now with ClockSkew leeway;
//   - jti is not empty;
//   - url_hash is hex(SHA-256(publicURL)), where publicURL is the exact URL the webhook was
//     registered with (scheme, host, path, query), from configuration; never rebuild it from
//     the request, which behind API Gateway differs from what MessageBird signed;
//   - payload_hash is hex(SHA-256(body)) when the body is not empty, and absent when it is.
//
// Hashes are compared in constant time. The error says which check failed (see VerifyError).
// Replay protection (remembering jti until exp) is the caller's job.
func VerifyJWT(signingKey, token, publicURL string, body []byte, now time.Time) (Claims, error) {
	fail := func(check, err error) (Claims, error) { return Claims{}, &VerifyError{Check: check, Err: err} }
	token = strings.TrimSpace(token)
	if token == "" {
		return fail(ErrNoSignature, nil)
	}
	if signingKey == "" {
		return fail(ErrNoSigningKey, nil)
	}
	parser := jwt.NewParser(
		jwt.WithValidMethods(allowedAlgs),
		jwt.WithIssuer(Issuer),
		jwt.WithLeeway(ClockSkew),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
	var c jwtClaims
	tok, err := parser.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		if _, ok := t.Method.(*jwt.SigningMethodHMAC); !ok {
			return nil, fmt.Errorf("unexpected signing method %v", t.Header["alg"])
		}
		return []byte(signingKey), nil
	})
	if err != nil {
		return fail(classify(tok, err), err)
	}
	if c.ID == "" {
		return fail(ErrMissingJTI, nil)
	}
	if !hashEqual(Hash([]byte(publicURL)), c.URLHash) {
		return fail(ErrURLHash, nil)
	}
	switch {
	case len(body) == 0 && c.PayloadHash != "":
		return fail(ErrPayloadMissing, nil)
	case len(body) != 0 && c.PayloadHash == "":
		return fail(ErrPayloadPresent, nil)
	case len(body) != 0 && !hashEqual(Hash(body), c.PayloadHash):
		return fail(ErrPayloadHash, nil)
	}
	out := Claims{Issuer: c.Issuer, JTI: c.ID, URLHash: c.URLHash, PayloadHash: c.PayloadHash}
	if c.IssuedAt != nil {
		out.IssuedAt = c.IssuedAt.Time
	}
	if c.NotBefore != nil {
		out.NotBefore = c.NotBefore.Time
	}
	if c.ExpiresAt != nil {
		out.ExpiresAt = c.ExpiresAt.Time
	}
	return out, nil
}

func hashEqual(want, got string) bool {
	return subtle.ConstantTimeCompare([]byte(want), []byte(strings.ToLower(got))) == 1
}

// classify maps a jwt/v5 error to the check that failed. The algorithm is judged from the
// token header first, so "alg":"none" or "RS256" never reads as a mere bad signature.
func classify(tok *jwt.Token, err error) error {
	if tok != nil && tok.Header != nil {
		if alg, _ := tok.Header["alg"].(string); alg != "" {
			ok := false
			for _, a := range allowedAlgs {
				ok = ok || alg == a
			}
			if !ok {
				return ErrAlgorithm
			}
		}
	}
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return ErrMalformed
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return ErrSignature
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return ErrMissingExpiry
	case errors.Is(err, jwt.ErrTokenExpired):
		return ErrExpired
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return ErrNotYetValid
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return ErrIssuer
	default:
		return ErrMalformed
	}
}
