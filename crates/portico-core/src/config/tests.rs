use super::*;
use std::fs;

/// A folder with an `app` subfolder, and the path of a config file inside it.
fn workspace() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("app")).unwrap();
    let path = dir.path().join("portico.toml");
    (dir, path)
}

fn errors(text: &str) -> String {
    let (_dir, path) = workspace();
    Config::parse(&path, text)
        .expect_err("config should be refused")
        .to_string()
}

#[test]
fn a_minimal_config_gets_defaults() {
    let (dir, path) = workspace();
    let config = Config::parse(&path, "[[apps]]\nname = \"sales\"\nsource = \"app\"\n").unwrap();
    assert_eq!(config.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(config.server.domain, "localhost");
    assert_eq!(config.apps[0].title, "sales");
    assert_eq!(
        config.apps[0].source,
        std::path::absolute(dir.path().join("app")).unwrap()
    );
    assert_eq!(config.build.cache_dir, config.server.data_dir.join("envs"));
}

#[test]
fn unknown_key_names_the_file_line_key_and_fix() {
    let message = errors("[server]\nlisten = \"127.0.0.1:8080\"\ncolour = \"blue\"\n");
    assert!(message.contains("portico.toml"), "{message}");
    assert!(message.contains("line 3"), "{message}");
    assert!(message.contains("unknown field `colour`"), "{message}");
    assert!(message.contains("Fix: remove the key"), "{message}");
}

#[test]
fn duplicate_app_names_are_refused() {
    let message = errors(
        "[[apps]]\nname = \"sales\"\nsource = \"app\"\n[[apps]]\nname = \"sales\"\nsource = \"app\"\n",
    );
    assert!(
        message.contains("apps[1].name = \"sales\" is already the name of apps[0]"),
        "{message}"
    );
}

#[test]
fn app_name_must_be_a_dns_label_and_a_fix_is_suggested() {
    let message = errors("[[apps]]\nname = \"Sales Overview\"\nsource = \"app\"\n");
    assert!(
        message.contains("apps[0].name = \"Sales Overview\" is not a DNS label"),
        "{message}"
    );
    assert!(message.contains("e.g. \"sales-overview\""), "{message}");
}

#[test]
fn missing_app_folder_is_named() {
    let message = errors("[[apps]]\nname = \"sales\"\nsource = \"nowhere\"\n");
    assert!(
        message.contains("apps[0].source = \"nowhere\""),
        "{message}"
    );
    assert!(message.contains("does not exist"), "{message}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let message = errors(
        "[server]\nlisten = \"localhost\"\n[[apps]]\nname = \"-x\"\nsource = \"nowhere\"\nenv = { PORT = \"1\" }\n",
    );
    assert!(message.contains("server.listen"), "{message}");
    assert!(message.contains("apps[0].name"), "{message}");
    assert!(message.contains("apps[0].source"), "{message}");
    assert!(
        message.contains("apps[0].env.PORT is set by Portico"),
        "{message}"
    );
    assert_eq!(message.lines().count(), 4, "{message}");
}

#[test]
fn unknown_framework_lists_the_known_ones() {
    let message = errors("[[apps]]\nname = \"sales\"\nsource = \"app\"\nframework = \"django\"\n");
    assert!(message.contains("unknown variant `django`"), "{message}");
    assert!(message.contains("streamlit"), "{message}");
}

#[test]
fn command_apps_need_a_command() {
    let message = errors("[[apps]]\nname = \"api\"\nsource = \"app\"\nframework = \"command\"\n");
    assert!(message.contains("apps[0].command is missing"), "{message}");
}

#[test]
fn entrypoint_may_not_leave_the_app_folder() {
    let message =
        errors("[[apps]]\nname = \"sales\"\nsource = \"app\"\nentrypoint = \"../secret.py\"\n");
    assert!(
        message.contains("must be a file inside the app's folder"),
        "{message}"
    );
}

#[test]
fn dns_labels() {
    use super::validate::is_dns_label;
    assert!(is_dns_label("sales"));
    assert!(is_dns_label("r-shiny2"));
    assert!(!is_dns_label(""));
    assert!(!is_dns_label("Sales"));
    assert!(!is_dns_label("sales-"));
    assert!(!is_dns_label("a.b"));
    assert!(!is_dns_label(&"a".repeat(64)));
}

#[test]
fn access_rules_default_to_signed_in_and_read_all_three_shapes() {
    use crate::access::Access;
    let (_dir, path) = workspace();
    let text = "[[apps]]\nname = \"a\"\nsource = \"app\"\n\
                [[apps]]\nname = \"b\"\nsource = \"app\"\naccess = \"public\"\n\
                [[apps]]\nname = \"c\"\nsource = \"app\"\naccess = { users = [\"Ada@Example.com\"], groups = [\"sales\"] }\n";
    let config = Config::parse(&path, text).unwrap();
    assert_eq!(config.apps[0].access, Access::SignedIn);
    assert_eq!(config.apps[1].access, Access::Public);
    assert_eq!(
        config.apps[2].access,
        Access::Only {
            users: vec!["ada@example.com".into()],
            groups: vec!["sales".into()]
        }
    );
    assert_eq!(config.auth.contact, "your Portico administrator");
}

#[test]
fn bad_access_rules_say_what_to_write() {
    let app =
        |access: &str| format!("[[apps]]\nname = \"a\"\nsource = \"app\"\naccess = {access}\n");
    let cases = [
        (
            "\"everyone\"",
            "apps[0].access = \"everyone\" is not an access rule; write \"public\", \"signed-in\"",
        ),
        (
            "{ teams = [\"x\"] }",
            "apps[0].access.teams is not part of an access rule",
        ),
        (
            "{ users = \"ada@example.com\" }",
            "apps[0].access.users: must be a list of strings",
        ),
        ("{ users = [\"ada\"] }", "\"ada\" is not an e-mail address"),
        (
            "{ users = [] }",
            "apps[0].access: names no users and no groups",
        ),
        ("42", "apps[0].access: has the wrong type"),
    ];
    for (access, expected) in cases {
        let message = errors(&app(access));
        assert!(message.contains(expected), "{access}: {message}");
    }
    let message = errors("[auth]\nsession_idle_timeout_secs = 600\nsession_lifetime_secs = 60\n");
    assert!(
        message.contains("auth.session_lifetime_secs = 60 is shorter than"),
        "{message}"
    );
}

#[test]
fn a_saml_provider_needs_one_metadata_source_and_sane_settings() {
    let message = errors(
        "[[auth.saml]]\nid = \"adfs\"\nbinding = \"artifact\"\nclock_skew_secs = 3600\n\
         [[auth.saml]]\nid = \"adfs\"\nmetadata_url = \"http://idp.example.com/metadata\"\n\
         [[auth.saml]]\nid = \"ping\"\nmetadata_file = \"missing.xml\"\nname_id_format = \"guid\"\n",
    );
    for expected in [
        "auth.saml[0]: needs the provider's metadata",
        "auth.saml[0].binding = \"artifact\" is not a choice",
        "auth.saml[0].clock_skew_secs = 3600 is too lenient",
        "auth.saml[1].id = \"adfs\" is already the id of another provider",
        "auth.saml[1].metadata_url = \"http://idp.example.com/metadata\" must be an https:// URL",
        "missing.xml\" is not a readable file",
        "auth.saml[2].name_id_format = \"guid\" is not a NameID format",
    ] {
        assert!(message.contains(expected), "{expected}:\n{message}");
    }
    let (dir, path) = workspace();
    fs::write(dir.path().join("idp.xml"), "<md:EntityDescriptor/>").unwrap();
    let config = Config::parse(
        &path,
        "[[auth.saml]]\nid = \"ping\"\nmetadata_file = \"idp.xml\"\nname_id_format = \"persistent\"\n",
    )
    .unwrap();
    let saml = &config.auth.saml[0];
    assert_eq!(
        saml.metadata,
        SamlMetadata::File(dir.path().join("idp.xml"))
    );
    assert_eq!(saml.binding, SamlBinding::Redirect);
    assert_eq!(
        saml.name_id_format.as_deref(),
        Some("urn:oasis:names:tc:SAML:2.0:nameid-format:persistent")
    );
    assert_eq!(saml.clock_skew.as_secs(), 120);
}

#[test]
fn firewall_lists_take_addresses_and_cidr_blocks_and_name_the_wrong_entry() {
    let message = errors(
        "[firewall]\nallow = [\"10.0.0.0/8\", \"10.0.0.0/33\"]\ntrusted_proxies = [\"lb.example.com\"]\n\
         [[apps]]\nname = \"sales\"\nsource = \"app\"\nfirewall = { deny = [\"::1/129\"] }\n",
    );
    for expected in [
        "firewall.allow[1] = \"10.0.0.0/33\" is not an address or CIDR block",
        "firewall.trusted_proxies[0] = \"lb.example.com\" is not an address",
        "apps[0].firewall.deny[0] = \"::1/129\" is not an address",
    ] {
        assert!(message.contains(expected), "{expected}:\n{message}");
    }
    let (_dir, path) = workspace();
    let config = Config::parse(
        &path,
        "[firewall]\ndeny = [\"192.0.2.7\", \"2001:db8::/32\"]\n[[apps]]\nname = \"sales\"\nsource = \"app\"\nfirewall = { allow = [\"10.0.0.0/8\"] }\n",
    )
    .unwrap();
    assert!(!config.firewall.rules.permits("192.0.2.7".parse().unwrap()));
    assert!(config.firewall.rules.permits("192.0.2.8".parse().unwrap()));
    assert!(!config.apps[0]
        .firewall
        .permits("192.0.2.8".parse().unwrap()));
}

#[test]
fn limits_have_safe_defaults_and_refuse_nonsense() {
    let (_dir, path) = workspace();
    let config = Config::parse(&path, "").unwrap();
    assert_eq!(
        config.limits.requests_per_second, 0,
        "off by default (shared NAT addresses)"
    );
    assert_eq!(config.limits.sign_in_per_minute, 60);
    assert_eq!(config.limits.max_body_bytes, 32 * 1024 * 1024);
    let message = errors(
        "[limits]\nrequests_per_second = 100\nburst = 10\nmax_url_bytes = 10\nheader_read_timeout_secs = 0\n",
    );
    for expected in [
        "limits.burst = 10 is below requests_per_second (100)",
        "limits.max_url_bytes = 10 is too small",
        "limits.header_read_timeout_secs = 0 is out of range",
    ] {
        assert!(message.contains(expected), "{expected}:\n{message}");
    }
}

#[test]
fn tls_needs_exactly_one_certificate_source_and_the_redirect_listener_needs_tls() {
    let message = errors("[server]\nredirect_listen = \"127.0.0.1:8081\"\n");
    assert!(
        message.contains("server.redirect_listen: redirects to HTTPS, which needs a [tls] table"),
        "{message}"
    );
    let message = errors("[tls]\n");
    assert!(message.contains("tls: names no certificate"), "{message}");
    let message = errors(
        "[tls]\nself_signed = true\ncertificates = [{ cert = \"c.pem\", key = \"k.pem\" }]\n",
    );
    assert!(
        message.contains(
            "tls: sets more than one of self_signed, certificates and [tls.acme]; keep one"
        ),
        "{message}"
    );
    let message = errors("[tls]\ncertificates = [{ cert = \"c.pem\", key = \"k.pem\" }]\n");
    assert!(message.contains("tls.certificates[0].cert = "), "{message}");
    assert!(
        message.contains("c.pem\" is not a readable file"),
        "{message}"
    );
    assert!(message.contains("tls.certificates[0].key = "), "{message}");
    let (_dir, path) = workspace();
    let config =
        Config::parse(&path, "[tls]\nself_signed = true\nhsts_max_age_secs = 0\n").unwrap();
    let tls = config.tls.unwrap();
    assert_eq!(tls.source, TlsSource::SelfSigned);
    assert_eq!(tls.hsts_header(), None, "0 turns HSTS off");
}

#[test]
fn acme_defaults_to_lets_encrypt_and_its_challenge_must_be_answerable() {
    let (_dir, path) = workspace();
    let config = Config::parse(&path, "[tls.acme]\ncontact = \"ops@example.com\"\n").unwrap();
    let TlsSource::Acme(acme) = config.tls.unwrap().source else {
        panic!("ACME expected")
    };
    assert_eq!(acme.directory, crate::config::LETS_ENCRYPT);
    assert_eq!(
        acme.challenge,
        crate::config::AcmeChallenge::TlsAlpn01,
        "without a port-80 listener only TLS-ALPN-01 can be answered"
    );
    let config = Config::parse(
        &path,
        "[server]\nredirect_listen = \"127.0.0.1:8081\"\n[tls.acme]\n",
    )
    .unwrap();
    let TlsSource::Acme(acme) = config.tls.unwrap().source else {
        panic!("ACME expected")
    };
    assert_eq!(acme.challenge, crate::config::AcmeChallenge::Http01);

    let message = errors("[tls.acme]\nchallenge = \"http-01\"\ndirectory = \"http://ca\"\ncontact = \"ops\"\nca_bundle = \"nope.pem\"\n");
    for expected in [
        "tls.acme.challenge = \"http-01\" is answered on port 80, which needs server.redirect_listen",
        "tls.acme.directory = \"http://ca\" is not an https:// URL",
        "tls.acme.contact = \"ops\" is not an e-mail address",
        "nope.pem\" is not a readable file",
    ] {
        assert!(message.contains(expected), "{expected} in {message}");
    }
    let message = errors("[tls]\nself_signed = true\n[tls.acme]\nchallenge = \"dns-01\"\n");
    assert!(message.contains("keep one"), "{message}");
    assert!(
        message.contains("tls.acme.challenge = \"dns-01\" is not a challenge Portico answers"),
        "{message}"
    );
}

#[test]
fn scale_bounds_are_checked_and_the_autoscaler_counts_from_them() {
    let message = errors(
        "[[apps]]\nname = \"sales\"\nsource = \"app\"\nscale = { min = 65, max = 100, sessions_per_replica = 0, target_utilization = 1.5, warm = 70, start_wait_secs = 0 }\n",
    );
    for expected in [
        "apps[0].scale.min = 65 is out of range; write 0 (sleep while unused) to 64",
        "apps[0].scale.warm = 70 is more than max (64)",
        "apps[0].scale.start_wait_secs = 0 is out of range; write 1 to 600",
        "apps[0].scale.max = 100 is out of range",
        "apps[0].scale.sessions_per_replica = 0",
        "apps[0].scale.target_utilization = 1.5 is out of range",
    ] {
        assert!(message.contains(expected), "{expected} in {message}");
    }
    let (_dir, path) = workspace();
    let config = Config::parse(
        &path,
        "[[apps]]\nname = \"sales\"\nsource = \"app\"\n[apps.scale]\nmin = 2\nmax = 5\nsessions_per_replica = 10\n",
    )
    .unwrap();
    let scale = &config.apps[0].scale;
    assert_eq!((scale.min, scale.max), (2, 5));
    assert_eq!(scale.replicas_for(0), 2, "never below min");
    // 10 sessions a replica at 80 %: 8 each before another starts.
    assert_eq!(scale.replicas_for(9), 2);
    assert_eq!(scale.replicas_for(17), 3);
    assert_eq!(scale.replicas_for(1000), 5, "never above max");

    let config = Config::parse(
        &path,
        "[[apps]]\nname = \"sales\"\nsource = \"app\"\nscale = { min = 0, warm = 1, max = 3 }\n",
    )
    .unwrap();
    let scale = &config.apps[0].scale;
    assert_eq!(
        scale.replicas_for(0),
        1,
        "one warm spare while nobody is on"
    );
    assert_eq!(scale.replicas_for(1), 2, "a spare beside the busy replica");
    assert_eq!(scale.idle_timeout, std::time::Duration::from_secs(300));
    let config = Config::parse(
        &path,
        "[[apps]]\nname = \"sales\"\nsource = \"app\"\nscale = { min = 0 }\n",
    )
    .unwrap();
    let scale = &config.apps[0].scale;
    assert_eq!(
        (scale.min, scale.max),
        (0, 1),
        "a sleeping app wakes to one replica"
    );
    assert_eq!(scale.replicas_for(0), 0);
}

#[test]
fn timeouts_probes_and_the_replica_cap_name_their_range() {
    let message = errors(
        "[server]\nshutdown_timeout_secs = 7200\n[fleet]\nprobe_interval_secs = 0\nprobe_failures = 0\nmax_replicas = 0\n[limits]\nupstream_connect_timeout_secs = 0\nupstream_response_timeout_secs = 100000\n",
    );
    for expected in [
        "server.shutdown_timeout_secs = 7200 is more than an hour; write 0 to 3600",
        "fleet.probe_interval_secs = 0 is out of range; write 1 to 3600",
        "fleet.probe_failures = 0 is out of range; write 1 to 100",
        "fleet.max_replicas = 0 leaves no room for the autoscaler",
        "limits.upstream_connect_timeout_secs = 0 is out of range; write 1 to 60, e.g. 5",
        "limits.upstream_response_timeout_secs = 100000 is out of range; write 1 to 86400, e.g. 300",
    ] {
        assert!(message.contains(expected), "{expected} in {message}");
    }
}

#[test]
fn frame_ancestors_must_be_origins_that_cannot_break_out_of_the_header() {
    let message = errors(
        "[[apps]]\nname = \"sales\"\nsource = \"app\"\nframe_ancestors = [\"intranet.example.com\", \"https://a.example; script-src *\"]\n",
    );
    assert!(
        message.contains("apps[0].frame_ancestors[0] = \"intranet.example.com\" is not an origin"),
        "{message}"
    );
    assert!(message.contains("apps[0].frame_ancestors[1]"), "{message}");
}

#[test]
fn per_user_apps_take_profiles_by_name_and_refuse_what_cannot_apply() {
    let (_dir, path) = workspace();
    let config = Config::parse(
        &path,
        r#"
[profiles.large]
cpus = 4
memory_mb = 16384
groups = ["research"]
[profiles.small]
cpus = 0.5
memory_mb = 2048

[[apps]]
name = "lab"
source = "app"
mode = "per-user"
[apps.per_user]
idle_timeout_secs = 600
profiles = ["large", "small"]

[[apps]]
name = "sales"
source = "app"
"#,
    )
    .unwrap();
    let lab = config.apps[0].per_user.as_ref().expect("per-user");
    assert_eq!(lab.idle_timeout, std::time::Duration::from_secs(600));
    assert_eq!(lab.max_instances, 20);
    let names: Vec<&str> = lab.profiles.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["large", "small"], "in the app's order");
    assert_eq!(
        config.apps[0].start_wait(),
        std::time::Duration::from_secs(120)
    );
    assert!(config.apps[1].per_user.is_none(), "shared by default");
    assert_eq!(config.fleet.max_instances_per_user, 4);

    let message = errors(
        r#"
[fleet]
max_instances_per_user = 0
[profiles.tiny]
memory_mb = 8
cpus = -1

[[apps]]
name = "lab"
source = "app"
mode = "per-user"
access = "public"
scale = { max = 3 }
per_user = { profiles = ["huge"], max_instances = 0, idle_timeout_secs = 0 }

[[apps]]
name = "sales"
source = "app"
per_user = { idle_timeout_secs = 600 }
"#,
    );
    for expected in [
        "fleet.max_instances_per_user = 0 would let nobody open a per-user app",
        "profiles.tiny.memory_mb = 8 is too little",
        "profiles.tiny.cpus = -1 is out of range",
        "apps[0].access = \"public\" cannot go with mode = \"per-user\"",
        "apps[0].scale: does not apply with mode = \"per-user\"",
        "apps[0].per_user.profiles[0] = \"huge\" is not a profile; the profiles are tiny",
        "apps[0].per_user.max_instances = 0 is out of range; write 1 to 1000",
        "apps[0].per_user.idle_timeout_secs = 0 is out of range; write 1 to 604800",
        "apps[1].per_user: only applies with mode = \"per-user\"",
    ] {
        assert!(message.contains(expected), "{expected} in {message}");
    }
    let message = errors("[[apps]]\nname = \"lab\"\nsource = \"app\"\nmode = \"private\"\n");
    assert!(message.contains("mode"), "{message}");
}

