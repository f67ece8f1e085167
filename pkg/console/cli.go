package console

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tokenservice/tokenservice/pkg/calllog"
	"github.com/tokenservice/tokenservice/pkg/domain"
	"github.com/tokenservice/tokenservice/pkg/tokens"
)

// The command-line client signs in through the console with this service
// as its authorization server (`tokenservice login --sso`): on a machine
// with a browser, the authorization code grant for native apps on a
// loopback redirect (RFC 8252 §7.3, PKCE S256 required, RFC 7636); without
// one, the device authorization grant (RFC 8628). Either ends with an API
// token for the person who approved it, as a password login's.
const (
	// CLIClientID is the one client these grants are for.
	CLIClientID = "tokenservice-cli"
	// codeFor is how long a loopback grant's code may wait for its exchange.
	codeFor = time.Minute
	// deviceFor is how long a device grant may wait for its approval.
	deviceFor = 10 * time.Minute
	// pollEvery is the least interval between a device client's polls.
	pollEvery = 5 * time.Second
	// userCodeAlphabet has no vowels (no words) and no look-alikes, as
	// RFC 8628 §6.1 suggests: 20 letters, 8 of them, 34 bits.
	userCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ"
	deviceGrantType  = "urn:ietf:params:oauth:grant-type:device_code"
	// The audit trail's methods of the CLI's sign-ins.
	methodLoopback = "cli_loopback"
	methodDevice   = "cli_device"
)

// loopbackRedirect checks a redirect URI of the loopback grant: http on
// 127.0.0.1 with a port (RFC 8252 §7.3, §8.3: not "localhost"), no
// user, query or fragment.
func loopbackRedirect(raw string) (*url.URL, bool) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" || u.Hostname() != "127.0.0.1" || u.Port() == "" || u.User != nil ||
		u.RawQuery != "" || u.Fragment != "" || len(raw) > 255 {
		return nil, false
	}
	return u, true
}

type authorizeData struct {
	RedirectURI, State, Challenge, Host string
}

// authorizeParams reads and checks a loopback authorization request; a
// bad one is answered here, on a page (never at its redirect URI, which
// is not known to be the client's).
func (c *Console) authorizeParams(w http.ResponseWriter, r *http.Request) (authorizeData, bool) {
	d := authorizeData{RedirectURI: r.FormValue("redirect_uri"), State: r.FormValue("state"),
		Challenge: r.FormValue("code_challenge"), Host: cleanHost(r.FormValue("host"))}
	_, ok := loopbackRedirect(d.RedirectURI)
	switch {
	case r.FormValue("client_id") != CLIClientID:
		c.badRequest(w, r, "This sign-in request is not from the tokenservice command-line client.")
	case !ok:
		c.badRequest(w, r, "This sign-in request's redirect URI is not a loopback address of this computer (http://127.0.0.1:port/...).")
	case r.FormValue("code_challenge_method") != "S256" || len(d.Challenge) != 43:
		c.badRequest(w, r, "This sign-in request lacks its PKCE S256 code challenge.")
	case len(d.State) > 256:
		c.badRequest(w, r, "This sign-in request's state is too long.")
	default:
		return d, true
	}
	return d, false
}

// cliAuthorizePage asks the signed-in person to let the CLI sign in as them.
func (c *Console) cliAuthorizePage(w http.ResponseWriter, r *http.Request) {
	d, ok := c.authorizeParams(w, r)
	if !ok {
		return
	}
	// The answer redirects to the CLI's loopback listener: this page's
	// forms may go there too.
	w.Header().Set("Content-Security-Policy", strings.Replace(contentSecurityPolicy, "form-action 'self'",
		"form-action 'self' http://127.0.0.1:*", 1))
	c.render(w, r, http.StatusOK, "cli-authorize", "Sign in the command-line client", d)
}

