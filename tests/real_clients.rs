//! A real OAuth client proves possession against the demo server:
//! [oauth4webapi](https://github.com/panva/oauth4webapi) (the JavaScript
//! client certified by the OpenID Foundation; its exact version is pinned in
//! `tests/js/package.json` and `package-lock.json`) runs
//! `tests/js/possession.mjs` on Node against the demo binary. The script
//! drives oauth4webapi's own functions: RFC 8414 discovery, the
//! authorization-code flow with PKCE, `private_key_jwt` with ES256 and
//! Ed25519 keys made by WebCrypto, `client_secret_jwt`, and DPoP (a public
//! client's code bound by `dpop_jkt`, refreshes with the same key, another
//! key and none; a `dpop_bound_access_tokens` client), and, with
//! `--dpop-nonce`, `use_dpop_nonce` answered and retried.
//!
//! `tests/js/lifecycle.mjs` drives the token lifecycle the same way:
//! discovery of the revocation and introspection endpoints,
//! `revocationRequest` / `processRevocationResponse` for access and refresh
//! tokens, `introspectionRequest` / `processIntrospectionResponse` by a
//! `client_secret_basic` and a `private_key_jwt` resource server (clients
//! file `"introspect": true`), `refreshTokenGrantRequest` retried within
//! `--refresh-reuse` (served) or without it (a replay), and the refusals as
//! oauth4webapi's error types. It runs in the RFC 6749 dialect with and
//! without a reuse window, and in GitHub's with one.
//!
//! `tests/js/octokit.mjs` is GitHub's own client library against the demo,
//! as an application's tests would point it at GitHub Enterprise Server:
//! `@octokit/oauth-methods` and `@octokit/request` with `baseUrl`
//! `ISSUER/api/v3` (from which Octokit derives `ISSUER/login/oauth`). It
//! runs the web flow, a GitHub App's expiring tokens and `refreshToken`,
//! the device flow with the person's approval and denial on the device
//! page, `GET /user`, the OAuth-app API (`checkToken`, `resetToken`,
//! `deleteToken`, `deleteAuthorization`), and GitHub's errors as Octokit
//! reports them
//! (`bad_verification_code`, `incorrect_client_credentials`,
//! `redirect_uri_mismatch`, `bad_refresh_token`, `authorization_pending`,
//! `access_denied`, `incorrect_device_code`, `unverified_user_email`, and
//! `401 Bad credentials` at `/user`).
//!
//! Ignored by the plain `cargo test`, which must not need Node: `.ci/run`
//! runs `cargo test --test real_clients -- --ignored`, and there a missing
//! `node` or `npm` fails the test. `tests/js/node_modules` is installed by
//! `npm ci` (from the lock file) when it is missing.
//!
//! The demo runs twice: in the RFC 6749 dialect without nonces, and in
//! GitHub's dialect (its default) with `--dpop-nonce`. There oauth4webapi
//! reads GitHub's 200-status errors as malformed token responses, as the
//! oauth2 crate does (tests/oauth2_client.rs); DPoP's errors are 400 in
//! both dialects, so it recognises them in both.

mod common;

use std::{
    io::Read,
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    sync::Once,
    time::{Duration, Instant},
};

use common::demo::{Server, binary, try_spawn};

/// The script's directory, `tests/js`.
fn js() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("js")
}

/// Node 20 or later and npm, or the test fails saying so: `.ci/run` must
/// not pass without having run the real client.
fn require_node() {
    let version = Command::new("node")
        .arg("--version")
        .output()
        .unwrap_or_else(|e| {
            panic!("node is needed (Node 20 or later, and npm): cannot run `node`: {e}")
        });
    let version = String::from_utf8_lossy(&version.stdout).trim().to_owned();
    let major: u32 = version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|major| major.parse().ok())
        .unwrap_or_else(|| panic!("node --version said {version:?}"));
    assert!(
        major >= 20,
        "node {version}: oauth4webapi needs Node 20 or later"
    );
    let npm = Command::new("npm").arg("--version").output();
    assert!(
        npm.as_ref().is_ok_and(|out| out.status.success()),
        "npm is needed to install tests/js: {npm:?}"
    );
}