#[test]
fn a_container_app_names_its_image_and_limits() {
    let (dir, path) = workspace();
    let config = Config::parse(
        &path,
        "[fleet]\nruntime = \"docker\"\n[docker]\nendpoint = \"unix:///run/docker.sock\"\n[[apps]]\nname = \"sales\"\nimage = \"registry.example.com/team/sales:1.2\"\n[apps.container]\nmemory_mb = 512\ncpus = 0.5\nuser = \"1000:1000\"\nread_only = true\n",
    )
    .unwrap();
    let app = &config.apps[0];
    assert_eq!(app.runtime, RuntimeKind::Docker);
    assert_eq!(
        app.image.as_deref(),
        Some("registry.example.com/team/sales:1.2")
    );
    assert_eq!(app.container.memory_mb, Some(512));
    assert_eq!(app.container.port, 8080);
    assert!(app.container.read_only && app.container.drop_capabilities);
    // An image needs no folder: the config's own stands in.
    assert_eq!(app.source, std::path::absolute(dir.path()).unwrap());
    assert_eq!(
        config.docker.endpoint.to_string(),
        "unix:///run/docker.sock"
    );
    assert!(config.uses_docker());
}

#[test]
fn container_settings_without_the_docker_runtime_are_refused_with_the_fix() {
    let message = errors(
        "[[apps]]\nname = \"sales\"\nimage = \"sales:1\"\n[apps.container]\nmemory_mb = 16\n",
    );
    assert!(
        message.contains("apps[0].image: needs runtime = \"docker\""),
        "{message}"
    );
    assert!(
        message.contains("apps[0].container: only applies"),
        "{message}"
    );
    assert!(
        message.contains("apps[0].container.memory_mb = 16 is too little"),
        "{message}"
    );
    let message = errors("[[apps]]\nname = \"sales\"\n");
    assert!(message.contains("apps[0].source is missing"), "{message}");
    let message = errors("[docker]\nendpoint = \"tcp://docker.internal:2375\"\n");
    assert!(message.contains("docker.endpoint"), "{message}");
    assert!(message.contains("root on that machine"), "{message}");
    let message = errors(
        "[[apps]]\nname = \"sales\"\nruntime = \"docker\"\nimage = \"Sales\"\nframework = \"dash\"\n",
    );
    assert!(
        message.contains("apps[0].image = \"Sales\" has capital letters"),
        "{message}"
    );
    assert!(
        message.contains("apps[0].framework = \"dash\" is for building"),
        "{message}"
    );
}

