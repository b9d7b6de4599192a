// A real OAuth client, oauth4webapi (certified by the OpenID Foundation),
// drives the token lifecycle of the tokengate demo server through the
// library's own request and response functions: discovery of the
// revocation (RFC 7009) and introspection (RFC 7662) endpoints,
// revocationRequest / processRevocationResponse for access and refresh
// tokens, introspectionRequest / processIntrospectionResponse by
// client_secret_basic and private_key_jwt resource servers, and
// refreshTokenGrantRequest retried within the demo's --refresh-reuse
// window (or, without it, refused as a replay). Refusals must come out as
// oauth4webapi's own error types. tests/real_clients.rs runs it; by hand:
//
//   node lifecycle.mjs setup CLIENTS_FILE
//       makes an ES256 key pair and two secrets (WebCrypto) and writes the
//       clients file the demo loads; the private half and the secrets go
//       to CLIENTS_FILE.keys.json, for the run.
//   cargo run --example server -- --clients CLIENTS_FILE [--dialect rfc6749] \
//       --addr 127.0.0.1:PORT --issuer http://127.0.0.1:PORT [--refresh-reuse 60]
//   node lifecycle.mjs run http://127.0.0.1:PORT CLIENTS_FILE [--refresh-reuse] [--github]
//       the checks, one line each. `--refresh-reuse` when the demo runs
//       with a reuse window (its limit is 3 reuses); `--github` when the
//       demo speaks GitHub's dialect (its default).
//
// GitHub's dialect answers token endpoint errors with status 200, which
// oauth4webapi reads as a malformed token response (an
// OperationProcessingError whose cause holds GitHub's error body). The
// revocation and introspection endpoints answer RFC 6749 JSON errors with
// their real status in both dialects, so oauth4webapi reads those as
// ResponseBodyError (or WWWAuthenticateChallengeError for a 401 with a
// challenge) in both.
//
// Exits 1 at the first failed check, 2 on bad arguments.

import { readFile, writeFile } from 'node:fs/promises';
import * as oauth from 'oauth4webapi';

/// Where the demo sends codes: a loopback URI (any port; nothing listens).
const REDIRECT = 'http://127.0.0.1:4567/callback';

const CLIENTS = {
  app: 'js-app',
  public: 'js-public',
  rsBasic: 'js-rs-basic',
  rsJwt: 'js-rs-jwt',
};

/// The demo's access token lifetime, as it tells clients.
const ACCESS_TOKEN_LIFETIME = 8 * 3600;
/// The demo's reuse limit under --refresh-reuse.
const REFRESH_REUSES = 3;

function usage() {
  console.error(
    'usage: node lifecycle.mjs setup CLIENTS_FILE\n' +
      '       node lifecycle.mjs run BASE_URL CLIENTS_FILE [--refresh-reuse] [--github]',
  );
  process.exit(2);
}

let passed = 0;
function pass(line) {
  passed += 1;
  console.log(`ok - ${line}`);
}

class CheckFailed extends Error {}
function check(condition, what, detail) {
  if (!condition) {
    throw new CheckFailed(`${what}${detail === undefined ? '' : `: ${JSON.stringify(detail)}`}`);
  }
}

// ---------------------------------------------------------------- setup

async function setup(file) {
  const pair = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
    'sign',
    'verify',
  ]);
  const { kty, crv, x, y } = await crypto.subtle.exportKey('jwk', pair.publicKey);
  const kid = 'js-rs-jwt-1';
  const keys = {
    es256: { kid, private: await crypto.subtle.exportKey('jwk', pair.privateKey) },
    appSecret: oauth.generateRandomState() + oauth.generateRandomState(),
    rsSecret: oauth.generateRandomState() + oauth.generateRandomState(),
  };
  const loopback = { redirect_uris: ['http://127.0.0.1/callback'], redirect_policy: 'loopback' };
  const clients = {
    clients: [
      {
        client_id: CLIENTS.app,
        client_secret: keys.appSecret,
        token_endpoint_auth_method: 'client_secret_basic',
        ...loopback,
      },
      { client_id: CLIENTS.public, token_endpoint_auth_method: 'none', ...loopback },
      {
        client_id: CLIENTS.rsBasic,
        client_secret: keys.rsSecret,
        token_endpoint_auth_method: 'client_secret_basic',
        introspect: true,
      },
      {
        client_id: CLIENTS.rsJwt,
        token_endpoint_auth_method: 'private_key_jwt',
        jwks: { keys: [{ kty, crv, x, y, alg: 'ES256', kid }] },
        introspect: true,
      },
    ],
  };
  await writeFile(file, JSON.stringify(clients, null, 2));
  await writeFile(`${file}.keys.json`, JSON.stringify(keys, null, 2), { mode: 0o600 });
  console.log(`wrote ${file} (${clients.clients.length} clients) and ${file}.keys.json`);
}

