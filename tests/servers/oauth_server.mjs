// A real OAuth 2.1 authorization server for the authorization tests: npm's `oidc-provider`
// (a certified OpenID provider) on 127.0.0.1 with dynamic client registration, PKCE,
// resource indicators (RFC 8707: an access token is a JWT whose audience is the resource
// asked for), its development login and consent pages (which the test's client fills in),
// and a token-exchange grant (RFC 8693) registered through the provider's own extension
// API: the provider authenticates the calling client (client_secret_basic, private_key_jwt),
// this grant checks the subject token and issues one for the asked audience.
//
//   node oauth_server.mjs CONFIG_JSON NODE_MODULES
//
// CONFIG: {"exchange_ttl": seconds, "access_ttl": seconds, "clients": [{client_id, client_secret
// | jwks}], "scopes": ["mcp", ...]}. Prints one line `{"issuer": "http://127.0.0.1:PORT"}` when
// it listens. `GET /test/exchanges` lists every exchange it answered (who asked, for whom,
// which audience, which subject token's jti), for the tests to count.

import http from 'node:http';
import crypto from 'node:crypto';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

// The project's test peers (.tools/npm/node_modules), which this file does not sit under.
const peers = process.argv[3];
const load = (file) => import(pathToFileURL(join(peers, file)).href);
const { default: Provider, errors } = await load('oidc-provider/lib/index.js');
const { SignJWT, jwtVerify, generateKeyPair, exportJWK, createLocalJWKSet } = await load(
  'jose/dist/webapi/index.js',
);

const config = JSON.parse(process.argv[2] || '{}');
const scopes = config.scopes || ['mcp'];
const accessTtl = config.access_ttl || 600;
const exchangeTtl = config.exchange_ttl || 600;
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';

const ec = await generateKeyPair('ES256', { extractable: true });
const rsa = await generateKeyPair('RS256', { extractable: true });
const ecJwk = { ...(await exportJWK(ec.privateKey)), kid: 'ec-1', alg: 'ES256', use: 'sig' };
const rsaJwk = { ...(await exportJWK(rsa.privateKey)), kid: 'rsa-1', alg: 'RS256', use: 'sig' };
const publicKeys = createLocalJWKSet({
  keys: [{ ...(await exportJWK(ec.publicKey)), kid: 'ec-1', alg: 'ES256' }],
});

const exchanges = [];
const server = http.createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  jwks: { keys: [ecJwk, rsaJwk] },
  clients: config.clients || [],
  scopes: ['openid', 'offline_access', ...scopes],
  // A client registers with the scopes it was first asked for; a later step-up asks for
  // more. This server's policy: a registered scope does not limit what may be asked later
  // (the user consents to each), so it is not kept.
  extraClientMetadata: {
    properties: ['software_statement_policy'],
    validator: (_ctx, _key, _value, metadata) => {
      delete metadata.scope;
    },
  },
  features: {
    devInteractions: { enabled: true },
    registration: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // A token without `resource` would be for userinfo only: the MCP client always asks.
      defaultResource: () => undefined,
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, resource) => ({
        scope: scopes.join(' '),
        audience: resource,
        accessTokenTTL: accessTtl,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'ES256' } },
      }),
    },
  },
  pkce: { required: () => true },
  // Consent is asked for every authorization (the test's client answers it): only the grant
  // the consent just made counts, none from before.
  loadExistingGrant: (ctx) => {
    const id = ctx.oidc.result?.consent?.grantId;
    return id ? ctx.oidc.provider.Grant.find(id) : undefined;
  },
  findAccount: (_ctx, id) => ({ accountId: id, claims: () => ({ sub: id }) }),
  ttl: { AccessToken: accessTtl, Grant: 3600, Interaction: 600, Session: 3600 },
});
provider.proxy = false;

provider.registerGrantType(TOKEN_EXCHANGE, async (ctx) => {
  const { params, client } = ctx.oidc;
  if (params.subject_token_type !== ACCESS_TOKEN) {
    throw new errors.InvalidRequest('subject_token_type must be an access token');
  }
  let subject;
  try {
    ({ payload: subject } = await jwtVerify(params.subject_token, publicKeys, { issuer }));
  } catch (e) {
    throw new errors.InvalidGrant(`subject token: ${e.code || e.message}`);
  }
  const audience = params.audience || params.resource;
  if (!audience) {
    throw new errors.InvalidTarget('name the audience or resource');
  }
  if ([subject.aud].flat().includes(audience)) {
    throw new errors.InvalidGrant('the subject token is for that audience already');
  }
  const now = Math.floor(Date.now() / 1000);
  const token = await new SignJWT({
    scope: params.scope || subject.scope || '',
    client_id: client.clientId,
    // RFC 8693 §4.1: the gateway acts for the user.
    act: { sub: client.clientId },
  })
    .setProtectedHeader({ alg: 'ES256', kid: 'ec-1', typ: 'at+jwt' })
    .setIssuer(issuer)
    .setSubject(subject.sub)
    .setAudience(audience)
    .setIssuedAt(now)
    .setExpirationTime(now + exchangeTtl)
    .setJti(crypto.randomUUID())
    .sign(ec.privateKey);
  exchanges.push({
    client_id: client.clientId,
    sub: subject.sub,
    audience,
    subject_jti: subject.jti,
    subject_aud: subject.aud,
  });
  ctx.body = {
    access_token: token,
    issued_token_type: ACCESS_TOKEN,
    token_type: 'Bearer',
    expires_in: exchangeTtl,
  };
}, ['subject_token', 'subject_token_type', 'requested_token_type', 'audience', 'resource', 'scope', 'actor_token', 'actor_token_type']);

const callback = provider.callback();
server.on('request', (req, res) => {
  if (req.url === '/test/exchanges') {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(exchanges));
    return;
  }
  callback(req, res);
});

console.log(JSON.stringify({ issuer }));
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => process.exit(0));
}
