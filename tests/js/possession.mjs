// A real OAuth client, oauth4webapi (certified by the OpenID Foundation),
// drives the tokengate demo server: signed client authentication
// (private_key_jwt with ES256 and Ed25519 keys, client_secret_jwt) and DPoP
// (RFC 9449), through the library's own request and response functions.
// tests/real_clients.rs runs it; by hand:
//
//   node possession.mjs setup CLIENTS_FILE
//       makes the key pairs (WebCrypto) and writes the clients file the demo
//       loads, with the clients' public keys; the private halves go to
//       CLIENTS_FILE.keys.json, for the run.
//   cargo run --example server -- --clients CLIENTS_FILE [--dialect rfc6749] \
//       --addr 127.0.0.1:PORT --issuer http://127.0.0.1:PORT [--dpop-nonce]
//   node possession.mjs run http://127.0.0.1:PORT CLIENTS_FILE [--dpop-nonce] [--github]
//       the checks, one line each. `--dpop-nonce` when the demo demands
//       nonces: then the first request of every DPoP key must be answered
//       `use_dpop_nonce`, and the retry must pass. `--github` when the demo
//       speaks GitHub's dialect (its default).
//
// GitHub's dialect answers OAuth errors with status 200, and oauth4webapi,
// like every RFC 6749 client, reads a 200 as a token response: a refused
// client authentication comes out as an OperationProcessingError ("access_token
// must be a string") with GitHub's error body as its cause, which is what
// `--github` expects. DPoP errors keep RFC 9449's 400 in both dialects, so
// oauth4webapi reads them (and recognises use_dpop_nonce) in both.
//
// The issuer must be the URL the client uses: assertions name it as their
// audience and proofs carry `{issuer}/login/oauth/access_token` as `htu`.
// Exits 1 at the first failed check, 2 on bad arguments.

import { readFile, writeFile } from 'node:fs/promises';
import * as oauth from 'oauth4webapi';

/// Where the demo sends codes: a loopback URI (its clients are registered
/// with the loopback policy, so any port goes; nothing listens there).
const REDIRECT = 'http://127.0.0.1:4567/callback';

const CLIENTS = {
  es256: 'js-es256',
  ed25519: 'js-ed25519',
  hs256: 'js-hs256',
  public: 'js-public',
  bound: 'js-bound',
};

function usage() {
  console.error(
    'usage: node possession.mjs setup CLIENTS_FILE\n' +
      '       node possession.mjs run BASE_URL CLIENTS_FILE [--dpop-nonce] [--github]',
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

/// The members a client registers: the public key, without WebCrypto's own
/// `key_ops` and `ext`.
function publicJwk(jwk, kid) {
  const { kty, crv, x, y, alg } = jwk;
  return Object.fromEntries(
    Object.entries({ kty, crv, x, y, alg, kid }).filter(([, value]) => value !== undefined),
  );
}

async function setup(file) {
  const es256 = await crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
    'sign',
    'verify',
  ]);
  const ed25519 = await crypto.subtle.generateKey({ name: 'Ed25519' }, true, ['sign', 'verify']);
  const secret = oauth.generateRandomState() + oauth.generateRandomState();
  const exported = async (pair, kid) => ({
    kid,
    private: await crypto.subtle.exportKey('jwk', pair.privateKey),
    public: publicJwk(await crypto.subtle.exportKey('jwk', pair.publicKey), kid),
  });
  const keys = {
    es256: await exported(es256, 'js-es256-1'),
    ed25519: await exported(ed25519, 'js-ed25519-1'),
    secret,
  };
  const loopback = { redirect_uris: ['http://127.0.0.1/callback'], redirect_policy: 'loopback' };
  const clients = {
    clients: [
      {
        client_id: CLIENTS.es256,
        token_endpoint_auth_method: 'private_key_jwt',
        jwks: { keys: [keys.es256.public] },
        ...loopback,
      },
      {
        client_id: CLIENTS.ed25519,
        token_endpoint_auth_method: 'private_key_jwt',
        jwks: { keys: [keys.ed25519.public] },
        ...loopback,
      },
      {
        client_id: CLIENTS.hs256,
        token_endpoint_auth_method: 'client_secret_jwt',
        client_secret: secret,
        ...loopback,
      },
      { client_id: CLIENTS.public, token_endpoint_auth_method: 'none', ...loopback },
      {
        client_id: CLIENTS.bound,
        token_endpoint_auth_method: 'private_key_jwt',
        jwks: { keys: [keys.es256.public] },
        dpop_bound_access_tokens: true,
        ...loopback,
      },
    ],
  };
  await writeFile(file, JSON.stringify(clients, null, 2));
  await writeFile(`${file}.keys.json`, JSON.stringify(keys, null, 2), { mode: 0o600 });
  console.log(`wrote ${file} (${clients.clients.length} clients) and ${file}.keys.json`);
}

