// GitHub's own client library against the demo, as an application under
// test would point it at GitHub Enterprise Server: @octokit/oauth-methods
// and @octokit/request (versions pinned in package.json and the lock file),
// with baseUrl ISSUER/api/v3, from which Octokit derives ISSUER/login/oauth.
//
//   node octokit.mjs run ISSUER               the flows, /user, the OAuth-app API, GitHub's errors
//   node octokit.mjs unverified ISSUER        a demo started with --unverified-email
//   node octokit.mjs absolute ISSUER          a demo started with --error-uri-base https://docs.github.com
//
// Every check prints one line; the last line counts them. Any failure
// exits 1. tests/real_clients.rs runs both against the demo binary.

import {
  checkToken,
  createDeviceCode,
  deleteAuthorization,
  deleteToken,
  exchangeDeviceCode,
  exchangeWebFlowCode,
  getWebFlowAuthorizationUrl,
  refreshToken,
  resetToken,
} from "@octokit/oauth-methods";
import { request } from "@octokit/request";

const [mode, issuer] = process.argv.slice(2);
const clientId = "demo-client";
const clientSecret = "demo-secret";
const redirectUrl = "http://127.0.0.1:4567/callback";
const api = request.defaults({ baseUrl: `${issuer}/api/v3` });

let passed = 0;
function check(condition, what, detail = "") {
  if (!condition) {
    console.log(`FAILED: ${what} ${detail}`);
    process.exit(1);
  }
  passed += 1;
  console.log(`ok: ${what}`);
}

/// The error Octokit throws for `call`, or a failure if it succeeds.
async function refusal(call, what) {
  try {
    await call();
  } catch (error) {
    return error;
  }
  check(false, `${what}: refused`, "(it succeeded)");
}

/// GitHub's OAuth error as Octokit reports it: a RequestError whose response
/// is GitHub's 200 answer with `error`, and whose message names the error,
/// its description and its documentation link.
function githubError(error, name, what) {
  check(
    error?.name === "HttpError" && error.response?.status === 200,
    `${what}: Octokit throws its RequestError for GitHub's 200 error answer`,
    `${error?.name} ${error?.response?.status} ${error?.message}`,
  );
  check(
    error.response.data.error === name &&
      error.message.includes(`(${name}, `) &&
      typeof error.response.data.error_description === "string",
    `${what}: ${name}`,
    JSON.stringify(error.response?.data),
  );
  return error.response.data;
}

/// The web flow's first leg, as the user's browser: the authorization URL
/// Octokit builds, followed to the redirect that carries the code.
async function authorize(scopes = ["repo"]) {
  const { url } = getWebFlowAuthorizationUrl({
    clientType: "oauth-app",
    clientId,
    redirectUrl,
    scopes,
    state: "st4te",
    request: api,
  });
  check(
    url.startsWith(`${issuer}/login/oauth/authorize?`),
    "the authorization URL Octokit derives from baseUrl is the demo's",
    url,
  );
  const answer = await fetch(url, { redirect: "manual" });
  const location = new URL(answer.headers.get("location"));
  check(
    answer.status === 302 && location.searchParams.get("state") === "st4te",
    "the demo approves and redirects with the code and the state",
  );
  return location.searchParams.get("code");
}

/// The device page, as the person at a browser: the session cookie, the
/// user code typed in, then the decision on the confirmation page.
async function decideDevice(userCode, decision) {
  const page = `${issuer}/login/device`;
  const opened = await fetch(page);
  const cookie = opened.headers.get("set-cookie").split(";")[0];
  const headers = {
    cookie,
    origin: new URL(issuer).origin,
    "content-type": "application/x-www-form-urlencoded",
  };
  const typed = await fetch(page, {
    method: "POST",
    headers,
    body: new URLSearchParams({ user_code: userCode }).toString(),
  });
  const confirm = (await typed.text()).match(/name="confirm" value="([0-9a-f]+)"/)?.[1];
  check(confirm !== undefined, `the device page asks to confirm ${decision}`);
  const decided = await fetch(page, {
    method: "POST",
    headers,
    body: new URLSearchParams({ user_code: userCode, confirm, decision }).toString(),
  });
  check(decided.status === 200, `the device page takes the ${decision}`);
}

/// The web flow's second leg through Octokit, for a fresh code unless one
/// is given; `overrides` replace the demo client's values.
async function exchange(overrides = {}) {
  return exchangeWebFlowCode({
    clientType: "oauth-app",
    clientId,
    clientSecret,
    code: overrides.code ?? (await authorize()),
    redirectUrl,
    request: api,
    ...overrides,
  });
}

const sleep = (seconds) => new Promise((done) => setTimeout(done, seconds * 1000));

