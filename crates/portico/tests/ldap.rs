//! Single sign-on against a real LDAP directory (Debian's slapd, a throwaway database per
//! test): people sign in with their directory name and password, their accounts are made on
//! first sign-in, and directory groups decide what they may open.

use portico_testkit::directory::{Directory, SERVICE_PASSWORD};
use portico_testkit::{fixtures_dir, AppConfig, Portico, PorticoConfig, Visitor};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_portico");

/// An echo app open to the `analysts` group, behind a Portico that knows `directory`.
async fn portico(directory: &Directory, ldap_extra: &str, auth: &str) -> Portico {
    let config = PorticoConfig {
        sections: format!("[auth]\n{auth}\n{}", directory.config("corp", ldap_extra)),
        env: vec![("PORTICO_LDAP_CORP_PASSWORD".into(), SERVICE_PASSWORD.into())],
        ..PorticoConfig::default()
    }
    .with_app(
        AppConfig::new("sales", fixtures_dir().join("echo"))
            .with("access = { groups = [\"analysts\"] }"),
    );
    Portico::start(BIN, config).await
}

fn people(directory: &Directory) {
    directory.add_person(
        "ada",
        "Ada Lovelace",
        "ada@example.com",
        "engine-notes-1843",
    );
    directory.add_person("bob", "Bob Babbage", "bob@example.com", "difference-1822");
    directory.add_group("analysts", &["ada"]);
}

