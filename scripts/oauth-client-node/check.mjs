// A standard OAuth 2 client, panva's openid-client (certified by the OpenID
// Foundation), against tokenservice with nothing configured but the issuer
// URL, the client ID (the API token's ID) and the client secret (the API
// token): discovery (RFC 8414), the client credentials grant (RFC 6749
// §4.4), a call to the API with the access token (RFC 6750), introspection
// (RFC 7662) and revocation (RFC 7009). Prints one line per check.
//
// usage: node check.mjs ISSUER CLIENT_ID CLIENT_SECRET
import * as client from 'openid-client';

const [issuer, clientId, clientSecret] = process.argv.slice(2);
let passed = 0;
let failed = 0;
const check = (name, ok, detail = '') => {
  console.log(`${ok ? 'ok' : 'FAIL'}: ${name}${ok ? '' : ' ' + detail}`);
  if (ok) passed++;
  else failed++;
};

// HTTP, not HTTPS: the check runs against a local server.
const config = await client.discovery(new URL(issuer), clientId, clientSecret, client.ClientSecretBasic(clientSecret), {
  algorithm: 'oauth2',
  execute: [client.allowInsecureRequests],
});
check('discovery finds the token endpoint', config.serverMetadata().token_endpoint === `${issuer}/oauth2/token`);

const tokens = await client.clientCredentialsGrant(config, { scope: 'tokens:read introspect' });
check('the grant gives a Bearer access token', tokens.token_type === 'bearer' && typeof tokens.access_token === 'string',
  JSON.stringify(tokens));
check('with the scope asked for', tokens.scope === 'introspect tokens:read', tokens.scope);
check('and its lifetime', tokens.expiresIn() > 0, String(tokens.expires_in));

const resp = await client.fetchProtectedResource(config, tokens.access_token, new URL(`${issuer}/v1alpha1/tokens/${clientId}`), 'GET');
const body = await resp.json();
check('the access token calls the API', resp.status === 200 && body.token?.id === clientId, JSON.stringify(body));

const active = await client.tokenIntrospection(config, tokens.access_token);
check('introspection says the access token is active', active.active === true && active.client_id === clientId, JSON.stringify(active));

await client.tokenRevocation(config, clientSecret);
// A 401 with a Basic challenge: the library raises it as such.
const refusedClient = (e) => e?.status === 401 && e?.cause?.[0]?.scheme === 'basic';
const inactive = await client.tokenIntrospection(config, tokens.access_token).catch((e) => e);
check('after revoking the API token, the client is refused', refusedClient(inactive), String(inactive));
const refused = await client.clientCredentialsGrant(config).catch((e) => e);
check('and the grant too', refusedClient(refused), String(refused));

console.log(`oauth-client-node: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
