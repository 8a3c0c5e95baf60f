// A real OpenID Provider for the e2e tests: `oidc-provider` (a certified
// OpenID Provider implementation), on loopback only, shaped like ProConnect:
// scopes openid given_name usual_name email uid siret, acr_values, RS256 ID
// tokens and signed (RS256 JWT) user info, PKCE (S256) required,
// RP-initiated logout (end_session_endpoint).
//
// Plain HTTP on 127.0.0.1: oidc-provider accepts an http issuer outside
// production (NODE_ENV is not `production`), and its dev interactions
// (a login form taking any password, enabled by default in that mode)
// stand in for the login page. Consent is granted automatically to the one
// client (`loadExistingGrant`), as for a first-party federation.
//
// Two accounts (the login is the e-mail): agent@mairie.example.fr and
// someone@other.example.
//
// With `tls: { cert, key }` it serves HTTPS instead (the issuer is then
// https://127.0.0.1:<port>), to test Salon's TLS client.
//
// Use: `const op = await startProvider({ port, redirectUri, postLogoutUri })`
// then `op.issuer`, `op.clientId`, `op.clientSecret`, `await op.close()`.
// Standalone: `node oidc-provider.mjs <port> <redirect uri> [post logout uri]`.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { fileURLToPath } from 'node:url';
import Provider from 'oidc-provider';

export const ACCOUNTS = {
  'agent@mairie.example.fr': {
    email: 'agent@mairie.example.fr',
    email_verified: true,
    given_name: 'Camille',
    usual_name: 'Martin',
    uid: 'cmartin-42',
    siret: '21750001600019',
  },
  'someone@other.example': {
    email: 'someone@other.example',
    email_verified: true,
    given_name: 'Dominique',
    usual_name: 'Durand',
    uid: 'ddurand-7',
  },
};

export const SCOPES = 'openid given_name usual_name email uid siret';

export async function startProvider({ port, redirectUri, postLogoutUri, host = '127.0.0.1', tls = null, acr = 'eidas1' }) {
  const issuer = `${tls ? 'https' : 'http'}://${host}:${port}`;
  const clientId = 'salon-e2e';
  const clientSecret = randomBytes(24).toString('hex');
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'e2e-rs256', use: 'sig', alg: 'RS256' };
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: clientId,
        client_secret: clientSecret,
        redirect_uris: [redirectUri],
        post_logout_redirect_uris: postLogoutUri ? [postLogoutUri] : [],
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
        id_token_signed_response_alg: 'RS256',
        // As ProConnect: user info is a JWT signed with the provider's key.
        userinfo_signed_response_alg: 'RS256',
      },
    ],
    jwks: { keys: [jwk] },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    pkce: { required: () => true },
    scopes: SCOPES.split(' '),
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      given_name: ['given_name'],
      usual_name: ['usual_name'],
      uid: ['uid'],
      siret: ['siret'],
    },
    acrValues: ['eidas1'],
    features: {
      devInteractions: { enabled: true },
      rpInitiatedLogout: { enabled: true },
      jwtUserinfo: { enabled: true },
    },
    async findAccount(_ctx, id) {
      const account = ACCOUNTS[id];
      if (!account) return undefined;
      return { accountId: id, claims: async () => ({ sub: id, ...account }) };
    },
    async loadExistingGrant(ctx) {
      const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
      if (grantId) return ctx.oidc.provider.Grant.find(grantId);
      const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
      grant.addOIDCScope(SCOPES);
      await grant.save();
      return grant;
    },
    ttl: { AccessToken: 600, AuthorizationCode: 60, IdToken: 600, Interaction: 600, Session: 3600, Grant: 3600 },
  });
  // The login level, as ProConnect's ID tokens carry it (`acr`, one of the
  // `acr_values` asked for; Salon refuses a token without it): the dev
  // login form records only the account, so its result gets `acr` here.
  // `acr` (a test option): the level recorded, to test a weaker one.
  const finished = provider.interactionFinished.bind(provider);
  provider.interactionFinished = (req, res, result, opts) =>
    finished(req, res, result?.login ? { ...result, login: { acr, ...result.login } } : result, opts);
  // What the tests assert about the provider's side (codes redeemed, refused).
  const events = [];
  for (const name of ['grant.success', 'grant.error', 'end_session.success', 'authorization.error']) {
    provider.on(name, (_ctx, err) => events.push({ name, error: err?.error ?? err?.message }));
  }
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.path === '/me') events.push({ name: 'userinfo', type: ctx.type, status: ctx.status });
  });
  // `tls`: { cert, key } paths (e.g. helpers.makeTestCerts): HTTPS.
  const server = tls
    ? https.createServer({ cert: readFileSync(tls.cert), key: readFileSync(tls.key) }, provider.callback())
    : http.createServer(provider.callback());
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, resolve);
  });
  return {
    issuer,
    clientId,
    clientSecret,
    events,
    close: () => new Promise((resolve) => {
      server.closeAllConnections?.();
      server.close(() => resolve());
    }),
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [port, redirectUri, postLogoutUri] = process.argv.slice(2);
  const op = await startProvider({ port: Number(port), redirectUri, postLogoutUri });
  console.log(`issuer ${op.issuer} client_id ${op.clientId} client_secret ${op.clientSecret}`);
}