/// Installs `tests/js/node_modules` from the lock file once per run, if it
/// is missing.
fn install() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        require_node();
        let modules = js().join("node_modules");
        let installed = ["oauth4webapi", "@octokit/oauth-methods", "@octokit/request"]
            .iter()
            .all(|package| modules.join(package).is_dir());
        if installed {
            return;
        }
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund", "--prefix"])
            .arg(js())
            .status()
            .expect("npm ci");
        assert!(status.success(), "npm ci --prefix tests/js failed");
    });
}

/// `node tests/js/SCRIPT ARGS`, killed after two minutes; its output is
/// printed (the test's log shows every check).
fn node(script: &str, args: &[&str]) -> Output {
    let mut child = Command::new("node")
        .arg(js().join(script))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node");
    // Read while it runs, so a full pipe cannot stall it.
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut text = Vec::new();
        stdout.read_to_end(&mut text).map(|_| text)
    });
    let err = std::thread::spawn(move || {
        let mut text = Vec::new();
        stderr.read_to_end(&mut text).map(|_| text)
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("node {script} {args:?} ran for more than two minutes");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let output = Output {
        status,
        stdout: out.join().unwrap().unwrap(),
        stderr: err.join().unwrap().unwrap(),
    };
    print!("{}", String::from_utf8_lossy(&output.stdout));
    eprint!("{}", String::from_utf8_lossy(&output.stderr));
    output
}

/// The demo on a port picked here, with `--issuer` naming that very
/// address: the client builds the assertions' audience and the proofs'
/// `htu` from the URL it uses, and the gate from the issuer. A port taken
/// between the pick and the start is picked again.
fn start_demo(clients: &str, extra: &[&str]) -> (Server, String) {
    start_demo_with(&["--clients", clients], extra)
}

/// [`start_demo`] with `args` instead of a clients file (none: the demo's
/// own `demo-client`).
fn start_demo_with(args: &[&str], extra: &[&str]) -> (Server, String) {
    let mut last = String::new();
    for _ in 0..5 {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let addr = format!("127.0.0.1:{port}");
        let issuer = format!("http://{addr}");
        let mut all = vec!["--addr", addr.as_str(), "--issuer", issuer.as_str()];
        all.extend_from_slice(args);
        all.extend_from_slice(extra);
        match try_spawn(&binary(), &all) {
            Ok(server) => {
                assert_eq!(server.addr, addr, "the demo listens where it was told");
                return (server, issuer);
            }
            Err(why) => last = why,
        }
    }
    panic!("the demo did not start: {last}");
}

/// `setup` writes the clients file (the keys the run will sign with), the
/// demo loads it, `run` drives it; every check must pass.
fn possession(name: &str, demo_flags: &[&str], run_flags: &[&str]) -> String {
    drive("possession.mjs", 5, name, demo_flags, run_flags)
}

/// `script`'s `setup` writes a clients file of `clients` clients, the demo
/// (with `demo_flags`) loads it, `run` (with `run_flags`) drives it; every
/// check must pass. Its output.
fn drive(
    script: &str,
    clients: usize,
    name: &str,
    demo_flags: &[&str],
    run_flags: &[&str],
) -> String {
    install();
    let dir = std::env::temp_dir().join(format!("tokengate-js-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let clients_file = dir.join("clients.json");
    let clients_file = clients_file.to_str().unwrap();
    let setup = node(script, &["setup", clients_file]);
    assert!(setup.status.success(), "{script} setup failed");
    let (server, issuer) = start_demo(clients_file, demo_flags);
    let loaded = format!("loaded {clients} client(s)");
    assert!(
        server.banner.iter().any(|line| line.contains(&loaded)),
        "{:?}",
        server.banner
    );
    let mut args = vec!["run", issuer.as_str(), clients_file];
    args.extend_from_slice(run_flags);
    let run = node(script, &args);
    drop(server);
    std::fs::remove_dir_all(&dir).unwrap();
    passed(script, &run)
}

/// A script's output, once it exited with success and counted its checks
/// passed.
fn passed(script: &str, run: &Output) -> String {
    let stdout = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(
        run.status.success(),
        "{script} against the demo failed ({}):\n{stdout}\n{}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(stdout.contains("checks passed"), "{stdout}");
    stdout
}

#[test]
#[ignore = "needs Node 20+ and npm; .ci/run runs it"]
fn oauth4webapi_signs_and_proves_possession_against_the_demo() {
    let out = possession("plain", &["--dialect", "rfc6749"], &[]);
    for line in [
        "private_key_jwt es256: code exchange",
        "private_key_jwt ed25519: code exchange",
        "client_secret_jwt: code exchange with an HS256 assertion",
        "-> token_type DPoP",
        "refresh with another key: refused 400 invalid_dpop_proof",
        "dpop_bound_access_tokens: private_key_jwt and a DPoP proof -> token_type DPoP",
    ] {
        assert!(out.contains(line), "{line:?} missing:\n{out}");
    }
    // No nonce was asked for.
    assert!(!out.contains("use_dpop_nonce"), "{out}");
}

#[test]
#[ignore = "needs Node 20+ and npm; .ci/run runs it"]
fn oauth4webapi_retries_with_the_dpop_nonce_the_demo_demands() {
    let out = possession("nonce", &["--dpop-nonce"], &["--dpop-nonce", "--github"]);
    assert!(
        out.contains("DPoP ES256: use_dpop_nonce (isDPoPNonceError) with a DPoP-Nonce header"),
        "{out}"
    );
    assert!(
        out.contains("DPoP Ed25519: use_dpop_nonce (isDPoPNonceError)"),
        "{out}"
    );
    assert!(out.contains("-> token_type DPoP"), "{out}");
}

/// Lines every lifecycle run prints, whatever the dialect or window.
const LIFECYCLE: [&str; 9] = [
    "discovery: ",
    "introspection (client_secret_basic): the access token is active, Bearer",
    "introspection (private_key_jwt, ES256): the same answer",
    "introspection: the refresh token is active, token_type refresh_token",
    "revocationRequest of an access token (hint access_token): processRevocationResponse, then {\"active\":false}",
    "revocationRequest of a refresh token (hint refresh_token): the family and its access tokens are inactive",
    "introspection by a client not registered to introspect: refused 403 unauthorized_client (ResponseBodyError)",
    "revocation with a wrong client secret: refused 401 invalid_client",
    "revocation of a kind of token nobody here revokes: refused 400 unsupported_token_type (ResponseBodyError)",
];

#[test]
#[ignore = "needs Node 20+ and npm; .ci/run runs it"]
fn oauth4webapi_revokes_introspects_and_retries_a_refresh_within_the_reuse_window() {
    let out = drive(
        "lifecycle.mjs",
        4,
        "lifecycle-reuse",
        &["--dialect", "rfc6749", "--refresh-reuse", "60"],
        &["--refresh-reuse"],
    );
    for line in LIFECYCLE.iter().chain(&[
        "a refresh retried within --refresh-reuse: new tokens in the same family, not a replay",
        "past 3 reuses, a replay: refused 400 invalid_grant (ResponseBodyError)",
        "a revoked refresh token at the token endpoint: refused 400 invalid_grant (ResponseBodyError)",
    ]) {
        assert!(out.contains(line), "{line:?} missing:\n{out}");
    }
}

#[test]
#[ignore = "needs Node 20+ and npm; .ci/run runs it"]
fn oauth4webapi_without_a_reuse_window_sees_a_retry_refused_as_a_replay() {
    let out = drive(
        "lifecycle.mjs",
        4,
        "lifecycle-replay",
        &["--dialect", "rfc6749"],
        &[],
    );
    for line in LIFECYCLE.iter().chain(&[
        "a refresh retried without a reuse window: a replay: refused 400 invalid_grant (ResponseBodyError)",
    ]) {
        assert!(out.contains(line), "{line:?} missing:\n{out}");
    }
    assert!(!out.contains("within --refresh-reuse"), "{out}");
}

/// GitHub's dialect: the token endpoint's refusals are 200s there (read by
/// oauth4webapi as malformed token responses), the lifecycle endpoints'
/// keep their RFC status.
#[test]
#[ignore = "needs Node 20+ and npm; .ci/run runs it"]
fn oauth4webapi_drives_the_lifecycle_in_the_github_dialect() {
    let out = drive(
        "lifecycle.mjs",
        4,
        "lifecycle-github",
        &["--refresh-reuse", "60"],
        &["--refresh-reuse", "--github"],
    );
    for line in LIFECYCLE.iter().chain(&[
        "a refresh retried within --refresh-reuse: new tokens in the same family, not a replay",
        "past 3 reuses, a replay: refused 200 bad_refresh_token (OperationProcessingError",
    ]) {
        assert!(out.contains(line), "{line:?} missing:\n{out}");
    }
}

/// `node tests/js/octokit.mjs MODE ISSUER` against the demo (its own
/// `demo-client`, GitHub's dialect) started with `flags`; its output.
fn octokit(mode: &str, flags: &[&str]) -> String {
    install();
    let (server, issuer) = start_demo_with(&[], flags);
    let run = node("octokit.mjs", &[mode, &issuer]);
    drop(server);
    passed("octokit.mjs", &run)
}

#[test]
#[ignore = "needs Node 20+ and npm; .ci/run runs it"]
fn octokit_signs_in_refreshes_and_reads_the_user_as_on_github() {
    let out = octokit("run", &[]);
    for line in [
        "ok: the authorization URL Octokit derives from baseUrl is the demo's",
        "ok: GET /user answers the demo user",
        "ok: GET /user with an unknown token: 401 Bad credentials, as Octokit's RequestError",
        "ok: a code redeemed twice: bad_verification_code",
        "ok: a wrong client secret: incorrect_client_credentials",
        "ok: another redirect URL at the token endpoint: redirect_uri_mismatch",
        "ok: refreshToken gives a new token and a new refresh token",
        "ok: a refresh token used twice: bad_refresh_token",
        "ok: an expiring token comes with a ghr_ refresh token",
        "ok: and a refresh token that lives 184 days (15897600 s), as GitHub's",
        "ok: a device code of 40 hex characters, as GitHub's",
        "ok: a device code not yet approved: authorization_pending",
        "ok: exchangeDeviceCode: a token once approved",
        "ok: a denied device code: access_denied",
        "ok: a device code never issued: incorrect_device_code",
        "ok: checkToken: GitHub's authorization JSON for the token",
        "ok: checkToken with a wrong client secret: 404 Not Found, as GitHub answers",
        "ok: resetToken: a new token",
        "ok: deleteToken: 204",
        "ok: deleteAuthorization: 204",
        "ok: the refresh token of a deleted authorization: bad_refresh_token",
    ] {
        assert!(out.contains(line), "{line:?} missing:\n{out}");
    }
}

#[test]
#[ignore = "needs Node 20+ and npm; .ci/run runs it"]
fn octokit_reports_an_unverified_email_as_github_does() {
    let out = octokit("unverified", &["--unverified-email"]);
    assert!(
        out.contains("ok: a user whose email is unverified: unverified_user_email"),
        "{out}"
    );
}

#[test]
#[ignore = "needs Node 20+ and npm; .ci/run runs it"]
fn octokit_sees_githubs_absolute_documentation_links() {
    let out = octokit("absolute", &["--error-uri-base", "https://docs.github.com"]);
    for line in [
        "ok: bad_verification_code links docs.github.com",
        "ok: bad_refresh_token links docs.github.com",
    ] {
        assert!(out.contains(line), "{line:?} missing:\n{out}");
    }
}
