//! What sign-in costs each proxied request: looking up the session cookie in memory, and
//! fetching the (cached) identity assertion. Run: `cargo bench -p portico-identity`.

use criterion::{criterion_group, criterion_main, Criterion};
use portico_core::User;
use portico_identity::{Accounts, AssertionSigner, NewUser, SessionPolicy, Sessions};
use portico_store::Store;
use std::hint::black_box;
use std::time::Duration;

fn request_identity(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (sessions, cookie, signer) = runtime.block_on(async {
        let store = Store::open(dir.path()).await.unwrap();
        let accounts = Accounts::new(store.clone());
        let new = NewUser {
            email: "ada@example.com",
            display_name: None,
            password: None,
            admin: false,
        };
        accounts.add_user("bench", new).await.unwrap();
        let policy = SessionPolicy {
            idle_timeout: Duration::from_secs(3600),
            lifetime: Duration::from_secs(86400),
        };
        let sessions = Sessions::load(store.clone(), policy).await.unwrap();
        // A realistic cache: ten thousand other sessions besides the one looked up.
        let ada = store
            .user_by_email("ada@example.com")
            .await
            .unwrap()
            .unwrap();
        for _ in 0..10_000 {
            sessions.create(&ada, "localhost:8080", None).await.unwrap();
        }
        let cookie = sessions
            .create(&ada, "localhost:8080", None)
            .await
            .unwrap()
            .cookie_value;
        let signer = AssertionSigner::load(
            &store,
            &portico_identity::SecretBox::from_key([3; 32]),
            "http://localhost:8080/",
        )
        .await
        .unwrap();
        (sessions, cookie, signer)
    });
    let user = User {
        id: 1,
        email: "ada@example.com".into(),
        display_name: "Ada".into(),
        groups: vec!["sales".into()],
        admin: false,
    };

    c.bench_function("session lookup (valid cookie, 10k sessions)", |b| {
        b.iter(|| black_box(sessions.lookup(black_box(&cookie), "localhost:8080")))
    });
    let forged = "0".repeat(64);
    c.bench_function("session lookup (unknown cookie)", |b| {
        b.iter(|| black_box(sessions.lookup(black_box(&forged), "localhost:8080")))
    });
    c.bench_function("identity assertion (cached)", |b| {
        b.iter(|| black_box(signer.assertion(&user, "sales")))
    });
    // A new app name each time defeats the cache: the cost of signing one.
    let mut n = 0u64;
    c.bench_function("identity assertion (signing a new one)", |b| {
        b.iter(|| {
            n += 1;
            black_box(signer.assertion(&user, &format!("app{n}")))
        })
    });
}

criterion_group!(benches, request_identity);
criterion_main!(benches);