// ------------------------------------------------------------------ run

/// What a refusal says, whichever way oauth4webapi surfaced it: a
/// `ResponseBodyError` (the OAuth error body); for a 401 that carries
/// `WWW-Authenticate`, a `WWWAuthenticateChallengeError` (its body unread);
/// for GitHub's 200 with an error body, an `OperationProcessingError` (no
/// `access_token`) whose cause holds the body. Anything else is rethrown.
async function refusal(err) {
  if (err instanceof oauth.ResponseBodyError) {
    return { status: err.status, error: err.error, via: 'ResponseBodyError' };
  }
  if (err instanceof oauth.WWWAuthenticateChallengeError) {
    const body = await err.response.json().catch(() => ({}));
    const scheme = err.cause?.[0]?.scheme;
    return { status: err.status, error: body.error, via: `WWWAuthenticateChallengeError (${scheme})` };
  }
  if (err instanceof oauth.OperationProcessingError && typeof err.cause?.body?.error === 'string') {
    return {
      status: 200,
      error: err.cause.body.error,
      via: `OperationProcessingError: ${err.message}`,
    };
  }
  throw err;
}

async function run(base, file, { reuse, github }) {
  // A refresh token the token endpoint refuses, in the demo's dialect.
  const badRefresh = github ? [200, 'bad_refresh_token'] : [400, 'invalid_grant'];
  const keys = JSON.parse(await readFile(`${file}.keys.json`, 'utf8'));
  const issuer = new URL(base);
  // Every request goes through this fetch, so the checks can say what
  // oauth4webapi put on the wire.
  const sent = [];
  const options = {
    // Plain HTTP to 127.0.0.1 only: oauth4webapi refuses it unless told.
    [oauth.allowInsecureRequests]: true,
    [oauth.customFetch]: async (url, init) => {
      sent.push({ url, init });
      return fetch(url, init);
    },
  };
  const lastSent = () => sent.at(-1);

  // RFC 8414 discovery at /.well-known/oauth-authorization-server.
  const as = await oauth.processDiscoveryResponse(
    issuer,
    await oauth.discoveryRequest(issuer, { ...options, algorithm: 'oauth2' }),
  );
  check(as.revocation_endpoint === `${base}/login/oauth/revoke`, 'revocation_endpoint', as);
  check(as.introspection_endpoint === `${base}/login/oauth/introspect`, 'introspection_endpoint', as);
  for (const method of ['client_secret_basic', 'client_secret_post', 'private_key_jwt', 'none']) {
    check(
      as.revocation_endpoint_auth_methods_supported?.includes(method),
      `revocation_endpoint_auth_methods_supported lists ${method}`,
      as,
    );
  }
  for (const method of ['client_secret_basic', 'private_key_jwt']) {
    check(
      as.introspection_endpoint_auth_methods_supported?.includes(method),
      `introspection_endpoint_auth_methods_supported lists ${method}`,
      as,
    );
  }
  check(
    !as.introspection_endpoint_auth_methods_supported.includes('none'),
    'only authenticated clients introspect',
    as,
  );
  pass(`discovery: ${as.revocation_endpoint} and ${as.introspection_endpoint}, with their auth methods`);

  const app = { client_id: CLIENTS.app };
  const appAuth = oauth.ClientSecretBasic(keys.appSecret);
  const rsBasic = { client_id: CLIENTS.rsBasic };
  const rsBasicAuth = oauth.ClientSecretBasic(keys.rsSecret);
  const rsJwt = { client_id: CLIENTS.rsJwt };
  const rsKey = await crypto.subtle.importKey(
    'jwk',
    keys.es256.private,
    { name: 'ECDSA', namedCurve: 'P-256' },
    false,
    ['sign'],
  );
  const rsJwtAuth = oauth.PrivateKeyJwt({ key: rsKey, kid: keys.es256.kid });

  /// The code flow: authorize (approved at once by the demo), then the
  /// token request, its answer checked by oauth4webapi.
  async function codeFlow(client, auth) {
    const verifier = oauth.generateRandomCodeVerifier();
    const state = oauth.generateRandomState();
    const url = new URL(as.authorization_endpoint);
    url.searchParams.set('response_type', 'code');
    url.searchParams.set('client_id', client.client_id);
    url.searchParams.set('redirect_uri', REDIRECT);
    url.searchParams.set('scope', 'repo');
    url.searchParams.set('state', state);
    url.searchParams.set('code_challenge', await oauth.calculatePKCECodeChallenge(verifier));
    url.searchParams.set('code_challenge_method', 'S256');
    const response = await fetch(url, { redirect: 'manual' });
    check(response.status === 302, 'the authorize endpoint redirects', { status: response.status });
    const params = oauth.validateAuthResponse(as, client, new URL(response.headers.get('location')), state);
    const tokens = await oauth.processAuthorizationCodeResponse(
      as,
      client,
      await oauth.authorizationCodeGrantRequest(as, client, auth, params, REDIRECT, verifier, options),
    );
    check(typeof tokens.refresh_token === 'string', 'a refresh token', tokens);
    return tokens;
  }

  async function refresh(client, auth, refreshToken) {
    return oauth.processRefreshTokenResponse(
      as,
      client,
      await oauth.refreshTokenGrantRequest(as, client, auth, refreshToken, options),
    );
  }

  async function introspect(client, auth, token, hint) {
    const additionalParameters = hint === undefined ? undefined : { token_type_hint: hint };
    return oauth.processIntrospectionResponse(
      as,
      client,
      await oauth.introspectionRequest(as, client, auth, token, { ...options, additionalParameters }),
    );
  }

  async function revoke(client, auth, token, hint) {
    const additionalParameters = hint === undefined ? undefined : { token_type_hint: hint };
    return oauth.processRevocationResponse(
      await oauth.revocationRequest(as, client, auth, token, { ...options, additionalParameters }),
    );
  }

  async function inactive(what, token) {
    const answer = await introspect(rsBasic, rsBasicAuth, token);
    check(answer.active === false && Object.keys(answer).length === 1, `${what}: {"active":false}`, answer);
  }

  /// `attempt` must be refused with `error` (and `status`).
  async function refused(what, status, error, attempt) {
    let outcome;
    try {
      outcome = await attempt();
    } catch (err) {
      const got = await refusal(err);
      check(got.status === status && got.error === error, `${what}: ${status} ${error}`, got);
      pass(`${what}: refused ${status} ${error} (${got.via})`);
      return;
    }
    check(false, `${what}: must be refused with ${error}`, outcome);
  }

  // Introspection of an access token, by both resource servers.
  const tokens = await codeFlow(app, appAuth);
  const basic = await introspect(rsBasic, rsBasicAuth, tokens.access_token);
  check(lastSent().init.headers.authorization?.startsWith('Basic '), 'client_secret_basic was used');
  check(basic.active === true, 'the access token is active', basic);
  check(basic.client_id === CLIENTS.app, "the token's client_id", basic);
  check(basic.token_type === 'Bearer', 'token_type Bearer', basic);
  check(basic.sub === 'demo-user', 'sub', basic);
  check(basic.scope === 'repo', 'scope', basic);
  check(basic.iss === as.issuer, 'iss is the issuer', basic);
  check(basic.exp - basic.iat === ACCESS_TOKEN_LIFETIME, 'exp is eight hours after iat', basic);
  pass(
    `introspection (client_secret_basic): the access token is active, ${basic.token_type}, for ${basic.client_id} as ${basic.sub}, scope ${basic.scope}`,
  );
  const signed = await introspect(rsJwt, rsJwtAuth, tokens.access_token);
  const assertion = new URLSearchParams(lastSent().init.body).get('client_assertion');
  check(typeof assertion === 'string', 'private_key_jwt sent a client assertion');
  check(signed.active === true && signed.client_id === CLIENTS.app, 'active, for the same client', signed);
  pass('introspection (private_key_jwt, ES256): the same answer');
  const described = await introspect(rsJwt, rsJwtAuth, tokens.refresh_token, 'refresh_token');
  check(described.active === true && described.token_type === 'refresh_token', 'a live refresh token', described);
  check(described.client_id === CLIENTS.app && described.exp > described.iat, 'its client and lifetime', described);
  pass('introspection: the refresh token is active, token_type refresh_token (answered by the gate)');

  // The refresh grant, and a retry of the rotated token.
  const refreshed = await refresh(app, appAuth, tokens.refresh_token);
  check(refreshed.refresh_token !== tokens.refresh_token, 'the refresh token rotated', refreshed);
  await inactive('the rotated refresh token', tokens.refresh_token);
  pass('refreshTokenGrantRequest: new tokens, the refresh token rotated (the old one introspects inactive)');
  if (reuse) {
    // The answer was lost, say: the client retries with the same token.
    const retried = await refresh(app, appAuth, tokens.refresh_token);
    check(retried.refresh_token !== refreshed.refresh_token, 'a successor of its own', retried);
    const answer = await introspect(rsBasic, rsBasicAuth, retried.access_token);
    check(answer.active === true, "the retry's access token is active", answer);
    pass('a refresh retried within --refresh-reuse: new tokens in the same family, not a replay');
    for (let reuses = 1; reuses < REFRESH_REUSES; reuses += 1) {
      await refresh(app, appAuth, tokens.refresh_token);
    }
    pass(`${REFRESH_REUSES} reuses in all within the window`);
    await refused(`past ${REFRESH_REUSES} reuses, a replay`, ...badRefresh, () =>
      refresh(app, appAuth, tokens.refresh_token),
    );
    await refused('the retry\'s successor, its family revoked', ...badRefresh, () =>
      refresh(app, appAuth, retried.refresh_token),
    );
    await inactive("the retry's access token", retried.access_token);
  } else {
    await refused('a refresh retried without a reuse window: a replay', ...badRefresh, () =>
      refresh(app, appAuth, tokens.refresh_token),
    );
  }
  await refused('the successor, its family revoked by the replay', ...badRefresh, () =>
    refresh(app, appAuth, refreshed.refresh_token),
  );
  await inactive("the successor's access token", refreshed.access_token);
  pass('the replay revoked the family: its refresh tokens and access tokens are inactive');

  // Revocation of an access token: by another client, nothing happens;
  // by its own, it is gone.
  const second = await codeFlow(app, appAuth);
  check((await revoke(rsBasic, rsBasicAuth, second.access_token)) === undefined, 'a 200 for another client');
  check((await introspect(rsBasic, rsBasicAuth, second.access_token)).active === true, 'still active');
  pass("revocationRequest by another client: 200, and the token lives on (RFC 7009 §2.1)");
  check((await revoke(app, appAuth, second.access_token, 'access_token')) === undefined, 'revoked');
  await inactive('the revoked access token', second.access_token);
  check((await revoke(app, appAuth, second.access_token)) === undefined, 'a second revocation is a 200 too');
  pass('revocationRequest of an access token (hint access_token): processRevocationResponse, then {"active":false}');

  // Revocation of a refresh token: its family goes, with its access tokens.
  const third = await refresh(app, appAuth, second.refresh_token);
  check((await revoke(app, appAuth, third.refresh_token, 'refresh_token')) === undefined, 'revoked');
  await refused('a revoked refresh token at the token endpoint', ...badRefresh, () =>
    refresh(app, appAuth, third.refresh_token),
  );
  await inactive('the revoked refresh token', third.refresh_token);
  await inactive("the revoked family's access token", third.access_token);
  pass('revocationRequest of a refresh token (hint refresh_token): the family and its access tokens are inactive');

  // A public client revokes its own refresh token by its client_id alone.
  {
    const client = { client_id: CLIENTS.public };
    const own = await codeFlow(client, oauth.None());
    check((await revoke(client, oauth.None(), own.refresh_token)) === undefined, 'revoked');
    await refused('a public client\'s revoked refresh token', ...badRefresh, () =>
      refresh(client, oauth.None(), own.refresh_token),
    );
    await inactive("the public client's access token", own.access_token);
  }

  // Refusals, as oauth4webapi's error types (RFC JSON in both dialects).
  const fourth = await codeFlow(app, appAuth);
  await refused('introspection by a client not registered to introspect', 403, 'unauthorized_client', () =>
    introspect(app, appAuth, fourth.access_token),
  );
  await refused('revocation with a wrong client secret', 401, 'invalid_client', () =>
    revoke(app, oauth.ClientSecretBasic(`${keys.appSecret}-wrong`), fourth.access_token),
  );
  {
    const stranger = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']);
    await refused('introspection with an assertion signed by an unregistered key', 401, 'invalid_client', () =>
      introspect(rsJwt, oauth.PrivateKeyJwt({ key: stranger.privateKey, kid: keys.es256.kid }), fourth.access_token),
    );
  }
  await refused('revocation of a kind of token nobody here revokes', 400, 'unsupported_token_type', () =>
    revoke(app, appAuth, fourth.access_token, 'id_token'),
  );
  const still = await introspect(rsBasic, rsBasicAuth, fourth.access_token);
  check(still.active === true, 'the refusals revoked nothing', still);
  pass('the refusals left the token active');

  const flags = [reuse && '--refresh-reuse', github && '--github'].filter(Boolean).join(' ');
  console.log(`${passed} checks passed${flags ? ` (${flags})` : ''}`);
}

// ----------------------------------------------------------------- main

const [command, ...args] = process.argv.slice(2);
try {
  if (command === 'setup' && args.length === 1) {
    await setup(args[0]);
  } else if (
    command === 'run' &&
    args.length >= 2 &&
    args.slice(2).every((flag) => ['--refresh-reuse', '--github'].includes(flag))
  ) {
    await run(args[0].replace(/\/$/, ''), args[1], {
      reuse: args.includes('--refresh-reuse'),
      github: args.includes('--github'),
    });
  } else {
    usage();
  }
} catch (err) {
  console.error(`FAIL (after ${passed} passed checks): ${err instanceof CheckFailed ? err.message : err?.stack ?? err}`);
  if (err?.cause !== undefined) console.error('cause:', JSON.stringify(err.cause));
  process.exit(1);
}