// cliAuthorize records the person's answer and sends the browser back to
// the CLI with a code (RFC 6749 §4.1.2) or access_denied (§4.1.2.1).
func (c *Console) cliAuthorize(w http.ResponseWriter, r *http.Request) {
	d, ok := c.authorizeParams(w, r)
	if !ok {
		return
	}
	back, _ := loopbackRedirect(d.RedirectURI)
	q := url.Values{"state": {d.State}}
	if r.PostFormValue("decision") != "allow" {
		c.deps.Users.RecordCLISignIn(r.Context(), sessionOf(r.Context()).principal.User, methodLoopback, d.Host, false)
		q.Set("error", "access_denied")
		back.RawQuery = q.Encode()
		http.Redirect(w, r, back.String(), http.StatusSeeOther)
		return
	}
	code, err := c.newSecret()
	if err != nil {
		c.fail(w, r, err)
		return
	}
	now := c.deps.Clock()
	g := &domain.CLIGrant{ID: hashOf(code), UserID: sessionOf(r.Context()).principal.User.ID, Status: domain.CLIGrantApproved,
		Challenge: d.Challenge, RedirectURI: d.RedirectURI, Host: d.Host, CreateTime: now, ExpireTime: now.Add(codeFor), PollTime: now}
	if err := c.deps.CLIGrants.CreateCLIGrant(r.Context(), g); err != nil {
		c.fail(w, r, err)
		return
	}
	q.Set("code", code)
	back.RawQuery = q.Encode()
	http.Redirect(w, r, back.String(), http.StatusSeeOther)
}

// deviceAuthorization is the device authorization endpoint (RFC 8628
// §3.1-3.2): a device code for the client, a user code for the person.
func (c *Console) deviceAuthorization(w http.ResponseWriter, r *http.Request) {
	if ok, wait := c.anonymous.Allow(calllog.RequestAddr(r)); !ok {
		w.Header().Set("Retry-After", retryAfter(wait))
		oauthError(w, http.StatusTooManyRequests, "slow_down", "too many device sign-ins from this address: wait a minute")
		return
	}
	if r.PostFormValue("client_id") != CLIClientID {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "unknown client_id")
		return
	}
	deviceCode, err := c.newSecret()
	if err != nil {
		c.oauthFail(w, r, err)
		return
	}
	userCode, err := c.newUserCode()
	if err != nil {
		c.oauthFail(w, r, err)
		return
	}
	now := c.deps.Clock()
	g := &domain.CLIGrant{ID: hashOf(deviceCode), UserCode: hashOf(userCode), Status: domain.CLIGrantPending,
		Host: cleanHost(r.PostFormValue("host")), CreateTime: now, ExpireTime: now.Add(deviceFor)}
	if err := c.deps.CLIGrants.CreateCLIGrant(r.Context(), g); err != nil {
		c.oauthFail(w, r, err)
		return
	}
	base := c.cfg.BaseURL + "/console/device"
	writeJSON(w, http.StatusOK, map[string]any{"device_code": deviceCode, "user_code": userCode,
		"verification_uri": base, "verification_uri_complete": base + "?user_code=" + userCode,
		"expires_in": int(deviceFor.Seconds()), "interval": int(pollEvery.Seconds())})
}

// newUserCode returns 8 letters of userCodeAlphabet in two groups of four
// joined by a dash, each letter equally likely (a random byte of 240 or
// more is drawn again: 240 is 12 times the alphabet).
func (c *Console) newUserCode() (string, error) {
	var s strings.Builder
	b := make([]byte, 1)
	for s.Len() < 9 {
		if _, err := io.ReadFull(c.deps.Rand, b); err != nil {
			return "", err
		}
		if b[0] >= 240 {
			continue
		}
		if s.Len() == 4 {
			s.WriteByte('-')
		}
		s.WriteByte(userCodeAlphabet[int(b[0])%len(userCodeAlphabet)])
	}
	return s.String(), nil
}

// normalUserCode is a user code as typed, in the form it was issued:
// upper case, the dash where it goes, whatever else dropped (RFC 8628 §6.1).
func normalUserCode(typed string) string {
	var letters []byte
	for _, r := range strings.ToUpper(typed) {
		if strings.ContainsRune(userCodeAlphabet, r) {
			letters = append(letters, byte(r))
		}
	}
	if len(letters) != 8 {
		return ""
	}
	return string(letters[:4]) + "-" + string(letters[4:])
}

type deviceData struct {
	UserCode string
	Host     string
	Error    string
	Done     string // allowed, denied
}

// devicePage asks for the user code the CLI shows (prefilled from the
// verification_uri_complete).
func (c *Console) devicePage(w http.ResponseWriter, r *http.Request) {
	c.render(w, r, http.StatusOK, "device", "Sign in a device", deviceData{UserCode: r.URL.Query().Get("user_code")})
}