#[test]
fn bad_docker_and_container_settings_each_name_the_key_and_the_fix() {
    let message = errors(
        "[docker]\nendpoint = \"tcp://docker.internal:2376\"\ntls_ca = \"ca.pem\"\nbuild_ca_bundle = \"no-such.crt\"\n[docker.base_images]\nstreamlit = \"Base Image\"\n",
    );
    assert!(
        message.contains("docker: needs all three of tls_ca, tls_cert and tls_key"),
        "{message}"
    );
    assert!(message.contains("docker.build_ca_bundle"), "{message}");
    assert!(message.contains("is not a file"), "{message}");
    assert!(
        message.contains("docker.base_images.streamlit"),
        "{message}"
    );
    let message = errors(
        "[[apps]]\nname = \"sales\"\nruntime = \"docker\"\nimage = \"sales:1\"\n[apps.container]\npids_limit = 2\nuser = \"a b\"\nport = 0\ncpus = 0\n",
    );
    for key in ["pids_limit = 2", "user = \"a b\"", "port = 0", "cpus = 0"] {
        assert!(
            message.contains(&format!("apps[0].container.{key}")),
            "{key}: {message}"
        );
    }
}

#[test]
fn volumes_and_drives_are_read_and_mounted_where_written() {
    let (_dir, path) = workspace();
    let config = Config::parse(
        &path,
        "[drives.finance]\n[drives.archive]\nhost_path = \"/srv/archive\"\n[[apps]]\nname = \"sales\"\nimage = \"sales:1\"\nruntime = \"docker\"\nmode = \"per-user\"\n[apps.volumes]\ndata = \"/data\"\ndrives = { finance = \"/mnt/finance\", archive = \"/mnt/archive:ro\" }\n",
    )
    .unwrap();
    let volumes = &config.apps[0].volumes;
    assert_eq!(volumes.data.as_deref(), Some("/data"));
    assert_eq!(volumes.home, "/home/portico");
    let archive = &volumes.drives[0];
    assert_eq!(
        (
            archive.drive.as_str(),
            archive.path.as_str(),
            archive.read_only
        ),
        ("archive", "/mnt/archive", true)
    );
    assert_eq!(
        archive.host_path.as_deref(),
        Some(std::path::Path::new("/srv/archive"))
    );
    assert!(!volumes.drives[1].read_only && volumes.drives[1].host_path.is_none());
    assert_eq!(config.drives.len(), 2);
}