async fn groups_seen_by_the_app(v: &Visitor) -> (u16, String) {
    let landing = v.open(&format!("{}/apps/sales/", v.portal())).await;
    if landing.status != 200 {
        return (landing.status.as_u16(), String::new());
    }
    let seen: Value = serde_json::from_str(&landing.body).unwrap();
    let groups = seen["headers"]["x-forwarded-groups"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    (200, groups)
}

#[tokio::test(flavor = "multi_thread")]
async fn directory_people_sign_in_and_directory_groups_decide_access() {
    let directory = Directory::start().await;
    people(&directory);
    let portico = portico(&directory, "", "").await;

    // The sign-in page takes a user name when a directory is configured.
    let ada = Visitor::new(&portico, &["sales"]);
    let page = ada.page("/_portico/sign-in").await;
    assert!(page.contains("E-mail or user name"), "{page}");

    let wrong = ada.submit_sign_in("ada", "not-her-password", "/").await;
    assert_eq!(wrong.status(), 401);
    let empty = ada.submit_sign_in("ada", "", "/").await;
    assert_eq!(empty.status(), 401, "an empty password never binds");
    let unknown = ada.submit_sign_in("nobody", "whatever-it-is", "/").await;
    assert_eq!(unknown.status(), 401);

    ada.sign_in("ada", "engine-notes-1843").await;
    let (status, groups) = groups_seen_by_the_app(&ada).await;
    assert_eq!((status, groups.as_str()), (200, "analysts"));
    let users: Value =
        serde_json::from_slice(&portico.cli(&["users", "list", "--json"]).stdout).unwrap();
    let made = users
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["email"] == "ada@example.com")
        .expect("an account made at first sign-in");
    assert_eq!(made["name"], "Ada Lovelace");

    // Bob is in the directory but not in the group: signed in, refused the app.
    let bob = Visitor::new(&portico, &["sales"]);
    bob.sign_in("bob@example.com", "difference-1822").await;
    assert_eq!(groups_seen_by_the_app(&bob).await.0, 403);

    // Taken out of the group in the directory, Ada loses access at her next sign-in.
    directory.remove_from_group("analysts", "ada");
    let again = Visitor::new(&portico, &["sales"]);
    again.sign_in("ada", "engine-notes-1843").await;
    assert_eq!(groups_seen_by_the_app(&again).await.0, 403);
    let audit = String::from_utf8_lossy(&portico.cli(&["audit", "--json"]).stdout).into_owned();
    assert!(audit.contains("group.sync"), "{audit}");

    // The directory manages the password: Portico offers no reset link for it.
    let reset = portico.cli(&["users", "reset-password", "--link", "ada@example.com"]);
    assert!(!reset.status.success());
    assert!(String::from_utf8_lossy(&reset.stderr).contains("signs in through ldap:corp"));

    // Portico's own administrator still signs in with a local password.
    portico.add_user("root@example.com", "keeper-of-the-keys-7", &[]);
    let root = Visitor::new(&portico, &[]);
    root.sign_in("root@example.com", "keeper-of-the-keys-7")
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn groups_by_search_mfa_still_applies_and_existing_accounts_are_not_taken_over() {
    let directory = Directory::start().await;
    people(&directory);
    directory.add_person("carol", "Carol", "carol@example.com", "carol-directory-pw");
    let portico = portico(
        &directory,
        "groups = \"search\"\ngroup_base = \"ou=groups,dc=example,dc=com\"",
        "require_mfa = \"everyone\"",
    )
    .await;
    // A local account with Carol's address exists already: the directory may not claim it.
    portico.add_user("carol@example.com", "a-local-password-42", &[]);
    let carol = Visitor::new(&portico, &[]);
    let refused = carol
        .submit_sign_in("carol", "carol-directory-pw", "/")
        .await;
    assert_eq!(refused.status(), 503);
    assert!(refused
        .text()
        .await
        .unwrap()
        .contains("not linked to this sign-in method"));

    // MFA is required of everyone, directory accounts included.
    let ada = Visitor::new(&portico, &["sales"]);
    let half = ada.submit_sign_in("ada", "engine-notes-1843", "/").await;
    assert_eq!(half.status(), 303);
    assert_eq!(half.headers()["location"], "/_portico/sign-in/verify");
    let page = ada.page("/_portico/sign-in/verify").await;
    assert!(page.contains("Set up two-step verification"), "{page}");
    let users =
        String::from_utf8_lossy(&portico.cli(&["groups", "list", "--json"]).stdout).into_owned();
    assert!(users.contains("analysts"), "found by group search: {users}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_directory_gets_a_friendly_answer_and_the_log_says_why() {
    let directory = Directory::start().await;
    let closed = portico_testkit::free_port();
    let config = PorticoConfig {
        sections: format!(
            "[[auth.ldap]]\nid = \"corp\"\nurl = \"ldap://127.0.0.1:{closed}\"\nuser_base = \"ou=people,dc=example,dc=com\"\ntimeout_secs = 3\n"
        ),
        ..PorticoConfig::default()
    };
    drop(directory);
    let portico = Portico::start(BIN, config).await;
    let v = Visitor::new(&portico, &[]);
    let answer = v.submit_sign_in("ada", "engine-notes-1843", "/").await;
    assert_eq!(answer.status(), 503);
    let page = answer.text().await.unwrap();
    assert!(page.contains("Sign-in is unavailable right now"), "{page}");
    assert!(
        !page.contains("127.0.0.1"),
        "no internals on the page: {page}"
    );
    let log = portico.log();
    assert!(
        log.contains("cannot reach the directory ldap://127.0.0.1"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ldaps_and_starttls_check_the_directorys_certificate() {
    let directory = Directory::start_with_tls().await;
    people(&directory);
    let (tls_port, cert) = directory.tls.clone().unwrap();
    let with = |url: String, extra: &str, trusted: bool| {
        let mut env = vec![("PORTICO_LDAP_CORP_PASSWORD".into(), SERVICE_PASSWORD.into())];
        if trusted {
            env.push(("SSL_CERT_FILE".into(), cert.to_string_lossy().into_owned()));
        }
        PorticoConfig {
            sections: format!(
                "[[auth.ldap]]\nid = \"corp\"\nurl = \"{url}\"\nbind_dn = \"{}\"\nuser_base = \"ou=people,dc=example,dc=com\"\ntimeout_secs = 5\n{extra}\n",
                portico_testkit::directory::SERVICE_DN
            ),
            env,
            ..PorticoConfig::default()
        }
    };
    let ldaps = format!("ldaps://127.0.0.1:{tls_port}");
    let starttls = format!("ldap://127.0.0.1:{}", directory.port);
    for (url, extra) in [(ldaps.clone(), ""), (starttls, "starttls = true")] {
        let portico = Portico::start(BIN, with(url.clone(), extra, true)).await;
        let ada = Visitor::new(&portico, &[]);
        let answer = ada.submit_sign_in("ada", "engine-notes-1843", "/").await;
        assert_eq!(answer.status(), 303, "{url} {extra}: {}", portico.log());
    }

    // A certificate nobody vouched for: no sign-in, and the log says it is the certificate.
    let portico = Portico::start(BIN, with(ldaps, "", false)).await;
    let ada = Visitor::new(&portico, &[]);
    let answer = ada.submit_sign_in("ada", "engine-notes-1843", "/").await;
    assert_eq!(answer.status(), 503);
    let log = portico.log();
    assert!(log.to_lowercase().contains("certificate"), "{log}");
}