// deviceConfirm shows which device the code belongs to, and asks. A
// person may try 10 codes a minute (RFC 8628 §5.1: the code is short).
func (c *Console) deviceConfirm(w http.ResponseWriter, r *http.Request) {
	if ok, wait := c.userCodes.Allow(sessionOf(r.Context()).principal.User.ID); !ok {
		w.Header().Set("Retry-After", retryAfter(wait))
		c.render(w, r, http.StatusTooManyRequests, "message", "Too many codes",
			message{"Too many codes", "Too many codes tried: wait a minute and try again."})
		return
	}
	code := normalUserCode(r.PostFormValue("user_code"))
	g, ok := c.pendingDevice(w, r, code)
	if !ok {
		return
	}
	c.render(w, r, http.StatusOK, "device", "Sign in a device", deviceData{UserCode: code, Host: g.Host})
}

// deviceDecide records the person's answer to a device grant.
func (c *Console) deviceDecide(w http.ResponseWriter, r *http.Request) {
	code := normalUserCode(r.PostFormValue("user_code"))
	g, ok := c.pendingDevice(w, r, code)
	if !ok {
		return
	}
	status, done := domain.CLIGrantDenied, "denied"
	if r.PostFormValue("decision") == "allow" {
		status, done = domain.CLIGrantApproved, "allowed"
	}
	person := sessionOf(r.Context()).principal.User
	if err := c.deps.CLIGrants.DecideCLIGrant(r.Context(), g.ID, person.ID, status); err != nil {
		c.refusedOrFailed(w, r, err)
		return
	}
	if status == domain.CLIGrantDenied {
		c.deps.Users.RecordCLISignIn(r.Context(), person, methodDevice, g.Host, false)
	}
	c.render(w, r, http.StatusOK, "device", "Sign in a device", deviceData{Host: g.Host, Done: done})
}

// pendingDevice reads the pending, unexpired device grant of a user code,
// or answers why there is none.
func (c *Console) pendingDevice(w http.ResponseWriter, r *http.Request, code string) (*domain.CLIGrant, bool) {
	var g *domain.CLIGrant
	var err error = domain.Errorf(domain.KindNotFound, "no such code")
	if code != "" {
		g, err = c.deps.CLIGrants.CLIGrantByUserCode(r.Context(), hashOf(code))
	}
	if err == nil && (g.Status != domain.CLIGrantPending || !c.deps.Clock().Before(g.ExpireTime)) {
		err = domain.Errorf(domain.KindNotFound, "no such code")
	}
	if domain.KindOf(err) == domain.KindNotFound {
		c.render(w, r, http.StatusBadRequest, "device", "Sign in a device", deviceData{UserCode: r.PostFormValue("user_code"),
			Error: "No device is waiting for that code: check it, or start tokenservice login --sso again (a code lasts 10 minutes)."})
		return nil, false
	}
	if err != nil {
		c.fail(w, r, err)
		return nil, false
	}
	return g, true
}

// cliToken is the token endpoint of the CLI's grants (RFC 6749 §4.1.3 with
// RFC 7636 §4.5; RFC 8628 §3.4-3.5): the API token of the person who
// approved, made as a password login's, answered once.
func (c *Console) cliToken(w http.ResponseWriter, r *http.Request) {
	if r.PostFormValue("client_id") != CLIClientID {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "unknown client_id")
		return
	}
	var code string
	switch r.PostFormValue("grant_type") {
	case "authorization_code":
		code = r.PostFormValue("code")
	case deviceGrantType:
		code = r.PostFormValue("device_code")
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", "grant_type must be authorization_code or "+deviceGrantType)
		return
	}
	ctx, now := r.Context(), c.deps.Clock()
	g, err := c.deps.CLIGrants.CLIGrant(ctx, hashOf(code))
	if domain.KindOf(err) == domain.KindNotFound || (err == nil && !now.Before(g.ExpireTime)) {
		oauthError(w, http.StatusBadRequest, expiredOrInvalid(r), "the code is unknown, used or expired")
		return
	}
	if err != nil {
		c.oauthFail(w, r, err)
		return
	}
	if g.UserCode == nil { // a loopback grant: PKCE and the same redirect URI
		sum := sha256.Sum256([]byte(r.PostFormValue("code_verifier")))
		if r.PostFormValue("grant_type") != "authorization_code" || r.PostFormValue("redirect_uri") != g.RedirectURI ||
			subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(g.Challenge)) != 1 {
			oauthError(w, http.StatusBadRequest, "invalid_grant", "the code_verifier or redirect_uri does not match")
			return
		}
	} else {
		if r.PostFormValue("grant_type") != deviceGrantType {
			oauthError(w, http.StatusBadRequest, "invalid_grant", "not a device code")
			return
		}
		switch g.Status {
		case domain.CLIGrantDenied:
			if _, err := c.deps.CLIGrants.TakeCLIGrant(ctx, g.ID); err != nil {
				c.oauthFail(w, r, err)
				return
			}
			oauthError(w, http.StatusBadRequest, "access_denied", "the sign-in was denied")
			return
		case domain.CLIGrantPending:
			before, err := c.deps.CLIGrants.PollCLIGrant(ctx, g.ID, now)
			if err != nil {
				c.oauthFail(w, r, err)
				return
			}
			if now.Sub(before) < pollEvery-time.Second {
				oauthError(w, http.StatusBadRequest, "slow_down", "poll at most every 5 seconds")
				return
			}
			oauthError(w, http.StatusBadRequest, "authorization_pending", "waiting for the person to approve the sign-in")
			return
		}
	}
	if took, err := c.deps.CLIGrants.TakeCLIGrant(ctx, g.ID); err != nil || !took {
		if err != nil {
			c.oauthFail(w, r, err)
			return
		}
		oauthError(w, http.StatusBadRequest, "invalid_grant", "the code is unknown, used or expired")
		return
	}
	c.mintCLIToken(w, r, g)
}