async function run() {
  // The web flow (an OAuth app's), and the user it signs in.
  const code = await authorize();
  const web = await exchange({ code });
  const token = web.authentication.token;
  check(/^gho_[0-9a-f]{40}$/.test(token), "the web flow gives a gho_ token", token.slice(0, 4));
  check(
    JSON.stringify(web.authentication.scopes) === '["repo"]',
    "with the scopes granted",
    JSON.stringify(web.authentication.scopes),
  );
  const user = await api("GET /user", { headers: { authorization: `token ${token}` } });
  check(
    user.status === 200 && user.data.login === "demo-user" && typeof user.data.id === "number",
    "GET /user answers the demo user",
    JSON.stringify(user.data).slice(0, 80),
  );
  check(user.headers["x-oauth-scopes"] === "repo", "with the token's scopes in X-OAuth-Scopes");
  const bearer = await api("GET /user", { headers: { authorization: `bearer ${token}` } });
  check(bearer.data.login === "demo-user", "GET /user takes a Bearer token too");
  const unknown = await refusal(
    () => api("GET /user", { headers: { authorization: "token gho_0000000000000000000000000000000000000000" } }),
    "GET /user with an unknown token",
  );
  check(
    unknown.status === 401 && unknown.response.data.message === "Bad credentials",
    "GET /user with an unknown token: 401 Bad credentials, as Octokit's RequestError",
    `${unknown.status} ${JSON.stringify(unknown.response?.data)}`,
  );

  // GitHub's token errors, as Octokit reports them.
  const replayed = await refusal(() => exchange({ code }), "a code redeemed twice");
  const bad = githubError(replayed, "bad_verification_code", "a code redeemed twice");
  check(
    bad.error_uri.endsWith("#bad-verification-code"),
    "bad_verification_code links GitHub's page",
    bad.error_uri,
  );
  const wrongSecret = await refusal(
    () => exchange({ clientSecret: "not-the-secret" }),
    "a wrong client secret",
  );
  githubError(wrongSecret, "incorrect_client_credentials", "a wrong client secret");
  const elsewhere = await refusal(
    () => exchange({ redirectUrl: "http://127.0.0.1:4567/elsewhere" }),
    "another redirect URL at the token endpoint",
  );
  githubError(elsewhere, "redirect_uri_mismatch", "another redirect URL at the token endpoint");

  // Expiring tokens (a GitHub App's user tokens): refresh, and a refresh
  // token used twice.
  const app = await exchange({ clientType: "github-app" });
  const { refreshToken: first, expiresAt, refreshTokenExpiresAt } = app.authentication;
  check(/^ghr_[0-9a-f]{64}$/.test(first), "an expiring token comes with a ghr_ refresh token", first.slice(0, 4));
  const hours = (Date.parse(expiresAt) - Date.now()) / 3_600_000;
  check(hours > 7.9 && hours <= 8.01, "that expires in 8 hours", expiresAt);
  const days = (Date.parse(refreshTokenExpiresAt) - Date.now()) / 86_400_000;
  check(days > 183.9 && days <= 184.01, "and a refresh token that lives 184 days (15897600 s), as GitHub's", refreshTokenExpiresAt);
  const refreshed = await refreshToken({ clientType: "github-app", clientId, clientSecret, refreshToken: first, request: api });
  check(
    refreshed.authentication.token !== app.authentication.token &&
      refreshed.authentication.refreshToken !== first,
    "refreshToken gives a new token and a new refresh token",
  );
  const after = await api("GET /user", { headers: { authorization: `token ${refreshed.authentication.token}` } });
  check(after.data.login === "demo-user", "the refreshed token reads /user");
  const replay = await refusal(
    () => refreshToken({ clientType: "github-app", clientId, clientSecret, refreshToken: first, request: api }),
    "a refresh token used twice",
  );
  githubError(replay, "bad_refresh_token", "a refresh token used twice");
  const revoked = await refusal(
    () => api("GET /user", { headers: { authorization: `token ${refreshed.authentication.token}` } }),
    "a token of the family the replay revoked",
  );
  check(revoked.status === 401, "the replay revoked the family: its newest token is dead at /user too");

  // The device flow: pending, approved, redeemed; denied; a made-up code.
  const device = await createDeviceCode({ clientType: "oauth-app", clientId, scopes: ["repo"], request: api });
  const { device_code: deviceCode, user_code: userCode, interval, verification_uri: verificationUri } = device.data;
  check(verificationUri === `${issuer}/login/device`, "createDeviceCode: the demo's verification page", verificationUri);
  check(/^[0-9a-f]{40}$/.test(deviceCode), "a device code of 40 hex characters, as GitHub's");
  const pending = await refusal(
    () => exchangeDeviceCode({ clientType: "oauth-app", clientId, code: deviceCode, request: api }),
    "a device code not yet approved",
  );
  githubError(pending, "authorization_pending", "a device code not yet approved");
  await decideDevice(userCode, "approve");
  await sleep(interval + 1);
  const approved = await exchangeDeviceCode({ clientType: "oauth-app", clientId, code: deviceCode, request: api });
  check(/^gho_/.test(approved.authentication.token), "exchangeDeviceCode: a token once approved");
  const deviceUser = await api("GET /user", { headers: { authorization: `token ${approved.authentication.token}` } });
  check(deviceUser.data.login === "demo-user", "the device's token reads /user");

  const refused = await createDeviceCode({ clientType: "oauth-app", clientId, scopes: [], request: api });
  await decideDevice(refused.data.user_code, "deny");
  const denied = await refusal(
    () => exchangeDeviceCode({ clientType: "oauth-app", clientId, code: refused.data.device_code, request: api }),
    "a denied device code",
  );
  githubError(denied, "access_denied", "a denied device code");
  const madeUp = await refusal(
    () => exchangeDeviceCode({ clientType: "oauth-app", clientId, code: "0".repeat(40), request: api }),
    "a device code never issued",
  );
  githubError(madeUp, "incorrect_device_code", "a device code never issued");
}

