//! Driving the demo server binary from the outside, over plain HTTP.

use std::{
    collections::HashMap,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::CHALLENGE;

pub const REDIRECT: &str = "http%3A%2F%2F127.0.0.1%3A4567%2Fcallback";

/// The example binary cargo built for this test run.
pub fn binary() -> PathBuf {
    example("server")
}

/// The example binary `name` (the demo `server`, the `gateway`, `soak`).
///
/// They are built once per test binary: `cargo test --test ..` does not
/// build examples, and a binary left by another run may be stale.
pub fn example(name: &str) -> PathBuf {
    static BUILD: std::sync::Once = std::sync::Once::new();
    BUILD.call_once(|| {
        let mut command = Command::new(env!("CARGO"));
        command.args([
            "build",
            "--example",
            "server",
            "--example",
            "gateway",
            "--example",
            "soak",
        ]);
        let status = command.status().unwrap();
        assert!(status.success(), "cannot build the examples");
    });
    let exe = std::env::current_exe().unwrap();
    let target = exe.parent().unwrap().parent().unwrap();
    target.join("examples").join(name)
}

pub struct Server {
    child: Child,
    pub addr: String,
    pub banner: Vec<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the demo server with `args` on a free port.
pub fn start(args: &[&str]) -> Server {
    spawn(&binary(), args)
}

/// Starts the example `exe` with `args` on a free port and waits, at most
/// 30 s, for its `listening on` line; the lines before it are its banner.
pub fn spawn(exe: &Path, args: &[&str]) -> Server {
    try_spawn(exe, args).unwrap_or_else(|why| panic!("{why}"))
}

/// [`spawn`], or why the example did not listen (it exited, say because
/// an `--addr` it was given is taken).
pub fn try_spawn(exe: &Path, args: &[&str]) -> Result<Server, String> {
    try_spawn_with(exe, args, |_| {})
}

/// [`try_spawn`], with the command changed by `configure` before it runs
/// (its environment, where its stderr goes).
pub fn try_spawn_with(
    exe: &Path,
    args: &[&str],
    configure: impl FnOnce(&mut Command),
) -> Result<Server, String> {
    let mut command = Command::new(exe);
    command
        .args(["--addr", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    configure(&mut command);
    let child = command.spawn().unwrap();
    // Owned by `Server` at once, so the process is killed on every path.
    let mut server = Server {
        child,
        addr: String::new(),
        banner: Vec::new(),
    };
    let stdout = server.child.stdout.take().unwrap();
    let (found, listening) = mpsc::channel();
    std::thread::spawn(move || {
        let mut banner = Vec::new();
        let mut lines = BufReader::new(stdout).lines();
        for line in lines.by_ref() {
            let Ok(line) = line else { break };
            if let Some(addr) = line.strip_prefix("listening on http://") {
                let _ = found.send((addr.to_owned(), banner));
                break;
            }
            banner.push(line);
        }
        // Keep draining stdout so the process never blocks on a full pipe.
        lines.for_each(drop);
    });
    match listening.recv_timeout(Duration::from_secs(30)) {
        Ok((addr, banner)) => {
            server.addr = addr;
            server.banner = banner;
        }
        Err(_) => {
            let status = server.child.try_wait().ok().flatten();
            return Err(format!(
                "{} did not listen ({status:?}): {args:?}",
                exe.display()
            ));
        }
    }
    Ok(server)
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    pub fn form(&self) -> HashMap<String, String> {
        form_urlencoded::parse(self.body.as_bytes())
            .into_owned()
            .collect()
    }
}

/// One HTTP/1.1 exchange over a fresh connection. `Host` names `addr`
/// unless `head` brings its own.
pub async fn send(addr: &str, head: &str, body: &str) -> Reply {
    send_from("127.0.0.1", addr, head, body).await
}

/// [`send`] over a connection from the local address `from` (any of
/// 127.0.0.0/8 on Linux): another peer, as the server sees it.
pub async fn send_from(from: &str, addr: &str, head: &str, body: &str) -> Reply {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(std::net::SocketAddr::new(from.parse().unwrap(), 0))
        .unwrap();
    let mut stream = socket.connect(addr.parse().unwrap()).await.unwrap();
    let host = if head.to_ascii_lowercase().contains("\r\nhost:") {
        String::new()
    } else {
        format!("\r\nHost: {addr}")
    };
    let request = format!(
        "{head}{host}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let raw = String::from_utf8(raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
        .collect();
    Reply {
        status,
        headers,
        body: body.to_owned(),
    }
}

pub async fn token(addr: &str, extra_headers: &str, body: &str) -> Reply {
    let mut head = "POST /login/oauth/access_token HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded".to_owned();
    if !extra_headers.is_empty() {
        head = format!("{head}\r\n{extra_headers}");
    }
    send(addr, &head, body).await
}

/// Runs the authorize endpoint and returns the code from its redirect.
pub async fn authorize(addr: &str, client_id: &str) -> String {
    let reply = send(
        addr,
        &format!(
            "GET /login/oauth/authorize?response_type=code&client_id={client_id}&redirect_uri={REDIRECT}&state=st&scope=repo&code_challenge={CHALLENGE}&code_challenge_method=S256 HTTP/1.1"
        ),
        "",
    )
    .await;
    assert_eq!(reply.status, 302, "{}", reply.body);
    let location = &reply.headers["location"];
    assert!(
        location.starts_with("http://127.0.0.1:4567/callback?code="),
        "{location}"
    );
    let query = location.split_once('?').unwrap().1;
    let params: HashMap<String, String> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    assert_eq!(params["state"], "st");
    params["code"].clone()
}

pub fn demo_exchange(code: &str) -> String {
    format!(
        "grant_type=authorization_code&client_id=demo-client&client_secret=demo-secret&code={code}&redirect_uri={REDIRECT}&code_verifier={}",
        super::VERIFIER
    )
}

pub async fn form_post(addr: &str, path: &str, extra_headers: &str, body: &str) -> Reply {
    let mut head =
        format!("POST {path} HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded");
    if !extra_headers.is_empty() {
        head = format!("{head}\r\n{extra_headers}");
    }
    send(addr, &head, body).await
}

/// The demo's revocation endpoint (RFC 7009).
pub const REVOKE: &str = "/login/oauth/revoke";
/// The demo's introspection endpoint (RFC 7662).
pub const INTROSPECT: &str = "/login/oauth/introspect";

/// `POST /login/oauth/revoke` of `token` by the client `id` with `secret`
/// (Basic), with `extra` form fields (`&token_type_hint=..`).
pub async fn revoke(addr: &str, id: &str, secret: &str, token: &str, extra: &str) -> Reply {
    let auth = format!("Authorization: {}", super::basic(id, secret));
    form_post(addr, REVOKE, &auth, &format!("token={token}{extra}")).await
}

/// `POST /login/oauth/introspect` of `token` by the client `id` with
/// `secret` (Basic).
pub async fn introspect(addr: &str, id: &str, secret: &str, token: &str) -> Reply {
    let auth = format!("Authorization: {}", super::basic(id, secret));
    form_post(addr, INTROSPECT, &auth, &format!("token={token}")).await
}

/// A refresh grant of `token` by the client `id` with `secret` in the body.
pub fn refresh_body(id: &str, secret: &str, token: &str) -> String {
    format!("grant_type=refresh_token&refresh_token={token}&client_id={id}&client_secret={secret}")
}
