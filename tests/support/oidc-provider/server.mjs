// A real OAuth2/OIDC authorization server (panva's oidc-provider) for the
// gateway's end-to-end tests. It plays the "upstream" the gateway links
// accounts with, so the gateway is tested against a spec-compliant server
// rather than against a mock written by the same people as the gateway.
//
// Config: JSON in the OIDC_CONFIG env var, or in argv[2]:
//   {
//     "port": 0,                      // 0 = any free port
//     "clients": [{"client_id", "client_secret", "redirect_uris": [...],
//                  "token_endpoint_auth_method": "client_secret_basic"|"client_secret_post",
//                  "grant_types": ["authorization_code", "refresh_token"]}],
//     "access_token_ttl": 3600,       // optional, seconds
//     "pkce_required": false,         // optional
//     "rotate_refresh_token": false,  // optional: rotate on every refresh
//     "extra_scopes": ["read"],       // optional: non-OIDC scopes to accept
//     "exit_on_stdin_close": false    // optional: exit when stdin hits EOF, so a
//                                     // crashed test runner leaves no orphan
//   }
// Prints exactly one line "READY http://127.0.0.1:<port>" once listening.
// Any login/password is accepted on the dev login page; the login becomes `sub`.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import process from 'node:process';

import Provider from 'oidc-provider';

const raw = process.env.OIDC_CONFIG ?? process.argv[2];
if (!raw) {
  console.error('server.mjs: pass the JSON config in OIDC_CONFIG or as the first argument');
  process.exit(2);
}
const config = JSON.parse(raw);

// Fresh signing key per run (ID tokens only; access/refresh tokens are opaque).
// Avoids the provider's well-known development keys.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'e2e', use: 'sig', alg: 'RS256' };

const clients = (config.clients ?? []).map((c) => ({
  response_types: ['code'],
  grant_types: ['authorization_code', 'refresh_token'],
  token_endpoint_auth_method: 'client_secret_basic',
  ...c,
}));

// The issuer contains the port, so bind first (port 0 = let the OS pick)
// and only then build the provider.
const server = createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(config.port ?? 0, '127.0.0.1', resolve);
});
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients,
  jwks: { keys: [jwk] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  scopes: ['openid', 'offline_access', ...(config.extra_scopes ?? [])],
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    email: ['email', 'email_verified'],
  },
  async findAccount(_ctx, sub) {
    return {
      accountId: sub,
      async claims() {
        return {
          sub,
          name: sub,
          preferred_username: sub,
          email: `${sub}@example.test`,
          email_verified: true,
        };
      },
    };
  },
  features: {
    // Built-in login + consent pages (still present in v9), driven by
    // tests/support/oidc_provider.py like a browser would.
    devInteractions: { enabled: true },
    revocation: { enabled: true },
    introspection: { enabled: true },
    userinfo: { enabled: true },
  },
  pkce: { required: () => Boolean(config.pkce_required) },
  // Refresh tokens whenever the client may use the grant. The provider's
  // default also demands the offline_access scope, and it silently drops
  // offline_access from any request that lacks prompt=consent; a gateway
  // should not have to know that to get a refresh token.
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  // Keep tokens valid after the upstream browser session ends (what a
  // linking gateway relies on), even without offline_access.
  expiresWithSession: async () => false,
  // Deterministic: by default the provider rotates only near 70% of the TTL.
  rotateRefreshToken: () => Boolean(config.rotate_refresh_token),
  ttl: {
    AccessToken: config.access_token_ttl ?? 3600,
    AuthorizationCode: 60,
    RefreshToken: 14 * 24 * 3600,
    Grant: 14 * 24 * 3600,
    Session: 24 * 3600,
    Interaction: 3600,
    IdToken: 3600,
  },
  // Show the actual error on stderr and on the error page; it is a test server.
  renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = `<!DOCTYPE html><html><head><title>oops! something went wrong</title></head>`
      + `<body><h1>oops! something went wrong</h1><pre id="error">${escapeHtml(JSON.stringify(out))}</pre></body></html>`;
  },
});

provider.on('server_error', (_ctx, err) => console.error('server_error', err));

// Static clients are only validated when first used; fail at start-up instead,
// with the provider's own message (e.g. a bad redirect_uri), before READY.
for (const { client_id: clientId } of clients) {
  try {
    await provider.Client.find(clientId);
  } catch (err) {
    console.error(`invalid client ${clientId}: ${err.message}: ${err.error_description ?? ''}`);
    process.exit(1);
  }
}

server.on('request', provider.callback());

function escapeHtml(s) {
  return s.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

function shutdown() {
  server.close(() => process.exit(0));
  server.closeAllConnections();
  setTimeout(() => process.exit(0), 2000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
if (config.exit_on_stdin_close) {
  process.stdin.on('end', shutdown);
  process.stdin.on('error', shutdown);
  process.stdin.resume();
}

process.stdout.write(`READY ${issuer}\n`);