#[test]
fn bad_volumes_and_drives_each_name_the_key_and_the_fix() {
    let message = errors(
        "[drives.Finance]\n[drives.archive]\nhost_path = \"srv/archive\"\n[[apps]]\nname = \"sales\"\nimage = \"sales:1\"\nruntime = \"docker\"\n[apps.volumes]\ndata = \"/app\"\nhome = \"/home/x\"\ndrives = { nosuch = \"/mnt/x\", archive = \"data\" }\n",
    );
    for expected in [
        "drives.Finance is not a drive name",
        "drives.archive.host_path = \"srv/archive\" must be an absolute path",
        "apps[0].volumes.data = \"/app\" would hide /app",
        "apps[0].volumes.home is where each person's home is mounted, which only per-user apps have",
        "apps[0].volumes.drives.nosuch is not a declared drive (declared: Finance, archive)",
        "apps[0].volumes.drives.archive = \"data\" must be an absolute path",
    ] {
        assert!(message.contains(expected), "{expected}: {message}");
    }
    let message = errors(
        "[[apps]]\nname = \"sales\"\nimage = \"sales:1\"\nruntime = \"docker\"\nmode = \"per-user\"\n[apps.volumes]\ndata = \"/home/portico\"\n",
    );
    assert!(
        message.contains("apps[0].volumes.home = \"/home/portico\" is also where apps[0].volumes.data is mounted"),
        "{message}"
    );
    let message = errors(
        "[[apps]]\nname = \"sales\"\nimage = \"sales:1\"\nruntime = \"docker\"\n[apps.env]\nPORTICO_DATA = \"/x\"\n",
    );
    assert!(message.contains("apps[0].env.PORTICO_DATA"), "{message}");
}