/// GitHub's OAuth-app endpoints: check, reset, delete a token, delete the
/// authorization; and the gate's 404 for credentials that do not match.
async function applications() {
  const app = { clientType: "oauth-app", clientId, clientSecret, request: api };
  const { token } = (await exchange()).authentication;
  const checked = await checkToken({ ...app, token });
  check(
    checked.status === 200 &&
      checked.data.token === token &&
      checked.data.app.client_id === clientId &&
      checked.data.user.login === "demo-user" &&
      JSON.stringify(checked.authentication.scopes) === '["repo"]',
    "checkToken: GitHub's authorization JSON for the token",
    JSON.stringify(checked.data).slice(0, 120),
  );
  const wrongSecret = await refusal(
    () => checkToken({ ...app, clientSecret: "not-the-secret", token }),
    "checkToken with a wrong client secret",
  );
  check(
    wrongSecret.status === 404 && wrongSecret.response.data.message === "Not Found",
    "checkToken with a wrong client secret: 404 Not Found, as GitHub answers",
    `${wrongSecret.status}`,
  );
  const unknown = await refusal(() => checkToken({ ...app, token: "gho_0000000000000000000000000000000000000000" }), "checkToken of an unknown token");
  check(unknown.status === 404, "checkToken of an unknown token: 404");

  const reset = await resetToken({ ...app, token });
  const fresh = reset.authentication.token;
  check(reset.status === 200 && fresh !== token && /^gho_/.test(fresh), "resetToken: a new token");
  const old = await refusal(() => api("GET /user", { headers: { authorization: `token ${token}` } }), "the token reset away");
  check(old.status === 401, "the token reset away is dead at /user");
  const user = await api("GET /user", { headers: { authorization: `token ${fresh}` } });
  check(user.data.login === "demo-user", "the new one reads /user");

  const deleted = await deleteToken({ ...app, token: fresh });
  check(deleted.status === 204, "deleteToken: 204");
  const gone = await refusal(() => checkToken({ ...app, token: fresh }), "checkToken of a deleted token");
  check(gone.status === 404, "a deleted token is gone: checkToken answers 404");

  // The whole authorization: its access and refresh tokens.
  const signedIn = await exchange({ clientType: "github-app" });
  const revoked = await deleteAuthorization({ ...app, token: signedIn.authentication.token });
  check(revoked.status === 204, "deleteAuthorization: 204");
  const afterGrant = await refusal(
    () => api("GET /user", { headers: { authorization: `token ${signedIn.authentication.token}` } }),
    "a token of a deleted authorization",
  );
  check(afterGrant.status === 401, "the authorization's access token is dead");
  const refreshAfter = await refusal(
    () => refreshToken({ clientType: "github-app", clientId, clientSecret, refreshToken: signedIn.authentication.refreshToken, request: api }),
    "the refresh token of a deleted authorization",
  );
  githubError(refreshAfter, "bad_refresh_token", "the refresh token of a deleted authorization");
}

/// A demo started with --error-uri-base https://docs.github.com: GitHub's
/// absolute documentation links, as its live answers carry.
async function absoluteUris() {
  const code = await authorize();
  await exchange({ code });
  const replayed = githubError(await refusal(() => exchange({ code }), "a code redeemed twice"), "bad_verification_code", "a code redeemed twice");
  check(
    replayed.error_uri ===
      "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#bad-verification-code",
    "bad_verification_code links docs.github.com",
    replayed.error_uri,
  );
  const app = await exchange({ clientType: "github-app" });
  const options = { clientType: "github-app", clientId, clientSecret, refreshToken: app.authentication.refreshToken, request: api };
  await refreshToken(options);
  const spent = githubError(await refusal(() => refreshToken(options), "a refresh token used twice"), "bad_refresh_token", "a refresh token used twice");
  check(
    spent.error_uri ===
      "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/#bad-refresh-token",
    "bad_refresh_token links docs.github.com",
    spent.error_uri,
  );
}

async function unverified() {
  const refused = await refusal(() => exchange(), "a user whose email is unverified");
  const answer = githubError(refused, "unverified_user_email", "a user whose email is unverified");
  check(answer.error_uri.endsWith("#unverified_user_email"), "unverified_user_email links GitHub's page", answer.error_uri);
}

try {
  if (mode === "run") {
    await run();
    await applications();
  } else if (mode === "unverified") {
    await unverified();
  } else if (mode === "absolute") {
    await absoluteUris();
  } else {
    console.log(`usage: node octokit.mjs run|unverified|absolute ISSUER`);
    process.exit(2);
  }
  console.log(`${passed} checks passed`);
} catch (error) {
  console.log(`FAILED: ${error?.stack ?? error}`);
  process.exit(1);
}