// ------------------------------------------------------------------ run

async function importPrivate(jwk) {
  const algorithm = jwk.kty === 'EC' ? { name: 'ECDSA', namedCurve: jwk.crv } : { name: 'Ed25519' };
  return crypto.subtle.importKey('jwk', jwk, algorithm, false, ['sign']);
}

/// A fresh DPoP key pair; the public half must be extractable (it goes
/// into every proof).
function dpopKeys(kind) {
  return kind === 'Ed25519'
    ? crypto.subtle.generateKey({ name: 'Ed25519' }, true, ['sign', 'verify'])
    : crypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify']);
}

/// The JOSE header of a compact JWS.
function joseHeader(jws) {
  return JSON.parse(Buffer.from(jws.split('.')[0], 'base64url').toString());
}

/// What a refusal says, whichever way oauth4webapi surfaced it: a
/// `ResponseBodyError` (the OAuth error body); for a 401 that carries
/// `WWW-Authenticate`, a `WWWAuthenticateChallengeError` (its body unread);
/// for GitHub's 200 with an error body, an `OperationProcessingError` (no
/// `access_token`) whose cause holds the body.
async function refusal(err) {
  if (err instanceof oauth.ResponseBodyError) {
    return { status: err.status, error: err.error, via: 'ResponseBodyError' };
  }
  if (err instanceof oauth.WWWAuthenticateChallengeError) {
    const body = await err.response.json().catch(() => ({}));
    return { status: err.status, error: body.error, via: 'WWWAuthenticateChallengeError' };
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

async function run(base, file, { nonceMode, github }) {
  // A refused client authentication, in the demo's dialect.
  const badClient = github ? [200, 'incorrect_client_credentials'] : [401, 'invalid_client'];
  const keys = JSON.parse(await readFile(`${file}.keys.json`, 'utf8'));
  const issuer = new URL(base);
  // Every request goes through this fetch, so the checks can say what
  // oauth4webapi put on the wire (the assertion's and the proof's `alg`).
  const sent = [];
  const options = {
    // Plain HTTP to 127.0.0.1 only: oauth4webapi refuses it unless told.
    [oauth.allowInsecureRequests]: true,
    [oauth.customFetch]: async (url, init) => {
      const exchange = { url, init };
      sent.push(exchange);
      const response = await fetch(url, init);
      exchange.response = response.clone();
      return response;
    },
  };
  const lastBody = () => new URLSearchParams(sent.at(-1).init.body);
  const lastHeader = (name) => sent.at(-1).init.headers[name];
  // The `token_type` as the server wrote it (oauth4webapi lowercases it).
  const wireTokenType = async () => (await sent.at(-1).response.json()).token_type;

  // RFC 8414 discovery at /.well-known/oauth-authorization-server.
  const as = await oauth.processDiscoveryResponse(
    issuer,
    await oauth.discoveryRequest(issuer, { ...options, algorithm: 'oauth2' }),
  );
  check(as.token_endpoint === `${base}/login/oauth/access_token`, 'token_endpoint', as);
  for (const method of ['private_key_jwt', 'client_secret_jwt', 'none']) {
    check(as.token_endpoint_auth_methods_supported?.includes(method), `metadata lists ${method}`, as);
  }
  for (const alg of ['ES256', 'Ed25519', 'HS256']) {
    check(
      as.token_endpoint_auth_signing_alg_values_supported?.includes(alg),
      `token_endpoint_auth_signing_alg_values_supported lists ${alg}`,
      as,
    );
  }
  for (const alg of ['ES256', 'Ed25519']) {
    check(
      as.dpop_signing_alg_values_supported?.includes(alg),
      `dpop_signing_alg_values_supported lists ${alg}`,
      as,
    );
  }
  pass(`discovery: ${as.issuer} lists private_key_jwt, client_secret_jwt and the ES256/Ed25519/HS256 and DPoP algorithms`);

  /// The authorization request, approved at once by the demo: its 302 to
  /// the redirect URI, checked by oauth4webapi (state, iss, error).
  async function authorize(client, { dpopJkt } = {}) {
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
    if (dpopJkt !== undefined) url.searchParams.set('dpop_jkt', dpopJkt);
    const response = await fetch(url, { redirect: 'manual' });
    check(response.status === 302, 'the authorize endpoint redirects', {
      status: response.status,
      body: await response.text(),
    });
    const callback = new URL(response.headers.get('location'));
    check(callback.href.startsWith(`${REDIRECT}?`), 'the code goes to the redirect URI', callback.href);
    return { params: oauth.validateAuthResponse(as, client, callback, state), verifier };
  }

  // DPoP keys that have been told the server's nonce (oauth4webapi keeps
  // it in the handle). Under --dpop-nonce a key's first request must be
  // refused with use_dpop_nonce; without it, never.
  const primed = new WeakSet();
  async function nonceRetry(what, dpop, attempt) {
    const expectNonce = nonceMode && dpop !== undefined && !primed.has(dpop);
    try {
      const result = await attempt();
      check(!expectNonce, `${what}: the first proof, without nonce, must be refused use_dpop_nonce`);
      return result;
    } catch (err) {
      if (!oauth.isDPoPNonceError(err)) throw err;
      check(expectNonce, `${what}: use_dpop_nonce, unexpected`, err.cause);
      check(
        err.response?.headers?.get('dpop-nonce'),
        `${what}: use_dpop_nonce comes with a DPoP-Nonce header`,
      );
      check(!('nonce' in joseClaims(lastHeader('dpop'))), `${what}: the refused proof had no nonce`);
      primed.add(dpop);
      // The retry's own outcome is the caller's to judge (it may be a
      // refusal the caller expects); here, that it carried the nonce.
      try {
        return await attempt();
      } finally {
        check('nonce' in joseClaims(lastHeader('dpop')), `${what}: the retry carries the nonce`);
        pass(`${what}: use_dpop_nonce (isDPoPNonceError) with a DPoP-Nonce header; the retry carried the nonce`);
      }
    } finally {
      if (dpop !== undefined && !nonceMode) primed.add(dpop);
    }
  }

  /// The code flow: authorize, then the token request, its answer checked
  /// by oauth4webapi.
  async function codeFlow(what, client, auth, { dpop, bindCode } = {}) {
    const dpopJkt = bindCode ? await dpop.calculateThumbprint() : undefined;
    const { params, verifier } = await authorize(client, { dpopJkt });
    return nonceRetry(what, dpop, async () =>
      oauth.processAuthorizationCodeResponse(
        as,
        client,
        await oauth.authorizationCodeGrantRequest(as, client, auth, params, REDIRECT, verifier, {
          ...options,
          DPoP: dpop,
        }),
      ),
    );
  }

  async function refresh(what, client, auth, refreshToken, dpop) {
    return nonceRetry(what, dpop, async () =>
      oauth.processRefreshTokenResponse(
        as,
        client,
        await oauth.refreshTokenGrantRequest(as, client, auth, refreshToken, { ...options, DPoP: dpop }),
      ),
    );
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

  // private_key_jwt, one client per key type.
  for (const [kind, id] of [
    ['es256', CLIENTS.es256],
    ['ed25519', CLIENTS.ed25519],
  ]) {
    const client = { client_id: id };
    const auth = oauth.PrivateKeyJwt({ key: await importPrivate(keys[kind].private), kid: keys[kind].kid });
    const tokens = await codeFlow(`private_key_jwt (${kind})`, client, auth);
    const sentBody = lastBody();
    const header = joseHeader(sentBody.get('client_assertion'));
    const claims = joseClaims(sentBody.get('client_assertion'));
    check(tokens.token_type === 'bearer', 'a bearer token', tokens);
    check(typeof tokens.refresh_token === 'string', 'a refresh token', tokens);
    check(claims.aud === as.issuer, "the assertion's audience is the issuer", claims);
    pass(
      `private_key_jwt ${kind}: code exchange with an assertion (alg ${header.alg}, kid ${header.kid}, aud ${claims.aud}) -> ${tokens.token_type} token`,
    );
    const refreshed = await refresh(`private_key_jwt (${kind}) refresh`, client, auth, tokens.refresh_token);
    check(typeof refreshed.access_token === 'string', 'a refreshed token', refreshed);
    check(refreshed.refresh_token !== tokens.refresh_token, 'the refresh token rotated', refreshed);
    pass(`private_key_jwt ${kind}: refresh with a new assertion -> a new token, the refresh token rotated`);
  }

  // A key the client never registered signs an assertion for it.
  {
    const stranger = await dpopKeys('ES256');
    const client = { client_id: CLIENTS.es256 };
    const auth = oauth.PrivateKeyJwt({ key: stranger.privateKey, kid: keys.es256.kid });
    const { params, verifier } = await authorize(client);
    await refused('private_key_jwt with an unregistered key', ...badClient, async () =>
      oauth.processAuthorizationCodeResponse(
        as,
        client,
        await oauth.authorizationCodeGrantRequest(as, client, auth, params, REDIRECT, verifier, options),
      ),
    );
  }

  // client_secret_jwt: HS256 keyed by the registered secret.
  {
    const client = { client_id: CLIENTS.hs256 };
    const tokens = await codeFlow('client_secret_jwt', client, oauth.ClientSecretJwt(keys.secret));
    const header = joseHeader(lastBody().get('client_assertion'));
    check(header.alg === 'HS256', 'an HS256 assertion', header);
    check(tokens.token_type === 'bearer', 'a bearer token', tokens);
    pass(`client_secret_jwt: code exchange with an ${header.alg} assertion -> ${tokens.token_type} token`);
    const { params, verifier } = await authorize(client);
    await refused('client_secret_jwt with another secret', ...badClient, async () =>
      oauth.processAuthorizationCodeResponse(
        as,
        client,
        await oauth.authorizationCodeGrantRequest(
          as,
          client,
          oauth.ClientSecretJwt(`${keys.secret}-wrong`),
          params,
          REDIRECT,
          verifier,
          options,
        ),
      ),
    );
  }

  // DPoP with a public client, for each key type oauth4webapi signs with.
  for (const kind of ['ES256', 'Ed25519']) {
    const client = { client_id: CLIENTS.public };
    const auth = oauth.None();
    const keyPair = await dpopKeys(kind);
    const dpop = oauth.DPoP(client, keyPair);
    // The code is bound to the key too (dpop_jkt, RFC 9449 §10): the
    // thumbprint oauth4webapi computes must be the one the gate computes.
    const tokens = await codeFlow(`DPoP ${kind}`, client, auth, { dpop, bindCode: true });
    const proof = joseHeader(lastHeader('dpop'));
    check(proof.typ === 'dpop+jwt', 'a DPoP proof was sent', proof);
    check(tokens.token_type.toLowerCase() === 'dpop', 'token_type DPoP', tokens);
    check(typeof tokens.refresh_token === 'string', 'a refresh token', tokens);
    pass(
      `DPoP ${kind}: public client, code bound by dpop_jkt, exchange with a proof (alg ${proof.alg}) -> token_type ${await wireTokenType()}`,
    );

    const refreshed = await refresh(`DPoP ${kind} refresh`, client, auth, tokens.refresh_token, dpop);
    check(refreshed.token_type.toLowerCase() === 'dpop', 'token_type DPoP on refresh', refreshed);
    check(typeof refreshed.refresh_token === 'string', 'a rotated refresh token', refreshed);
    pass(`DPoP ${kind}: refresh with the same key -> token_type ${await wireTokenType()}, the refresh token rotated`);

    // The refresh token is bound to the key: another key, or none, fails.
    const other = oauth.DPoP(client, await dpopKeys(kind));
    await refused(`DPoP ${kind}: refresh with another key`, 400, 'invalid_dpop_proof', () =>
      refresh(`DPoP ${kind} refresh with another key`, client, auth, refreshed.refresh_token, other),
    );
    await refused(`DPoP ${kind}: refresh without a proof`, 400, 'invalid_dpop_proof', () =>
      refresh(`DPoP ${kind} refresh without a proof`, client, auth, refreshed.refresh_token),
    );
    const again = await refresh(`DPoP ${kind} refresh after the refusals`, client, auth, refreshed.refresh_token, dpop);
    check(again.token_type.toLowerCase() === 'dpop', 'token_type DPoP', again);
    pass(`DPoP ${kind}: the refusals left the refresh token to its key, which still refreshes`);

    // A code bound to this key, redeemed with another: refused.
    const { params, verifier } = await authorize(client, { dpopJkt: await dpop.calculateThumbprint() });
    await refused(`DPoP ${kind}: a code bound to one key, redeemed with another`, 400, 'invalid_dpop_proof', () =>
      nonceRetry(`DPoP ${kind} code with another key`, other, async () =>
        oauth.processAuthorizationCodeResponse(
          as,
          client,
          await oauth.authorizationCodeGrantRequest(as, client, auth, params, REDIRECT, verifier, {
            ...options,
            DPoP: other,
          }),
        ),
      ),
    );
  }

  // dpop_bound_access_tokens: no token without a proof.
  {
    const client = { client_id: CLIENTS.bound };
    const es256 = await importPrivate(keys.es256.private);
    const auth = () => oauth.PrivateKeyJwt({ key: es256, kid: keys.es256.kid });
    const { params, verifier } = await authorize(client);
    await refused('dpop_bound_access_tokens client without a proof', 400, 'invalid_dpop_proof', async () =>
      oauth.processAuthorizationCodeResponse(
        as,
        client,
        await oauth.authorizationCodeGrantRequest(as, client, auth(), params, REDIRECT, verifier, options),
      ),
    );
    const dpop = oauth.DPoP(client, await dpopKeys('ES256'));
    const tokens = await codeFlow('dpop_bound_access_tokens', client, auth(), { dpop });
    check(tokens.token_type.toLowerCase() === 'dpop', 'token_type DPoP', tokens);
    pass(`dpop_bound_access_tokens: private_key_jwt and a DPoP proof -> token_type ${await wireTokenType()}`);
  }

  const flags = [nonceMode && '--dpop-nonce', github && '--github'].filter(Boolean).join(' ');
  console.log(`${passed} checks passed${flags ? ` (${flags})` : ''}`);
}

/// The claims of a compact JWS.
function joseClaims(jws) {
  return JSON.parse(Buffer.from(jws.split('.')[1], 'base64url').toString());
}

// ----------------------------------------------------------------- main

const [command, ...args] = process.argv.slice(2);
try {
  if (command === 'setup' && args.length === 1) {
    await setup(args[0]);
  } else if (
    command === 'run' &&
    args.length >= 2 &&
    args.slice(2).every((flag) => ['--dpop-nonce', '--github'].includes(flag))
  ) {
    await run(args[0].replace(/\/$/, ''), args[1], {
      nonceMode: args.includes('--dpop-nonce'),
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
