// A real OpenID Provider (panva's oidc-provider, OpenID-certified) on loopback for Portico's
// tests. Configured by the JSON in IDP_CONFIG:
//   { "port": 1234, "clients": [{ "client_id", "client_secret", "redirect_uris": [] }],
//     "accounts": { "<login>": { "email", "name", "groups": [] } } }
// People sign in on the provider's development login form (any password is accepted for a
// configured account) and confirm consent.
//
// POST /__accounts?login=… with a JSON body of groups changes that person's groups, as an
// administrator would in the provider's directory.
//
// For faults a correct provider never makes, POST /__tamper?mode=… switches what the token
// endpoint returns (tests say when they use it):
//   "signature": the ID token's payload is altered after signing;
//   "audience":  the ID token is re-signed with the provider's own key for another audience;
//   "none":      back to normal.
import Provider from 'oidc-provider';
import * as jose from 'jose';

const config = JSON.parse(process.env.IDP_CONFIG);
const issuer = `http://127.0.0.1:${config.port}`;
const { privateKey } = await jose.generateKeyPair('RS256', { extractable: true });
const jwk = { ...(await jose.exportJWK(privateKey)), kid: 'test-key', alg: 'RS256', use: 'sig' };
let tamper = 'none';

const provider = new Provider(issuer, {
  clients: config.clients.map((client) => ({
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
    ...client,
  })),
  jwks: { keys: [jwk] },
  async findAccount(ctx, id) {
    const account = config.accounts[id];
    if (!account) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, email: account.email, email_verified: true, name: account.name, groups: account.groups };
      },
    };
  },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'], groups: ['groups'] },
  scopes: ['openid', 'email', 'profile', 'groups', 'offline_access'],
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
  pkce: { required: () => true },
  cookies: { keys: ['portico-test-idp-cookie-key'] },
});

provider.use(async (ctx, next) => {
  if (ctx.path === '/__accounts' && ctx.method === 'POST') {
    const chunks = [];
    for await (const chunk of ctx.req) chunks.push(chunk);
    config.accounts[ctx.query.login].groups = JSON.parse(Buffer.concat(chunks).toString());
    ctx.body = { ok: true };
    return;
  }
  if (ctx.path === '/__tamper' && ctx.method === 'POST') {
    tamper = ctx.query.mode || 'none';
    ctx.body = { tamper };
    return;
  }
  await next();
  if (ctx.path === '/token' && tamper !== 'none' && ctx.body && ctx.body.id_token) {
    const [header, payload, signature] = ctx.body.id_token.split('.');
    if (tamper === 'signature') {
      const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
      claims.email = 'mallory@example.com';
      const forged = Buffer.from(JSON.stringify(claims)).toString('base64url');
      ctx.body = { ...ctx.body, id_token: `${header}.${forged}.${signature}` };
    } else if (tamper === 'audience') {
      const claims = JSON.parse(Buffer.from(payload, 'base64url').toString());
      claims.aud = 'someone-else';
      const resigned = await new jose.SignJWT(claims)
        .setProtectedHeader({ alg: 'RS256', kid: 'test-key' })
        .sign(privateKey);
      ctx.body = { ...ctx.body, id_token: resigned };
    }
  }
});

provider.listen(config.port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${issuer}`);
});