#[test]
fn deploy_settings_and_owners_are_read_and_bad_ones_say_what_to_write() {
    let (_dir, path) = workspace();
    let config = Config::parse(
        &path,
        "[deploy]\ndrain_timeout_secs = 60\nkeep_releases = 2\n[[apps]]\nname = \"a\"\nsource = \"app\"\nowners = { users = [\"Ada@Example.com\"], groups = [\"analysts\"] }\n",
    )
    .unwrap();
    assert_eq!(config.deploy.drain_timeout, Duration::from_secs(60));
    assert_eq!(config.deploy.keep_releases, 2);
    assert_eq!(config.deploy.max_upload_bytes, 256 * 1024 * 1024);
    let owners = &config.apps[0].owners;
    assert_eq!(owners.users, ["ada@example.com"]);
    assert_eq!(owners.groups, ["analysts"]);
    let user = |email: &str, groups: &[&str], admin| crate::User {
        id: 1,
        email: email.into(),
        display_name: String::new(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        admin,
    };
    assert!(owners.may_deploy(&user("ada@example.com", &[], false)));
    assert!(owners.may_deploy(&user("bob@example.com", &["analysts"], false)));
    assert!(owners.may_deploy(&user("root@example.com", &[], true)));
    assert!(!owners.may_deploy(&user("eve@example.com", &["sales"], false)));

    let app = "[[apps]]\nname = \"a\"\nsource = \"app\"\n";
    let cases = [
        (
            "[deploy]\nmax_upload_bytes = 10\n",
            "deploy.max_upload_bytes = 10 is too small",
        ),
        (
            "[deploy]\nmax_upload_bytes = 4096\nmax_unpacked_bytes = 2048\n",
            "deploy.max_unpacked_bytes = 2048 is smaller than deploy.max_upload_bytes",
        ),
        (
            "[deploy]\ndrain_timeout_secs = 99999999\n",
            "deploy.drain_timeout_secs = 99999999 is more than a week",
        ),
        (
            "[deploy]\nkeep_releases = 1000\n",
            "deploy.keep_releases = 1000 is out of range",
        ),
        ("[deploy]\nkeep = 3\n", "unknown field `keep`"),
    ];
    for (deploy, expected) in cases {
        let message = errors(&format!("{deploy}{app}"));
        assert!(message.contains(expected), "{deploy}: {message}");
    }
    let owners = |value: &str| errors(&format!("{app}owners = {value}\n"));
    assert!(owners("\"analysts\"").contains("apps[0].owners: has the wrong type; write { users"));
    assert!(
        owners("{ teams = [\"x\"] }").contains("apps[0].owners.teams is not part of the owners")
    );
    assert!(owners("{ users = [\"ada\"] }").contains("\"ada\" is not an e-mail address"));

    let webhook = |value: &str| errors(&format!("{app}webhook = {value}\n"));
    assert!(webhook("{ repository = \"\", secret_env = \"S\" }")
        .contains("apps[0].webhook.repository: must name the repository"));
    assert!(
        webhook("{ repository = \"/srv/x.git\", secret_env = \"not a name\" }").contains(
            "apps[0].webhook.secret_env = \"not a name\" is not an environment variable name"
        )
    );
    assert!(
        webhook("{ repository = \"/srv/x.git\", secret = \"inline\" }")
            .contains("unknown field `secret`")
    );
    let (_dir, path) = workspace();
    let config = Config::parse(
        &path,
        &format!("{app}webhook = {{ repository = \"/srv/x.git\", secret_env = \"PORTICO_TEST_UNSET_SECRET\" }}\n"),
    )
    .unwrap();
    let why = config.apps[0]
        .webhook
        .as_ref()
        .unwrap()
        .secret()
        .unwrap_err();
    assert!(
        why.contains("PORTICO_TEST_UNSET_SECRET is not set"),
        "{why}"
    );
}