// mintCLIToken makes the API token of an approved grant.
func (c *Console) mintCLIToken(w http.ResponseWriter, r *http.Request, g *domain.CLIGrant) {
	u, err := c.deps.UserByID(r.Context(), g.UserID)
	if err != nil {
		if domain.KindOf(err) == domain.KindNotFound {
			oauthError(w, http.StatusBadRequest, "invalid_grant", "the user is gone")
			return
		}
		c.oauthFail(w, r, err)
		return
	}
	in := tokens.CreateInput{Note: "tokenservice login --sso on " + g.Host}
	if secs, err := strconv.ParseInt(r.PostFormValue("token_lifetime"), 10, 64); err == nil && secs > 0 {
		in.ExpireTime = c.deps.Clock().Add(time.Duration(min(secs, 10*365*24*3600)) * time.Second)
	}
	plaintext, tok, err := c.deps.Tokens.Create(r.Context(), &domain.Principal{User: u, AllScopes: true}, in)
	if err != nil {
		if shown(err) {
			oauthError(w, http.StatusBadRequest, "invalid_request", domain.MessageOf(err))
			return
		}
		c.oauthFail(w, r, err)
		return
	}
	method := methodDevice
	if g.UserCode == nil {
		method = methodLoopback
	}
	c.deps.Users.RecordCLISignIn(r.Context(), u, method, g.Host, true)
	answer := map[string]any{"access_token": plaintext, "token_type": "Bearer", "username": u.Username, "token_id": tok.ID}
	if !tok.ExpireTime.IsZero() {
		answer["expires_in"] = int(tok.ExpireTime.Sub(c.deps.Clock()).Seconds())
	}
	writeJSON(w, http.StatusOK, answer)
}

func expiredOrInvalid(r *http.Request) string {
	if r.PostFormValue("grant_type") == deviceGrantType {
		return "expired_token" // RFC 8628 §3.5
	}
	return "invalid_grant"
}

// cleanHost keeps what a client says of its host name that a page and a
// note may show.
func cleanHost(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	if len(s) > 64 {
		s = s[:64]
	}
	if s == "" {
		return "an unnamed computer"
	}
	return s
}

// oauthError writes an OAuth error answer (RFC 6749 §5.2).
func oauthError(w http.ResponseWriter, status int, code, description string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": description})
}

func (c *Console) oauthFail(w http.ResponseWriter, r *http.Request, err error) {
	if domain.KindOf(err) == domain.KindUnavailable {
		w.Header().Set("Retry-After", "5")
		oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "the database is unavailable: retry shortly")
		return
	}
	c.deps.Logger.ErrorContext(r.Context(), "CLI sign-in failed", "error", err)
	oauthError(w, http.StatusInternalServerError, "server_error", "internal error")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store") // RFC 6749 §5.1
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// badRequest answers a malformed request on a page.
func (c *Console) badRequest(w http.ResponseWriter, r *http.Request, text string) {
	c.render(w, r, http.StatusBadRequest, "message", "Bad request", message{"This request cannot be answered", text})
}
