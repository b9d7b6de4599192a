//! Instructions per code exchange, for `valgrind --tool=callgrind`: N
//! exchanges (`client_secret_post`, PKCE, redirect URI; memory store, no
//! lockout) whose requests are built outside `exchange_batch`, so that
//! only the gate is counted. Run it for two N and divide the difference
//! (BENCHMARKS.md, "Clients that prove possession"):
//!
//! ```sh
//! cargo bench --bench instructions --no-run
//! BIN=$(ls -t target/release/deps/instructions-* | grep -v '\.d$' | head -1)
//! for n in 2000 12000; do
//!   valgrind --tool=callgrind --toggle-collect='*exchange_batch*' "$BIN" $n
//! done
//! ```
//!
//! Without a number (as `cargo bench` runs it) it does 64 exchanges and
//! checks they were forwarded.

use std::hint::black_box;

use tokengate::{
    Client, TokenGateLayer, Verdict,
    testing::{TokenRequest, fixture, mint_code, pkce_pair},
};

const CB: &str = "https://app.example/cb";

#[inline(never)]
fn exchange_batch(layer: &TokenGateLayer, requests: Vec<http::Request<String>>) -> usize {
    let mut forwarded = 0;
    for request in requests {
        let verdict = futures_lite_block_on(layer.check(request));
        forwarded += usize::from(matches!(verdict, Verdict::Forwarded(_)));
    }
    black_box(forwarded)
}

/// One poll with a no-op waker: the memory store never makes it wait.
fn futures_lite_block_on<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(output) => output,
        std::task::Poll::Pending => panic!("the memory store answered later"),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|arg| arg.parse().ok())
        .unwrap_or(64);
    let client = Client::confidential("app")
        .with_secret("s3cret")
        .with_redirect_uri(CB);
    let (store, clock) = fixture([client]);
    let layer = TokenGateLayer::builder()
        .store(store)
        .clock(clock)
        .issuer("https://auth.example.com")
        .lockout(None)
        .build();
    let mut done = 0;
    while done < n {
        let batch = 64.min(n - done);
        let mut requests = Vec::with_capacity(batch);
        for _ in 0..batch {
            let (verifier, challenge) = pkce_pair();
            let code = mint_code(&layer, "app", CB, &challenge, "alice").await;
            let request = TokenRequest::authorization_code(&code)
                .redirect_uri(CB)
                .code_verifier(&verifier)
                .client_secret_post("app", "s3cret");
            requests.push(request.build());
        }
        assert_eq!(exchange_batch(&layer, requests), batch);
        done += batch;
    }
}
